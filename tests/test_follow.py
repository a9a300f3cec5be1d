"""``--follow``: a stream that indexamajig is still writing, read as it grows.

A background thread appends the bundled example stream (20 chunks, its frames beside it) to
a file in pieces, cut inside lines, inside the chunk markers and inside the header, with
pauses longer than the reader's sleep between looks; the followed run must give exactly
what a run on the finished file gives (bytes, summary, exit status), including a stream
that stops inside a chunk.  A file truncated or replaced while it is followed is an error.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from pathlib import Path

import pytest

from streamfilter.cli import main
from streamfilter.errors import StreamFormatError
from streamfilter.stream import Follow, read_stream

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "stream_files" / "example.stream"
BEGIN = b"----- Begin chunk -----"
END = b"----- End chunk -----"
IDLE = "1"  # seconds: the pauses below (up to 0.25 s) must not end a followed stream


def _cuts(data: bytes, seed: int) -> list[int]:
    """Where the writer stops: inside the header, inside a begin and an end marker, just
    before an end marker's newline, and at 20 random offsets (mostly inside lines)."""
    rng = random.Random(seed)
    second_begin = data.index(BEGIN, data.index(END))
    fixed = [
        100,
        second_begin + 7,
        data.index(END, second_begin) + 9,
        data.index(END, second_begin) + len(END),
    ]
    return sorted(set(fixed + [rng.randrange(1, len(data)) for _ in range(20)]))


class Writer(threading.Thread):
    """Appends ``data[start_at:stop_at]`` to ``path`` (emptied first when ``start_at`` is 0)
    in pieces ending at :func:`_cuts`, pausing after each (0, 10 or 250 ms, fixed seed), as
    indexamajig appends chunks."""

    def __init__(self, path: Path, data: bytes, *, seed: int = 1, start_at: int = 0,
                 stop_at: int | None = None) -> None:
        super().__init__(daemon=True)
        self.path, self.data, self.seed, self.start_at = path, data, seed, start_at
        self.stop_at = len(data) if stop_at is None else stop_at
        if not start_at:
            path.write_bytes(b"")

    def run(self) -> None:
        rng = random.Random(self.seed)
        at = self.start_at
        with open(self.path, "ab") as f:
            for cut in [c for c in _cuts(self.data, self.seed) if at < c < self.stop_at] + [
                    self.stop_at]:
                f.write(self.data[at:cut])
                f.flush()
                at = cut
                time.sleep(rng.choice((0.0, 0.01, 0.25)))


@pytest.fixture()
def growing(tmp_path):
    """(path of a stream to be written beside the example's frames, its final bytes)."""
    for name in ("example.h5", "example.geom"):
        (tmp_path / name).symlink_to(EXAMPLE.parent / name)
    return tmp_path / "live.stream", EXAMPLE.read_bytes()


def test_reader_yields_the_chunks_of_the_finished_file_and_sleeps_between_looks(growing):
    path, data = growing
    waits = []
    writer = Writer(path, data)
    writer.start()
    with read_stream(path, follow=Follow(idle=0.5, on_wait=lambda: waits.append(1))) as r:
        got = [(c.index, c.line_no, c.preceding + c.raw) for c in r]
        header, trailer, tail = r.header.raw, r.trailer, r.incomplete_tail
    writer.join()
    with read_stream(path) as r:
        want = [(c.index, c.line_no, c.preceding + c.raw) for c in r]
    assert got == want and len(got) == data.count(BEGIN) == 20
    assert header + b"".join(g[2] for g in got) + trailer == data and tail is None
    # it waited (the pauses, the idle end) but never polled hot: a look every 0.125 s or so
    assert 1 < len(waits) < 200


def _reintegrate(src: Path, out: Path, *extra: str) -> int:
    return main(["reintegrate", str(src), "-o", str(out), "--progress-every", "0", *extra])


@pytest.mark.parametrize("method, jobs", [("crystfel", "1"), ("profile", "2")])
def test_reintegrate_follow_writes_the_bytes_of_a_run_on_the_finished_stream(
        growing, method, jobs, capsys):
    path, data = growing
    writer = Writer(path, data, seed=int(jobs))
    writer.start()
    followed = path.with_name("followed.stream")
    status = _reintegrate(path, followed, "--method", method, "-j", jobs, "--follow",
                          "--idle", IDLE)
    writer.join()
    assert path.read_bytes() == data
    assert status == _reintegrate(path, path.with_name("plain.stream"), "--method", method) == 0
    assert followed.read_bytes() == path.with_name("plain.stream").read_bytes()
    summaries = [re.sub(r"time .*", "", s) for s in capsys.readouterr().err.split("reintegrate: ")]
    assert summaries[1] == summaries[2] and "20 chunks" in summaries[1]


def test_a_stream_that_stops_inside_a_chunk_ends_as_without_follow(growing, capsys):
    path, data = growing
    tenth = [m.start() for m in re.finditer(BEGIN, data)][9]
    writer = Writer(path, data, stop_at=tenth + 5000)  # inside the tenth chunk's table
    writer.start()
    followed = path.with_name("followed.stream")
    status = _reintegrate(path, followed, "--method", "crystfel", "--follow", "--idle", IDLE,
                          "-q")
    writer.join()
    err_followed = capsys.readouterr().err
    plain = path.with_name("plain.stream")
    assert status == _reintegrate(path, plain, "--method", "crystfel", "-q")
    assert followed.read_bytes() == plain.read_bytes()
    assert followed.read_bytes().count(BEGIN) == 9
    line = data[:tenth].count(b"\n") + 1
    warning = f"{path}, line {line}, chunk 9: incomplete last chunk"
    assert warning in err_followed and warning in capsys.readouterr().err


