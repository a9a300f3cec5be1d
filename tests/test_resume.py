"""Interruptions and ``reintegrate --resume``.

* SIGINT, SIGTERM or SIGKILL during ``reintegrate``, ``cat`` or ``split`` never modifies the
  input and never leaves a file at the output path; SIGINT/SIGTERM also remove every
  temporary file (exit status 130 for SIGINT, 143 for SIGTERM).  SIGKILL cannot be cleaned up
  after: a plain run then leaves its hidden ``.OUT.*.partial`` temporary file, never ``OUT``.
* A ``--resume`` run killed mid-way (SIGKILL, SIGINT, SIGTERM; with ``-j 2``; twice in a row;
  with ``--table``) keeps ``OUT.partial`` and ``OUT.sfjournal``; running it again finishes
  it, and the output (and table) are byte-identical to an uninterrupted run.
* The journal is checked: other options, a changed input, a truncated partial file, a
  corrupt journal or position, a partial file locked by a running process are clear errors
  that leave the resumable state as it was; a normal run to the same output clears the
  leftovers.
* A signal whose KeyboardInterrupt Python swallows (it landed in a ``__del__``) still stops
  the run at its next write.

Runs are killed when their journal (or temporary file) shows they are under way: no
sleeps, no timing asserts.  Data: a simulated data set repeated to 360 chunks.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamfilter import reintegrate
from streamfilter.errors import StreamfilterError
from streamfilter.interrupt import clear_stop_requests, quiet_unraisable, request_stop
from streamfilter.pipeline.journal import journal_path, partial_path
from streamfilter.stream import StreamWriter
from streamfilter.synth import SynthConfig, generate

from .test_fuzz import split_chunks

REPEAT = 60  # 6 frames x 60 = 360 chunks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A long stream (its directory holds the frames), and its uninterrupted output."""
    d = tmp_path_factory.mktemp("long")
    ds = generate(d, SynthConfig(seed=21, n_frames=6, panel_width=96, panel_height=96))
    head, pieces = split_chunks(ds.stream_path.read_bytes())
    src = d / "long.stream"
    src.write_bytes(head + b"".join(pieces) * REPEAT + b"trailing bytes kept as they are\n")
    ref = d / "reference.stream"
    summary = reintegrate(str(src), str(ref), table=str(d / "reference.csv"))
    assert summary.counters["chunks"] == 6 * REPEAT
    return src, ref.read_bytes(), (d / "reference.csv").read_bytes()


