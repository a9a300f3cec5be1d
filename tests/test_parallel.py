"""Scale-out: -j N, Dask and split -> reintegrate -> cat give the same bytes as -j 1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamfilter import reintegrate
from streamfilter.errors import StreamFormatError
from streamfilter.pipeline.engines import ordered_map
from streamfilter.stream import read_stream
from streamfilter.stream.cat import cat_streams
from streamfilter.stream.index import build_index, read_range
from streamfilter.stream.split import shard_bounds, split_stream

from .streamtext import build_stream


@pytest.fixture(scope="module")
def r345(ref_small, tmp_path_factory):
    """ref-small's r345 stream and its frames, copied so the stream's directory is ours."""
    d = tmp_path_factory.mktemp("r345")
    shutil.copy(ref_small / "lyso_dev_r345.stream", d)
    (d / "lyso_dev.h5").symlink_to(ref_small / "lyso_dev.h5")
    return d / "lyso_dev_r345.stream"


@pytest.fixture(scope="module")
def reference_output(r345, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "j1.stream"
    reintegrate(str(r345), str(out), jobs=1)
    return out.read_bytes()


def test_jobs_2_is_byte_identical(r345, reference_output, tmp_path):
    out = tmp_path / "j2.stream"
    summary = reintegrate(str(r345), str(out), jobs=2, batch_size=3)
    assert out.read_bytes() == reference_output
    assert summary.counters["chunks"] == 30 and summary.counters["frames_read"] == 30


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_jobs_2_is_byte_identical_with_other_start_methods(method, r345, reference_output,
                                                           tmp_path):
    """macOS starts worker processes with spawn and Python 3.14 on Linux with forkserver:
    nothing is inherited from the parent, and the output is still -j 1's."""
    out = tmp_path / "j2.stream"
    code = (
        "import multiprocessing, sys\n"
        "if __name__ == '__main__':\n"
        f"    multiprocessing.set_start_method({method!r})\n"
        "    from streamfilter import reintegrate\n"
        "    reintegrate(sys.argv[1], sys.argv[2], jobs=2, batch_size=3)\n"
    )
    script = tmp_path / "run.py"
    script.write_text(code)
    subprocess.run([sys.executable, str(script), str(r345), str(out)], check=True)
    assert out.read_bytes() == reference_output


def test_dask_local_cluster_is_byte_identical(r345, reference_output, tmp_path):
    pytest.importorskip(
        "dask.distributed", reason="dask.distributed not installed (the [dask] extra)")
    out = tmp_path / "dask.stream"
    summary = reintegrate(str(r345), str(out), jobs=2, dask="local")
    assert out.read_bytes() == reference_output
    assert summary.counters["chunks"] == 30


def test_split_reintegrate_cat_is_byte_identical(r345, reference_output, tmp_path):
    shards = split_stream(str(r345), 4, str(tmp_path / "part"), cache=False)
    outs = []
    for s in shards:
        o = tmp_path / (s.stem + ".out.stream")
        reintegrate(str(s), str(o), data_roots=[str(r345.parent)])
        outs.append(o)
    cat_streams(outs, tmp_path / "joined.stream")
    # the audit line records the shards' --data-root; a whole-stream run with the same one
    whole = tmp_path / "whole.stream"
    reintegrate(str(r345), str(whole), data_roots=[str(r345.parent)])
    assert (tmp_path / "joined.stream").read_bytes() == whole.read_bytes()
    # and that is the reference but for the audit line
    line = re.compile(rb"(?m)^streamfilter \S+ reintegrate [^\n]*\n")
    assert line.sub(b"", whole.read_bytes()) == line.sub(b"", reference_output)


def test_index_ranges_equal_the_full_reader(tmp_path):
    built = build_stream(seed=4, n_chunks=25)
    # a second stream cat-joined behind, and trailing bytes
    data = built.text + build_stream(seed=5, n_chunks=5).text + b"\n"
    p = tmp_path / "s.stream"
    p.write_bytes(data)
    index = build_index(p, cache=False)
    with read_stream(p) as r:
        full = [(c.index, c.line_no, c.preceding, c.raw) for c in r]
    assert len(index) == 30
    assert index.lines.tolist() == [f[1] for f in full]
    for start, stop in [(0, 30), (3, 9), (24, 30), (29, 30)]:
        with read_range(index, start, stop) as r:
            part = [(c.index, c.line_no, c.preceding, c.raw) for c in r]
        assert part[1:] == full[start + 1:stop]
        assert part[0][::3] == full[start][::3]  # its preceding bytes belong to the range before


