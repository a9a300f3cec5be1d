"""`reintegrate` checks, before it writes anything, that the geometry and the frames match the
stream (re-predicted reflections against the stream's found peaks, found peaks on bright
pixels), and reports what it could not do once per run."""

from __future__ import annotations

import re
import shutil

import pytest

from streamfilter.cli import main
from streamfilter.synth import SynthConfig, generate

from .test_checks import _geometry, _shuffle_events


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth"), SynthConfig(seed=6, n_frames=12))


def test_a_shifted_geometry_stops_the_run_before_any_output(synth, tmp_path, capsys):
    geom = _geometry(synth.stream_path, tmp_path, "shifted.geom", dx=3.0)
    out = tmp_path / "out.stream"
    rc = main(["reintegrate", str(synth.stream_path), "-o", str(out), "-g", geom, "-q",
               "--method", "crystfel"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert "do not match the stream" in err and "--force" in err
    assert re.search(r"\d+\.\d+ px", err)  # the figures are named
    rc = main(["reintegrate", str(synth.stream_path), "-o", str(out), "-g", geom, "-q",
               "--method", "crystfel", "--force"])  # fmt: skip
    assert rc == 0 and out.exists()


def test_the_streams_own_and_a_refined_geometry_pass(synth, tmp_path, capsys):
    refined = _geometry(synth.stream_path, tmp_path, "refined.geom", dx=0.05)
    for extra in ([], ["-g", refined]):
        out = tmp_path / "out.stream"
        rc = main(["reintegrate", str(synth.stream_path), "-o", str(out), "--method",
                   "crystfel", *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 0 and out.exists()
        assert "geometry and frames checked against the stream's peaks" in err
        out.unlink()


def test_frames_of_other_events_stop_the_run(synth, tmp_path, capsys):
    stream = _shuffle_events(synth.stream_path, tmp_path / "shuffled.stream", 12)
    for f in synth.stream_path.parent.glob("*.h5"):
        (tmp_path / f.name).symlink_to(f)
    rc = main(["reintegrate", str(stream), "-o", str(tmp_path / "o.stream"), "-q", "--method",
               "crystfel"])  # fmt: skip
    assert rc == 2 and "do not match the stream" in capsys.readouterr().err
    assert not (tmp_path / "o.stream").exists()


def test_a_frame_not_found_hint_is_given_once_with_a_count(synth, tmp_path, capsys):
    """Half the chunks name a file that is not there: each is listed on one line, and what
    to do about it is said once, with the number of frames it concerns."""
    d = tmp_path / "run"
    d.mkdir()
    for f in synth.stream_path.parent.glob("*.h5"):
        shutil.copy(f, d / f.name)
    text = synth.stream_path.read_text()
    chunks = text.split("----- Begin chunk -----")
    for i in range(1, len(chunks), 2):
        chunks[i] = re.sub(r"Image filename: \S+", "Image filename: gone.h5", chunks[i], count=1)
    stream = d / "partly.stream"
    stream.write_text("----- Begin chunk -----".join(chunks))
    rc = main(["reintegrate", str(stream), "-o", str(d / "o.stream"), "--method", "crystfel",
               "--allow-failed", "100%"])  # fmt: skip
    err = capsys.readouterr().err
    missing = len(range(1, len(chunks), 2))
    assert rc == 0
    assert err.count("The stream names the file") == 1  # the hint, once
    assert f"{missing} frame file(s) not found." in err
    assert err.count("not found; tried") == missing + 1  # a line per chunk, the first again


def test_a_stream_cut_inside_its_last_chunk_is_reported(synth, tmp_path, capsys):
    data = synth.stream_path.read_bytes()
    cut = tmp_path / "cut.stream"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    for f in synth.stream_path.parent.glob("*.h5"):
        (tmp_path / f.name).symlink_to(f)
    for quiet in ([], ["-q"]):
        out = tmp_path / "o.stream"
        rc = main(["reintegrate", str(cut), "-o", str(out), "--method", "crystfel", *quiet])
        err = capsys.readouterr().err
        assert rc == 0 and out.exists()
        assert "warning:" in err and "incomplete last chunk" in err
        out.unlink()


def test_a_cut_stream_is_reported_under_dask_too(synth, tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="dask not installed (the [dask] extra)")
    data = synth.stream_path.read_bytes()
    cut = tmp_path / "cut.stream"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    for f in synth.stream_path.parent.glob("*.h5"):
        (tmp_path / f.name).symlink_to(f)
    out, local = tmp_path / "dask.stream", tmp_path / "local.stream"
    assert main(["reintegrate", str(cut), "-o", str(local), "--method", "crystfel", "-q"]) == 0
    capsys.readouterr()
    rc = main(["reintegrate", str(cut), "-o", str(out), "--method", "crystfel", "-q",
               "--dask", "local", "-j", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0 and "incomplete last chunk" in err
    assert out.read_bytes() == local.read_bytes()  # the complete chunks, never the tail
