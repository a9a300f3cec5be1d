"""``streamfilter check`` and :mod:`streamfilter.pipeline.checks`: a geometry or frames that do
not belong to a stream are caught, the stream's own (or a refined) geometry passes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamfilter.cli import main
from streamfilter.pipeline.checks import (
    EXIT_FRAMES,
    EXIT_MISMATCH,
    EXIT_OK,
    RunCheck,
    Thresholds,
    bright_scores,
    check_stream,
    peak_offsets,
    predictor,
)
from streamfilter.stream import read_stream
from streamfilter.synth import SynthConfig, generate


def shifted(text: str, dx: float = 0.0, clen_factor: float = 1.0) -> str:
    """A geometry with every panel's corner_x moved by dx pixels and clen scaled."""
    text = re.sub(r"(?m)^(\s*\S*corner_x\s*=\s*)([-+0-9.eE]+)",
                  lambda m: f"{m.group(1)}{float(m.group(2)) + dx!r}", text)
    return re.sub(r"(?m)^(\s*clen\s*=\s*)([-+0-9.eE]+)",
                  lambda m: f"{m.group(1)}{float(m.group(2)) * clen_factor!r}", text)


def _geometry(stream: Path, tmp: Path, name: str, **change: float) -> str:
    with read_stream(stream) as r:
        text = r.header.geometry_text
    out = tmp / name
    out.write_text(shifted(text, **change))
    return str(out)


def _shuffle_events(stream: Path, out: Path, n: int) -> Path:
    """The stream with each chunk pointing at the next event of the same file."""
    text = stream.read_text()
    text = re.sub(r"(?m)^Event: //(\d+)$", lambda m: f"Event: //{(int(m.group(1)) + 1) % n}", text)
    out.write_text(text)
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), SynthConfig(seed=5, n_frames=16))


# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------

def test_the_streams_own_geometry_passes(synth):
    c = check_stream(str(synth.stream_path))
    r = c.result
    assert c.exit_status == EXIT_OK and r.ok, r.message
    assert c.opened == c.chunks == 16 and not c.problems
    assert r.indexed > 5 and r.peaks > 500
    assert r.row_offset < 0.06  # only the 0.1 px print rounding
    assert r.peak_offset < 0.3 and r.matched > 0.9
    assert r.bright > 0.8 and r.random_bright < 0.2


@pytest.mark.parametrize("dx", [1.0, 3.0])
def test_corner_x_shifted_fails_with_the_figures(synth, tmp_path, dx):
    geom = _geometry(synth.stream_path, tmp_path, "shifted.geom", dx=dx)
    c = check_stream(str(synth.stream_path), geometry=geom)
    r = c.result
    assert c.exit_status == EXIT_MISMATCH and not r.geometry_ok and r.frames_ok
    assert r.row_offset == pytest.approx(dx, abs=0.06)
    assert r.peak_offset == pytest.approx(dx, abs=0.3)
    assert abs(r.peak_offset_fs) == pytest.approx(dx, abs=0.1)  # the direction is named
    assert "GEOMETRY DOES NOT MATCH" in r.message
    assert f"{r.peak_offset:.2f} px" in r.message and f"{r.offset_limit:.2f} px" in r.message


def test_a_shift_beyond_the_match_radius_names_the_peaks_left_unmatched(synth, tmp_path):
    geom = _geometry(synth.stream_path, tmp_path, "far.geom", dx=12.0)
    r = check_stream(str(synth.stream_path), geometry=geom).result
    assert not r.geometry_ok and r.matched < 0.5 * r.stream_matched
    assert f"only {100 * r.matched:.0f}% of the found peaks" in r.message


def test_clen_changed_fails(synth, tmp_path):
    geom = _geometry(synth.stream_path, tmp_path, "clen.geom", clen_factor=1.02)
    r = check_stream(str(synth.stream_path), geometry=geom).result
    assert not r.ok and not r.geometry_ok
    assert r.peak_offset > 1.0


