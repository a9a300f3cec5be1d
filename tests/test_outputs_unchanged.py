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
from tests.conftest import REF_SMALL, REF_SMALL_MISSING, REPO

EXAMPLE = REPO / "stream_files" / "example.stream"

# (input, extra options) -> md5 of the output stream
RECORDED = {
    ("r345", "crystfel"): "1ab86dd60bfbf10be9d6e86891f031ef",
    ("r345", "robust"): "c1c68f83a079cb5e8ecc99a2cbc6e71c",
    ("r345", "profile"): "c1ccd3162332180b37135fea22f2b04e",
    ("r234", "crystfel"): "42d831e63f31449d8e3d9b4deda5ce82",
    ("r234", "robust"): "607a17c3beba3df6824caa204e83f2e6",
    ("r234", "profile"): "c034b14e4d75d7a8bd53e3d1cf3255b7",
    ("example", "crystfel"): "c8821b0c294821521c64d10ad5d09219",
    ("example", "robust"): "81889421ebc9d44404efd7c894717093",
    ("example", "profile"): "e71ef1a7f4cc0b261dd3f7f689a7b470",
    ("example", "robust --background plane"): "be9a314379dc8996628a849a70447040",
    ("example", "robust --background mean"): "92d010980b96253d1d97878afe137257",
    ("example", "crystfel --int-radius 2,3,5"): "666bed3718979ee9f1360e6aaae7c09c",
}


def _input(name: str) -> Path:
    if name == "example":
        return EXAMPLE
    if REF_SMALL is None:
        pytest.skip(REF_SMALL_MISSING)
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
