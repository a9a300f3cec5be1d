"""Progress counted in frames: the status line, the line every N seconds off a terminal, the
frame total (counted with the chunk index, or estimated from bytes), ``--progress-every``."""

from __future__ import annotations

import io
import re

import pytest

import streamfilter.progress as progress
from streamfilter.cli import main
from streamfilter.progress import Progress, byte_progress, count_frames, set_every

from .streamtext import build_stream


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c)
    return c


@pytest.fixture(autouse=True)
def default_interval():
    yield
    set_every(None)


def test_status_with_a_counted_total(clock):
    p = Progress("reintegrate", frames=400)
    clock.t += 10
    for _ in range(100):
        p.update(1000)
    assert p.frames == 100 and p.n == 100_000
    assert p.status() == "reintegrate: 100/400 frames (25%), 10.0 frames/s, 30s left"
    clock.t += 290
    assert p.status().endswith("0.3 frames/s, 15m00s left")


def test_total_estimated_from_bytes_or_unknown(clock):
    p = Progress("cat", size=10_000)
    clock.t += 2
    for _ in range(5):
        p.update(500)  # a quarter of the bytes in 5 frames: about 20 frames
    assert p.expected_frames() == 20
    assert p.status() == "cat: 5/~20 frames (25%), 2.5 frames/s, 6s left"
    q = Progress("info")  # standard input: no size
    clock.t += 1
    q.update(123)
    assert q.status() == "info: 1 frames, 1.0 frames/s"


def test_lines_every_interval_then_a_last_line(clock):
    out = io.StringIO()
    p = Progress("reintegrate", frames=10, mode="lines", interval=30, file=out)
    for _ in range(10):
        clock.t += 10  # one frame every 10 s: a line at 30 s, 60 s, 90 s
        p.update(1)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "reintegrate: 3/10 frames (30%), 0.1 frames/s, 1m10s left",
        "reintegrate: 6/10 frames (60%), 0.1 frames/s, 40s left",
        "reintegrate: 9/10 frames (90%), 0.1 frames/s, 10s left",
        "reintegrate: 10 frames in 1m40s (0.1 frames/s)",
    ]


def test_short_runs_and_quiet_print_nothing(clock):
    out = io.StringIO()
    with Progress("cat", mode="lines", interval=30, file=out) as p:
        clock.t += 5
        p.update(10)
    assert out.getvalue() == ""
    assert byte_progress(100, "x", quiet=True).mode == "off"
    # standard error is not a terminal under pytest: lines, unless the interval is 0
    assert byte_progress(100, "x").mode == "lines"
    set_every(0)
    assert byte_progress(100, "x").mode == "off"


def test_count_frames_uses_the_chunk_index(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMFILTER_CACHE", str(tmp_path / "cache"))
    s = build_stream(seed=2, n_chunks=7)
    p = tmp_path / "a.stream"
    p.write_bytes(s.text)
    assert count_frames(str(p)) == 7
    cut = tmp_path / "cut.stream"  # still being written: the last chunk is not counted
    cut.write_bytes(s.text[: s.text.rindex(b"----- End chunk -----")])
    assert count_frames(str(cut)) == 6
    assert count_frames("-") is None and count_frames(str(tmp_path / "a.stream.gz")) is None
    bar = byte_progress(p.stat().st_size, "reintegrate", count=str(p))
    assert bar.total == 7
    assert byte_progress(p.stat().st_size, "r", quiet=True, count=str(p)).total is None


def test_progress_every_on_the_command_line(tmp_path, capsys):
    s = build_stream(seed=2, n_chunks=5)
    p = tmp_path / "a.stream"
    p.write_bytes(s.text)
    out = tmp_path / "b.stream"
    assert main(["cat", str(p), "-o", str(out), "--progress-every", "1e-9"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^cat: \d/~?\d+ frames \(\d+%\), [\d.]+ frames/s", err, re.M), err
    assert re.search(r"^cat: 5 frames in \d+s \(", err, re.M), err
    assert progress.every == 1e-9
    assert main(["cat", str(p), "-o", str(tmp_path / "c.stream"), "-q"]) == 0
    assert "frames" not in capsys.readouterr().err
    assert progress.every == progress.DEFAULT_EVERY  # each command sets it afresh
    assert main(["info", str(p), "--progress-every", "0"]) == 0
    assert "frames/s" not in capsys.readouterr().err
