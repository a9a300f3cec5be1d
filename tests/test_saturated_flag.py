"""indexamajig's ``-sat`` reaches every method: robust and profile write saturated reflections
of a ``rings-sat`` stream (and count them) as crystfel does, and drop them otherwise; ``-grad``
is named in the audit line only for the method that uses it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streamfilter.cli import main
from streamfilter.stream import read_stream

MAX_ADU = 400.0


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """The same synthetic frames (saturating at MAX_ADU) under a ``rings`` and a
    ``rings-sat`` header."""
    from streamfilter.synth import SynthConfig, generate

    d = tmp_path_factory.mktemp("sat")
    ds = generate(d, SynthConfig(seed=7, n_frames=4, max_adu=MAX_ADU))
    text = ds.stream_path.read_bytes()
    assert b"--integration=rings " in text
    sat = d / "sat.stream"
    sat.write_bytes(text.replace(b"--integration=rings ", b"--integration=rings-sat ", 1))
    return {"plain": ds.stream_path, "sat": sat}


def reintegrate(path, method, tmp_path):
    out = tmp_path / f"{path.stem}-{method}.stream"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the geometry's max_adu is meant
        assert main(["reintegrate", str(path), "-o", str(out), "--method", method, "-q"]) == 0
    peaks, n_sat = [], 0
    with read_stream(out) as reader:
        for chunk in reader:
            for x in chunk.crystals:
                peaks.append(x.reflections.peak)
                n_sat += int(x.num_saturated_reflections)
    audit = next(ln for ln in out.read_text().splitlines() if ln.startswith("streamfilter "))
    return np.concatenate(peaks), n_sat, audit


@pytest.mark.parametrize("method", ["crystfel", "robust", "profile"])
def test_sat_flag_keeps_saturated_reflections(streams, method, tmp_path):
    plain_peak, plain_n, plain_audit = reintegrate(streams["plain"], method, tmp_path)
    sat_peak, sat_n, sat_audit = reintegrate(streams["sat"], method, tmp_path)
    # a written row is saturated when a pixel of its disc or r2..r3 ring exceeds max_adu,
    # which is what the peak column holds
    assert plain_n == sat_n > 10
    assert not (plain_peak > MAX_ADU).any()
    assert (sat_peak > MAX_ADU).sum() == sat_n
    assert len(sat_peak) == len(plain_peak) + sat_n
    assert f"--method={method}-sat " in sat_audit
    assert f"--method={method} " in plain_audit


def test_grad_is_named_only_for_crystfel():
    from streamfilter.pipeline.config import ReintegrateConfig, provenance_line

    for method, flags in (("crystfel", "-grad-sat"), ("robust", "-sat"), ("profile", "-sat")):
        config = ReintegrateConfig("", method=method, gradient=True, keep_saturated=True)
        assert f"--method={method}{flags} ".encode() in provenance_line(config)
        options = config.integration().options
        robust = getattr(options, "robust", options)
        assert robust.keep_saturated
