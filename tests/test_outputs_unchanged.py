"""Recorded output digests: the rewritten streams of every method stay byte for byte the same.

A change that alters numbers on purpose updates the digest here in the same commit and says
why in its message.  The ref-small rows skip when ``../shared`` is absent; the bundled
example and the synthetic data set always run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streamfilter.cli import main
from tests.conftest import REF_SMALL, REPO

EXAMPLE = REPO / "stream_files" / "example.stream"

# (input, extra options) -> md5 of the output stream
RECORDED = {
    ("r345", "crystfel"): "cffaf7433733ba31249f322ee3242c92",
    ("r345", "robust"): "716aaa7047493b680abc37dd5d6f0b49",
    ("r345", "profile"): "7e4a7fa81dbdb0172a32e26bac4402ce",
    ("r234", "crystfel"): "33fbea3ab07e51efd724f806e10e1457",
    ("r234", "robust"): "f88c0e4fe78197cbe6a74c9f97211c36",
    ("r234", "profile"): "e664b48037cd83d8f5add7332a908953",
    ("example", "crystfel"): "b8a2426a08e4187c456ecc23a1e02fc5",
    ("example", "robust"): "5e0c4777d95982ef8fd3d61561d3b245",
    ("example", "profile"): "fe53b023b5d5bfc3a90dfa3f4666d94a",
    ("example", "robust --background plane"): "2d221b41748c176779ea37c23fe9a8cb",
    ("example", "robust --background mean"): "7cefba92a4718fd9e742de9a15228e99",
    ("example", "crystfel --int-radius 2,3,5"): "1979763285824fe1fede01cdd3a036e7",
}


def _input(name: str) -> Path:
    if name == "example":
        return EXAMPLE
    if REF_SMALL is None:
        pytest.skip("../shared/data/ref-small not present")
    return REF_SMALL / f"lyso_dev_{name}.stream"


@pytest.mark.parametrize(("name", "options"), sorted(RECORDED))
def test_reintegrated_stream_is_byte_identical_to_the_recorded_one(name, options, tmp_path):
    out = tmp_path / "out.stream"
    method, *extra = options.split()
    rc = main(["reintegrate", str(_input(name)), "-o", str(out), "--method", method, "-q", *extra])
    assert rc == 0
    assert hashlib.md5(out.read_bytes()).hexdigest() == RECORDED[(name, options)]


def test_synthetic_stream_is_byte_identical_to_the_recorded_one(tmp_path):
    from streamfilter.synth import SynthConfig, generate

    ds = generate(tmp_path, SynthConfig(seed=3, n_frames=4))
    digest = hashlib.md5(ds.stream_path.read_bytes()).hexdigest()
    assert digest == "7375977629c8b3ec9d660bc17aac02c2"