def test_index_of_a_file_longer_than_its_read_blocks_is_exact(tmp_path):
    """Offsets and line numbers over several 16 MiB read blocks (markers cut by a block
    end), with B everywhere in panel and file names, equal an independent count."""
    text = build_stream(seed=6, n_chunks=30).text.replace(b" p1\n", b" BB1\n")
    text = text.replace(b"data/run_", b"BEAM/B_")
    head, body = text.split(b"----- Begin chunk -----\n", 1)
    body = b"----- Begin chunk -----\n" + body
    data = head + body * ((40 << 20) // len(body))
    cut = data.rfind(b"\n----- Begin chunk -----", 0, 1 << 24)  # move it across 16 MiB:
    pad = (1 << 24) - 12 - cut  # a header line pushes the marker over the block end
    data = head + b"x" * (pad - 1) + b"\n" + data[len(head):]
    assert data.find(b"\n----- Begin chunk -----", (1 << 24) - 24) < 1 << 24
    p = tmp_path / "big.stream"
    p.write_bytes(data)
    index = build_index(p, cache=False)
    offsets, i = [], data.find(b"\n----- Begin chunk -----")
    while i >= 0:
        offsets.append(i + 1)
        i = data.find(b"\n----- Begin chunk -----", i + 1)
    lines = np.cumsum([data.count(b"\n", a, b) for a, b in zip([0, *offsets], offsets)]) + 1
    assert index.offsets.tolist() == offsets
    assert index.lines.tolist() == lines.tolist()


def test_split_balances_bytes_and_joins_back(tmp_path):
    data = build_stream(seed=8, n_chunks=40).text
    p = tmp_path / "s.stream"
    p.write_bytes(data)
    index = build_index(p, cache=False)
    bounds = shard_bounds(index, 4)
    assert bounds[0][0] == 0 and bounds[-1][1] == 40
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    shards = split_stream(str(p), 4, str(tmp_path / "x"), cache=False)
    sizes = np.array([s.stat().st_size for s in shards])
    assert sizes.max() < 2 * sizes.min()
    for s in shards:  # every shard is a valid stream with the header
        with read_stream(s) as r:
            assert r.header.geometry_text is not None
            list(r)
    cat_streams(shards, tmp_path / "joined.stream")
    assert (tmp_path / "joined.stream").read_bytes() == data


def test_sigint_leaves_no_partial_output(r345, tmp_path):
    # A stream long enough to still be running when interrupted: r345 repeated 20 times.
    with read_stream(r345) as r:
        header, body = r.header.raw, b"".join(c.raw for c in r)
    big = tmp_path / "big.stream"
    big.write_bytes(header + body * 100)
    (tmp_path / "lyso_dev.h5").symlink_to(r345.parent / "lyso_dev.h5")
    out = tmp_path / "out.stream"
    proc = subprocess.Popen([sys.executable, "-m", "streamfilter.cli", "reintegrate", str(big),
                             "-o", str(out), "-j", "2", "-q"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.stream.*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the run is writing its temporary output
    time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.stream", "lyso_dev.h5"]


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="pipe sizes (F_SETPIPE_SZ) are Linux-only")
def test_pool_pipes_hold_whole_batches():
    """-j N widens the pool's two pipes to 1 MiB, so a worker neither waits to hand back a
    batch's ~0.3 MB result nor to read its next batch (it relies on private attributes of
    concurrent.futures: this fails if a Python release renames them)."""
    import fcntl
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from streamfilter.pipeline.step import _init_pool_worker
    from streamfilter.pipeline.tuning import PIPE_BYTES, widen_pipes

    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < PIPE_BYTES:
        pytest.skip("/proc/sys/fs/pipe-max-size is below the 1 MiB pipes this test widens to")
    pool = ProcessPoolExecutor(max_workers=1, initializer=_init_pool_worker)
    try:
        assert widen_pipes(pool)
        for queue in (pool._call_queue, pool._result_queue):
            for end in (queue._reader, queue._writer):
                assert fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) >= PIPE_BYTES
        big = b"x" * (3 * PIPE_BYTES // 4)  # more than a default pipe, less than ours
        assert pool.submit(bytes.upper, big).result() == big.upper()
    finally:
        pool.shutdown()


def _slow_pid(item: int) -> tuple[int, int]:
    time.sleep(0.01)
    return item, os.getpid()


def _fails_at_5(item: int) -> int:
    time.sleep(0.005)
    if item == 5:
        raise ValueError("item 5")
    return item


def _stream_error(item: int) -> None:
    raise StreamFormatError("in.stream", 123, item, "a broken chunk", "BAD LINE")


def test_ordered_map_keeps_order_and_the_caller_works_too():
    """-j 2 is this process and one worker: both compute, results come in input order."""
    results = list(ordered_map(_slow_pid, range(24), jobs=2))
    assert [item for item, _ in results] == list(range(24))
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2


@pytest.mark.parametrize("jobs", [2, 3])
def test_ordered_map_raises_an_error_in_its_turn(jobs):
    """Whichever process ran the failing item, every result before it comes out first."""
    got = []
    with pytest.raises(ValueError, match="item 5"):
        for r in ordered_map(_fails_at_5, range(20), jobs=jobs):
            got.append(r)
    assert got == [0, 1, 2, 3, 4]


def test_a_workers_stream_error_arrives_intact():
    """The first item always goes to a worker process: its error reaches the caller with
    file, line, chunk and text (pickled and unpickled)."""
    with pytest.raises(StreamFormatError) as e:
        list(ordered_map(_stream_error, [7], jobs=2))
    assert (e.value.path, e.value.line_no, e.value.chunk_no) == ("in.stream", 123, 7)
    assert "a broken chunk" in str(e.value) and "BAD LINE" in str(e.value)


def test_workers_leave_line_numbers_to_the_reading_process(r345, tmp_path):
    """Workers get chunks without line numbers (counting them would cost the reading
    process a pass over every newline); a chunk whose message needs one is processed again
    by the reading process.  Every frame missing, -j 2 in batches of 2 (the first batch
    always goes to the worker): the output and every passed-through message, with its line
    number, are those of -j 1."""
    src = tmp_path / "missing.stream"
    src.write_bytes(r345.read_bytes().replace(b"Image filename: lyso_dev.h5",
                                              b"Image filename: missing.h5"))
    runs = []
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}.stream"
        s = reintegrate(str(src), str(out), jobs=jobs, batch_size=2, method="crystfel",
                        allow_failed="100%")  # nothing re-integrated: accepted here
        runs.append((out.read_bytes(), dict(s.counters), s.passed_through, s.failed))
    assert runs[0] == runs[1]
    out = runs[0][0]
    audit = out[out.index(b"\nstreamfilter ") + 1:]
    audit = audit[: audit.index(b"\n") + 1]
    marker = re.compile(rb"(?m)^streamfilter_passed_through = [^\n]*\n")
    assert len(marker.findall(out)) == 30
    unmarked = marker.sub(b"", out.replace(audit, b"", 1))
    assert unmarked == src.read_bytes()  # every chunk copied unchanged, but for the marker
    messages = runs[0][2]
    assert len(messages) == runs[0][1]["passed_through"] == 30
    text = src.read_bytes()
    first_line = text[: text.index(b"----- Begin chunk -----")].count(b"\n") + 1
    assert messages[0].startswith(f"{src}, line {first_line}, chunk 0: image file 'missing.h5'")


def _blas_threads_after_setup(config) -> tuple[int, list[int]]:
    """This process's pid and its BLAS/OpenMP pools' thread counts once it can integrate."""
    from threadpoolctl import threadpool_info

    from streamfilter.pipeline.step import _worker_processor

    _worker_processor(config)
    return os.getpid(), [pool["num_threads"] for pool in threadpool_info()]


def test_every_integrating_process_uses_one_blas_thread(tmp_path):
    """-j 2: the reading process and the worker each integrate with one BLAS thread, so -j N
    keeps N cores busy (OpenBLAS would start one thread per core in each)."""
    from streamfilter.pipeline import config_for
    from streamfilter.synth import SynthConfig, generate

    ds = generate(tmp_path, SynthConfig(seed=4, n_frames=1))
    with read_stream(ds.stream_path) as reader:
        config = config_for(reader.header, str(ds.stream_path), method="crystfel")
    code = (
        "import json, os, sys; sys.path.insert(0, {repo!r}); "
        "from streamfilter.pipeline.engines import ordered_map; "
        "from tests.test_parallel import _blas_threads_after_setup as f; "
        "import pickle; config = pickle.loads({blob!r}); "
        "out = list(ordered_map(f, [config] * 12, jobs=2)); "
        "print(json.dumps([os.getpid(), out]))"
    )
    import json
    import pickle
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    from streamfilter.pipeline.tuning import THREAD_VARIABLES

    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    run = [sys.executable, "-c", code.format(repo=repo, blob=pickle.dumps(config))]
    parent, results = json.loads(subprocess.run(run, capture_output=True, text=True, env=env,
                                                check=True).stdout)  # fmt: skip
    pids = {pid for pid, _ in results}
    assert len(pids) == 2 and parent in pids  # the reading process works too
    assert all(counts and set(counts) == {1} for _, counts in results)
    # a user's own choice stands
    env["OPENBLAS_NUM_THREADS"] = "2"
    parent, results = json.loads(subprocess.run(run, capture_output=True, text=True, env=env,
                                                check=True).stdout)  # fmt: skip
    assert all(2 in counts for _, counts in results)