def workdir(src: Path, tmp_path: Path) -> Path:
    """A copy of the input beside a link to its frames (the output directory)."""
    shutil.copy(src, tmp_path / src.name)
    (tmp_path / "synth.h5").symlink_to(src.parent / "synth.h5")
    return tmp_path / src.name


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamfilter.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 30.0) -> None:
    """Poll until ``ready()`` (the run is under way); fail if the process ends first."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read().decode()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.002)


def journaled_chunk(out: Path) -> int:
    try:
        return json.loads(journal_path(out).read_text())["checkpoint"]["position"]["chunk"]
    except (OSError, ValueError, KeyError):
        return -1


def interrupt(proc: subprocess.Popen, out: Path, sig: int, after: int) -> tuple[int, str]:
    """Send ``sig`` once the journal shows chunk ``after`` reached; exit status, stderr."""
    wait_for(proc, lambda: journaled_chunk(out) >= after, f"a checkpoint at chunk {after}")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def resume_args(src: Path, out: Path, *extra: str) -> list[str]:
    return [
        "reintegrate",
        str(src),
        "-o",
        str(out),
        "-q",
        "--resume",
        "--journal-every",
        "0",
        *extra,
    ]


# --------------------------------------------------------------------------------------------
# --resume
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sig, jobs, table",
    [
        (signal.SIGKILL, "1", False),  # a crash: nothing can be cleaned up
        (signal.SIGINT, "2", True),  # Ctrl-C with worker processes, and a --table
        (signal.SIGTERM, "1", False),  # a batch system's time limit
    ],
)
def test_killed_run_resumes_to_identical_output(sig, jobs, table, data, tmp_path):
    src0, reference, reference_table = data
    src = workdir(src0, tmp_path)
    before = src.read_bytes()
    out = tmp_path / "out.stream"
    extra = ["-j", jobs] + (["--table", str(tmp_path / "t.csv")] if table else [])
    status, err = interrupt(start(*resume_args(src, out, *extra)), out, sig, after=40)
    if sig == signal.SIGKILL:
        assert status == -signal.SIGKILL
    else:
        assert status == (143 if sig == signal.SIGTERM else 130), err
        assert "--resume" in err and str(journal_path(out)) in err and "Traceback" not in err
    assert not out.exists()
    kept = {src.name, "synth.h5", partial_path(out).name, journal_path(out).name}
    if table:
        kept.add("t.csv.partial")
    left = set(os.listdir(tmp_path))
    if sig == signal.SIGKILL:  # killed while it replaced its journal: the next run tidies up
        left.discard(journal_path(out).name + ".tmp")
    assert left == kept
    done = journaled_chunk(out)
    assert 40 <= done < 6 * REPEAT
    assert (
        partial_path(out).stat().st_size
        >= json.loads(journal_path(out).read_text())["checkpoint"]["sizes"][0]
    )
    # run the same command again: it continues from the journal
    proc = subprocess.run(
        [sys.executable, "-m", "streamfilter.cli", *resume_args(src, out, *extra)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert out.read_bytes() == reference
    if table:
        assert (tmp_path / "t.csv").read_bytes() == reference_table
    assert set(os.listdir(tmp_path)) == {src.name, "synth.h5", out.name} | (
        {"t.csv"} if table else set()
    )
    assert src.read_bytes() == before


def test_interrupted_twice_and_summary_counts_every_chunk(data, tmp_path):
    src0, reference, _ = data
    src = workdir(src0, tmp_path)
    out = tmp_path / "out.stream"
    interrupt(start(*resume_args(src, out)), out, signal.SIGKILL, after=20)
    first = journaled_chunk(out)
    interrupt(start(*resume_args(src, out)), out, signal.SIGTERM, after=first + 30)
    assert journaled_chunk(out) >= first + 30
    summary = reintegrate(str(src), str(out), resume=True, journal_every=0)
    assert out.read_bytes() == reference
    c = summary.counters  # restored from the journal: the whole run, not the last part
    assert c["chunks"] == 6 * REPEAT
    assert c["frames_read"] + c["no_crystals"] + c["passed_through"] == c["chunks"]
    assert not journal_path(out).exists() and not partial_path(out).exists()


# --------------------------------------------------------------------------------------------
# The journal is checked, and a failed check changes nothing
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(data, tmp_path_factory):
    """A directory holding the state a killed --resume run leaves."""
    src0, _, _ = data
    d = tmp_path_factory.mktemp("interrupted")
    src = workdir(src0, d)
    out = d / "out.stream"
    interrupt(start(*resume_args(src, out)), out, signal.SIGKILL, after=10)
    return d


def state(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    "change",
    [
        "other options",
        "input changed",
        "partial truncated",
        "journal position",
        "journal corrupt",
        "partial locked",
    ],
)
def test_a_journal_that_does_not_fit_is_refused_and_kept(change, interrupted, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(interrupted, d, symlinks=True)
    src, out = d / "long.stream", d / "out.stream"
    kwargs = {"resume": True}
    lock = None
    if change == "other options":
        kwargs["int_radius"] = (2.0, 3.0, 5.0)
        message = "with other options"
    elif change == "input changed":
        with open(src, "ab") as f:
            f.write(b"\n")
        message = "changed since"
    elif change == "partial truncated":
        os.truncate(partial_path(out), 100)
        message = "was changed or truncated"
    elif change == "journal position":
        record = json.loads(journal_path(out).read_text())
        record["checkpoint"]["position"]["offset"] += 1
        journal_path(out).write_text(json.dumps(record))
        message = "is not the beginning of a chunk"
    elif change == "journal corrupt":
        journal_path(out).write_text('{"format": "streamfilter journal", "vers')
        message = "not a valid journal"
    else:
        lock = open(partial_path(out), "rb")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)
        message = "another streamfilter run is writing"
    before = state(d)
    try:
        with pytest.raises(StreamfilterError, match=message):
            reintegrate(str(src), str(out), **kwargs)
    finally:
        if lock is not None:
            lock.close()
    assert state(d) == before


def test_resume_needs_a_seekable_input_and_a_file_output(data, tmp_path):
    src0, _, _ = data
    src = workdir(src0, tmp_path)
    with pytest.raises(StreamfilterError, match="needs file outputs"):
        reintegrate(str(src), "-", resume=True)
    gz = tmp_path / "x.stream.gz"
    gz.write_bytes(b"")
    with pytest.raises(StreamfilterError, match="regular, uncompressed input"):
        reintegrate(str(gz), str(tmp_path / "o.stream"), resume=True)
    with pytest.raises(StreamfilterError, match="--dask"):
        reintegrate(str(src), str(tmp_path / "o.stream"), resume=True, dask="local")
    assert sorted(os.listdir(tmp_path)) == sorted([src.name, "synth.h5", gz.name])


def test_a_normal_run_clears_the_leftovers_of_an_interrupted_one(interrupted, data, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(interrupted, d, symlinks=True)
    out = d / "out.stream"
    assert partial_path(out).exists() and journal_path(out).exists()
    reintegrate(str(d / "long.stream"), str(out))
    assert out.read_bytes() == data[1]
    assert not partial_path(out).exists() and not journal_path(out).exists()


# --------------------------------------------------------------------------------------------
# Interruptions of plain runs: reintegrate, cat, split
# --------------------------------------------------------------------------------------------


def temporaries(d: Path) -> list[str]:
    return [p for p in os.listdir(d) if p.endswith(".partial")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_plain_reintegrate_interrupted(sig, data, tmp_path):
    """``reintegrate - -o OUT``: interrupted while it waits for the rest of its input."""
    src0, _, _ = data
    src = workdir(src0, tmp_path)
    before = src.read_bytes()
    out = tmp_path / "out.stream"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamfilter.cli", "reintegrate", "-", "-o", str(out), "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,  # the frames of a stream on standard input are looked for here
    )
    head, pieces = split_chunks(before)
    body = b"".join(pieces)
    # 6 MB (more than the reader's 4 MB block) of a longer stream, then nothing
    proc.stdin.write((head + body * (2 + (6 << 20) // len(body)))[: 6 << 20])
    proc.stdin.flush()
    wait_for(proc, lambda: temporaries(tmp_path), "output being written")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists()
    check_killed(proc, sig, err, tmp_path, {src.name, "synth.h5"})


def check_killed(proc: subprocess.Popen, sig: int, err: bytes, d: Path, keep: set[str]) -> None:
    """SIGINT/SIGTERM: exit status 130/143 and only ``keep`` left; SIGKILL: no process is left to
    clean up, so only hidden temporary files may remain besides ``keep``."""
    left = set(os.listdir(d))
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        extra = left - keep
        assert all(n.startswith(".") and n.endswith(".partial") for n in extra), extra
    else:
        assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
        assert b"interrupted" in err or b"SIGTERM" in err
        assert b"Traceback" not in err
        assert left == keep


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_cat_interrupted(sig, data, tmp_path):
    """``cat FILE - -o OUT``: interrupted while it waits for the rest of standard input."""
    src0, _, _ = data
    src = workdir(src0, tmp_path)
    before = src.read_bytes()
    out = tmp_path / "out.stream"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamfilter.cli", "cat", str(src), "-", "-o", str(out), "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdin.write(before[: len(before) // 3])  # a third of a second stream, then nothing
    proc.stdin.flush()

    def copying() -> bool:  # the temporary output holds most of the first input
        return any(
            (tmp_path / t).stat().st_size > len(before) // 2
            for t in temporaries(tmp_path)
            if (tmp_path / t).exists()
        )

    wait_for(proc, copying, "the first input being copied")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists()
    check_killed(proc, sig, err, tmp_path, {src.name, "synth.h5"})
    assert src.read_bytes() == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_split_interrupted_leaves_no_shard(sig, data, tmp_path):
    src0, _, _ = data
    src = tmp_path / "big.stream"
    head, pieces = split_chunks(src0.read_bytes())
    with open(src, "wb") as f:  # ~130 MB, so that the split is still under way when stopped
        f.write(head)
        for _ in range(50):
            f.write(b"".join(pieces))
    before = os.stat(src)
    proc = start("split", str(src), "-n", "40", "-o", str(tmp_path / "part"), "--no-cache")
    # stop it the moment a shard is being written, then interrupt it
    wait_for(proc, lambda: temporaries(tmp_path), "a shard being written")
    proc.send_signal(signal.SIGSTOP)
    shards_then = [p for p in os.listdir(tmp_path) if p.startswith("part-")]
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert shards_then == [], "the split had finished before it was interrupted"
    check_killed(proc, sig, err, tmp_path, {"big.stream"})
    after = os.stat(src)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    src.unlink()  # do not keep 130 MB in pytest's temporary directories


def test_a_stop_request_python_swallows_still_stops_the_run(capsys):
    """A signal whose KeyboardInterrupt lands in a ``__del__`` or weakref callback is
    swallowed by Python; the writers still stop at their next write, silently."""

    class Finalised:
        def __del__(self):
            request_stop(signal.SIGTERM)  # as if SIGTERM arrived while this ran

    old = sys.unraisablehook
    sys.unraisablehook = quiet_unraisable
    try:
        Finalised()  # finalised at once: its KeyboardInterrupt is "ignored" by Python
        writer = StreamWriter(io.BytesIO())
        with pytest.raises(KeyboardInterrupt):
            writer.write(b"----- Begin chunk -----\n")
        assert writer.bytes_written == 0
    finally:
        clear_stop_requests()
        sys.unraisablehook = old
    assert "Traceback" not in capsys.readouterr().err