def test_info_follow_prints_the_report_of_the_finished_stream(growing, capsys):
    path, data = growing
    writer = Writer(path, data, seed=3)
    writer.start()
    assert main(["info", str(path), "--follow", "--idle", IDLE]) == 0
    writer.join()
    followed = capsys.readouterr()
    assert main(["info", str(path), "-q"]) == 0
    assert followed.out == capsys.readouterr().out
    live = followed.err.strip().splitlines()
    assert len(live) >= 2 and all(line.startswith("info: ") for line in live)
    # the last count so far, printed before the idle end, is the whole stream's
    assert live[-1].endswith("chunks 20, hits 16 (80.0%), indexed frames 16 (80.0%), "
                             "crystals 20, reflections 3617")


def test_a_followed_stream_that_is_truncated_or_replaced_is_an_error(growing):
    path, data = growing
    half = data.index(BEGIN, len(data) // 2)
    for change in ("truncate", "replace"):
        path.write_bytes(data[:half])

        def change_it(change=change):
            time.sleep(0.3)
            if change == "truncate":
                os.truncate(path, 1000)
            else:
                path.with_name("new").write_bytes(data)
                os.replace(path.with_name("new"), path)

        thread = threading.Thread(target=change_it, daemon=True)
        thread.start()
        with pytest.raises(StreamFormatError, match=f"{change}d? .*while it was followed") as e:
            with read_stream(path, follow=Follow(idle=5)) as r:
                list(r)
        thread.join()
        assert e.value.path == str(path)


def test_follow_refuses_what_cannot_be_followed(growing, tmp_path, capsys):
    import gzip

    path, data = growing
    path.write_bytes(data)
    gz = tmp_path / "live.stream.gz"
    gz.write_bytes(gzip.compress(data))
    out = str(tmp_path / "out.stream")
    cases = [
        (["reintegrate", str(path), "-o", out, "--follow", "--dask", "local"], "--dask"),
        (["reintegrate", "-", "-o", out, "--follow"], "standard input"),
        (["info", str(gz), "--follow"], "compressed"),
        (["info", str(path), "--follow", "--idle", "-1"], "--idle"),
    ]
    for argv, why in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert why in err and "error" in err
    assert not Path(out).exists()


def test_an_interrupted_follow_resume_run_resumes_after_the_stream_grew(growing, capsys):
    """--follow --resume: killed during the beamtime, run again later: the journal's input
    has grown since its checkpoint, and the run continues there to the same bytes."""
    from streamfilter.interrupt import clear_stop_requests
    from streamfilter.pipeline import run as run_module

    path, data = growing
    half = [m.start() for m in re.finditer(BEGIN, data)][12] + 3000  # inside chunk 12
    first = Writer(path, data, stop_at=half)
    first.start()
    out = path.with_name("out.stream")
    real, added = run_module.ReintegrateSummary.add, []

    def add_then_stop(self, result):
        real(self, result)
        added.append(1)
        if len(added) == 8:
            raise KeyboardInterrupt

    run_module.ReintegrateSummary.add = add_then_stop
    try:
        assert _reintegrate(path, out, "--method", "crystfel", "--follow", "--idle", IDLE,
                            "--resume", "--journal-every", "0") == 130
    finally:
        run_module.ReintegrateSummary.add = real
        clear_stop_requests()
    first.join()
    journal = json.loads(Path(f"{out}.sfjournal").read_text())
    resumed_at = journal["checkpoint"]["position"]["chunk"]
    assert resumed_at == 7 and not out.exists()
    rest = Writer(path, data, start_at=half, seed=5)
    rest.start()
    added.clear()
    run_module.ReintegrateSummary.add = lambda self, result: (real(self, result),
                                                              added.append(1))
    try:
        assert _reintegrate(path, out, "--method", "crystfel", "--follow", "--idle", IDLE,
                            "--resume") == 0
    finally:
        run_module.ReintegrateSummary.add = real
    rest.join()
    assert len(added) == 20 - resumed_at  # it went on from the journal, not from the start
    plain = path.with_name("plain.stream")
    assert _reintegrate(path, plain, "--method", "crystfel", "-q") == 0
    assert out.read_bytes() == plain.read_bytes()
    assert not Path(f"{out}.sfjournal").exists() and not Path(f"{out}.partial").exists()


def test_sigterm_while_waiting_for_the_stream_stops_the_run_and_keeps_its_progress(growing):
    """A batch system's time limit during a pause of the stream: exit 143, nothing at OUT,
    the journal and partial output kept for --resume."""
    import signal
    import subprocess
    import sys

    path, data = growing
    # 18 complete chunks: more than the 10 frames with peaks the check before the run reads
    path.write_bytes(data[: [m.start() for m in re.finditer(BEGIN, data)][18] + 100])
    out = path.with_name("out.stream")
    journal = Path(f"{out}.sfjournal")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamfilter.cli", "reintegrate", str(path), "-o", str(out),
         "--method", "crystfel", "-q", "--follow", "--idle", "600", "--resume",
         "--journal-every", "0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(2400):  # until the checkpoint before the last chunk: then it waits
            if proc.poll() is not None or (
                    journal.exists()
                    and json.loads(journal.read_text())["checkpoint"]["position"]["chunk"] == 17):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not out.exists() and journal.exists() and Path(f"{out}.partial").exists()