def test_a_refined_geometry_passes(synth, tmp_path):
    geom = _geometry(synth.stream_path, tmp_path, "refined.geom", dx=0.05)
    c = check_stream(str(synth.stream_path), geometry=geom)
    assert c.exit_status == EXIT_OK, c.result.message
    assert c.result.row_offset > 0.04  # it is another geometry, close to the stream's


def test_frames_of_another_data_set_fail_on_the_bright_pixel_measure(synth, tmp_path):
    other = generate(tmp_path / "other", SynthConfig(seed=6, n_frames=16))
    shutil.copy(synth.stream_path, tmp_path / "synth.stream")
    shutil.copy(other.h5_path, tmp_path / synth.h5_path.name)  # same name, same shape
    c = check_stream(str(tmp_path / "synth.stream"))
    r = c.result
    assert c.exit_status == EXIT_MISMATCH and not r.frames_ok and r.geometry_ok
    assert r.bright < 0.3 and r.bright - r.random_bright < 0.1
    assert len(r.wrong_frames) == r.wrong_frames_checked > 5
    assert "FRAMES DO NOT MATCH" in r.message and f"{100 * r.bright:.0f}%" in r.message


def test_shuffled_events_fail(synth, tmp_path):
    stream = _shuffle_events(synth.stream_path, tmp_path / "shuffled.stream", 16)
    c = check_stream(str(stream), data_roots=[str(synth.directory)])
    assert c.exit_status == EXIT_MISMATCH and not c.result.frames_ok
    assert c.result.wrong_frames[0].startswith(synth.h5_path.name)


def test_missing_files_and_events_are_counted_and_named(synth, tmp_path):
    text = synth.stream_path.read_text()
    text = re.sub(r"(?m)^Event: //1([0-5])$", r"Event: //9\1", text)  # out of range
    text = text.replace(f"Image filename: {synth.h5_path.name}\nEvent: //0\n",
                        "Image filename: elsewhere.h5\nEvent: //0\n")
    (tmp_path / "s.stream").write_text(text)
    c = check_stream(str(tmp_path / "s.stream"), data_roots=[str(synth.directory)])
    assert c.exit_status == EXIT_FRAMES
    assert c.problems["missing event"][0] == 6
    assert c.problems["missing event"][1][0].startswith(f"{synth.h5_path.name} //9")
    count, first = c.problems["missing file"]
    assert count == 1 and first[0].startswith("elsewhere.h5: not found")
    assert c.opened == 16 - 7
    assert c.result.ok  # the frames that were found do match


def test_a_geometry_larger_than_the_frames_is_a_shape_mismatch(synth, tmp_path):
    text = synth.geometry_path.read_text().replace("max_fs = 255", "max_fs = 300")
    (tmp_path / "wide.geom").write_text(text)
    c = check_stream(str(synth.stream_path), geometry=str(tmp_path / "wide.geom"))
    assert c.exit_status == EXIT_FRAMES and c.opened == 0
    assert c.problems["shape mismatch"][0] == 16


