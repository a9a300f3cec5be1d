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
    ("r345", "robust"): "e9246fa3d5a545342df7ccbd77ffcbc9",
    ("r345", "profile"): "165dd6cabc2fe27b18372e16e8280327",
    ("r234", "crystfel"): "33fbea3ab07e51efd724f806e10e1457",
    ("r234", "robust"): "aee200bf3a12b235cb1c348d3c5ad40c",
    ("r234", "profile"): "bbad5e944b13faa0f936ff481d5bb7c1",
    ("example", "crystfel"): "b8a2426a08e4187c456ecc23a1e02fc5",
    ("example", "robust"): "c5869e597363d92de800c80079b3d72d",
    ("example", "profile"): "e008323eee0d7e1e1c628c93632d4e25",
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