def test_cli_prints_a_report_writes_json_and_exits_by_the_verdict(synth, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check", str(synth.stream_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "verdict: OK" in text and "found peaks on bright pixels" in text
    doc = json.loads(out.read_text())
    assert doc["exit_status"] == 0 and doc["result"]["ok"] and doc["chunks"] == 16
    geom = _geometry(synth.stream_path, tmp_path, "bad.geom", dx=3.0)
    assert main(["check", str(synth.stream_path), "-g", geom, "--sample", "4"]) == 1
    text = capsys.readouterr().out
    assert "measured on 4 frames" in text and "GEOMETRY DOES NOT MATCH" in text
    missing = tmp_path / "alone.stream"
    shutil.copy(synth.stream_path, missing)
    assert main(["check", str(missing)]) == 3
    assert "missing file: 16 chunks" in capsys.readouterr().out


def test_run_check_decides_after_k_frames_from_data_in(synth):
    from streamfilter.pipeline import config_for

    check = RunCheck(Thresholds(sample=3))
    assert check.verdict().ok and "no frame" in check.verdict().message
    with read_stream(synth.stream_path) as r:
        source = config_for(r.header, str(synth.stream_path)).frame_source()
        run = predictor(source.detector)
        added = 0
        for chunk in r:
            frame = source.load(chunk.filename, chunk.event)
            preds = run.predict(frame, chunk.crystals, chunk.photon_energy_eV,
                                chunk.beam_bandwidth)
            added += 1
            if check.add(chunk, frame, preds, run.layout):
                break
    assert check.done and len(check.figures) == 3 and added >= 3
    result = check.verdict()
    assert result.ok and result.frames == 3
    assert json.dumps(result.to_dict())  # JSON-ready, no NaN


# --------------------------------------------------------------------------------------------
# the measures
# --------------------------------------------------------------------------------------------

def test_peak_offsets_match_on_the_same_panel_within_the_radius():
    d, dfs, dss = peak_offsets(
        np.array([10.0, 10.0, 50.0]), np.array([5.0, 5.0, 5.0]), np.array([0, 1, 0]),
        np.array([11.0, 10.5, 80.0]), np.array([5.0, 5.0, 5.0]), np.array([0, 0, 0]),
        match_radius=5.0,
    )
    assert d[0] == pytest.approx(0.5) and dfs[0] == pytest.approx(-0.5) and dss[0] == 0
    assert np.isinf(d[1]) and np.isnan(dfs[1])  # nothing on its panel
    assert np.isinf(d[2])  # 30 px away


def test_bright_scores_see_a_spot_and_not_the_background():
    rng = np.random.default_rng(1)
    image = rng.poisson(5.0, (64, 64)).astype(np.float32)
    image[30:33, 40:43] += 60.0
    bad = np.zeros(image.shape, bool)
    bad[10, 10] = True
    bad[48:, :16] = True
    z = bright_scores(image, bad, np.array([41.5, 20.5, 7.5, 10.5, 63.5]),
                      np.array([31.5, 20.5, 56.5, 10.5, 0.5]))
    assert z[0] > 10 and z[1] < 3
    assert np.isnan(z[2])  # the annulus is masked
    assert np.isfinite(z[3])  # one bad pixel in the block is left out, not fatal
    assert np.isfinite(z[4])  # a corner: the part of the annulus on the panel is enough


# --------------------------------------------------------------------------------------------
# ref-small (CrystFEL 0.12.0 output)
# --------------------------------------------------------------------------------------------

def test_ref_small_own_geometry_passes(ref_small):
    c = check_stream(str(ref_small / "lyso_dev_r345.stream"))
    r = c.result
    assert c.exit_status == EXIT_OK, r.message
    assert c.opened == 30 and r.indexed == 30
    assert r.peak_offset < 0.35 and r.row_offset < 0.06
    assert r.bright > 0.9 and r.random_bright < 0.15


@pytest.mark.parametrize("change, ok", [
    ({"dx": 0.05}, True),
    ({"dx": 1.0}, False),
    ({"dx": 3.0}, False),
    ({"clen_factor": 1.01}, False),
])  # fmt: skip
def test_ref_small_geometries(ref_small, tmp_path, change, ok):
    stream = ref_small / "lyso_dev_r345.stream"
    r = check_stream(str(stream), geometry=_geometry(stream, tmp_path, "g.geom", **change)).result
    assert r.ok is ok and r.frames_ok, r.message
    if not ok:
        assert f"{r.peak_offset:.2f} px" in r.message


def test_ref_small_other_events_fail(ref_small, tmp_path):
    stream = _shuffle_events(ref_small / "lyso_dev_r345.stream", tmp_path / "s.stream", 30)
    c = check_stream(str(stream), data_roots=[str(ref_small)])
    assert c.exit_status == EXIT_MISMATCH and c.result.geometry_ok and not c.result.frames_ok
