"""Re-integration speed against its floor, parallel speed-up, flat memory, index speed.

    python bench/bench_reintegrate.py              # defaults: 4x and 20x repeated stream
    python bench/bench_reintegrate.py --repeat 4 --big 20

Source: ref-small's r345 stream and its frames when ``../shared`` is there, else the bundled
``stream_files/example.stream``.  The stream is repeated to make longer runs (the same frames
are read again each time).  Printed, all measured in this run:

  floor      read + decode every frame the stream references with plain h5py, nothing else
             (floor, -j 1 and -j 2 run --runs times, interleaved; the fastest of each counts)
  -j 1       streamfilter reintegrate --method crystfel, one process   (ratio to the floor)
  -j 2       the same on two processes (this one and a worker)          (speed-up over -j 1)
  2 x -j 1/2 two independent -j 1 runs on half the frames each, side by side: the most two
             cores give this work (the ceiling of -j 2's speed-up on this machine)
  robust     --method robust, -j 1                                       (ratio to the floor)
  profile    --method profile (the default), -j 1 and -j 2               (ratio to the floor)
  RSS        peak resident memory of the whole run (max over the main process and workers),
             default method, -j 2, for the 1x and the big repeated stream
  index      building the chunk index vs a plain read of the same file
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(REPO))


def source() -> Path:
    ref = REPO.parent / "shared" / "data" / "ref-small" / "lyso_dev_r345.stream"
    return ref if ref.is_file() else REPO / "stream_files" / "example.stream"


def repeated(n: int) -> Path:
    """``n`` copies of the source's chunks behind its header, beside links to its frames."""
    from streamfilter.stream import read_stream

    src = source()
    d = OUT / "reint"
    d.mkdir(parents=True, exist_ok=True)
    for f in src.parent.glob("*.h5"):
        link = d / f.name
        if not link.exists():
            link.symlink_to(f)
    path = d / f"{src.stem}_x{n}.stream"
    if not path.exists():
        with read_stream(src) as r:
            header = r.header.raw
            body = b"".join(c.raw for c in r)
        path.write_bytes(header + body * n)
    return path


def floor_seconds(path: Path) -> tuple[float, int]:
    """Read and decode every referenced frame with h5py (files kept open), nothing else."""
    import h5py
    import hdf5plugin  # noqa: F401

    from streamfilter.geometry import parse_geometry
    from streamfilter.stream import read_stream

    t0 = time.perf_counter()
    files: dict[str, h5py.File] = {}
    n = 0
    with read_stream(path) as r:
        det = parse_geometry(r.header.geometry_text)
        data_path = det.panels[0].data
        for chunk in r:
            if not chunk.crystals:
                continue
            f = files.get(chunk.filename)
            if f is None:
                f = files[chunk.filename] = h5py.File(path.parent / chunk.filename, "r")
            ev = (chunk.event or "//").split("//")[-1]
            ds = f[data_path]
            frame = ds[int(ev)] if ev else ds[()]
            frame.astype("float32")
            n += 1
    for f in files.values():
        f.close()
    return time.perf_counter() - t0, n


def run_env() -> dict[str, str]:
    """The environment of the timed runs: Python may cache bytecode (in bench/out, not in the
    tree), as it does for an installed package.  Without that (PYTHONDONTWRITEBYTECODE=1)
    every run would first recompile ~30 modules (~0.12 s), which no installed copy does."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    return env


def warm_up() -> None:
    """Import everything a run imports once, so that the bytecode cache is filled."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from streamfilter.cli import build_parser;"
            " build_parser(); import streamfilter.integrate.rings,"
            " streamfilter.integrate.robust, streamfilter.integrate.profile,"
            " streamfilter.pipeline",
        ],
        check=True,
        cwd=REPO,
        env=run_env(),
    )


def _start(path: Path, out: Path, *args: str) -> subprocess.Popen:
    """One reintegrate run in a fresh process; it prints its wall seconds (from ``main()``
    on) and the peak RSS in MB of itself and its workers."""
    code = (
        "import resource, sys, time; from streamfilter.cli import main; t=time.perf_counter();"
        " rc=main(sys.argv[1:]); dt=time.perf_counter()-t;"
        " m=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        " print(dt, m/1024); sys.exit(rc)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, "reintegrate", str(path), "-o", str(out), "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=run_env(),
    )


def _finish(proc: subprocess.Popen, out: Path) -> tuple[float, float]:
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(stderr)
    dt, rss = stdout.split()
    out.unlink(missing_ok=True)
    return float(dt), float(rss)


def run(path: Path, *args: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, main process and workers) of one reintegrate run."""
    out = OUT / "reint" / "out.stream"
    return _finish(_start(path, out, *args), out)


def halves_side_by_side(half: Path) -> float:
    """Wall seconds of two independent ``-j 1`` runs on half the frames each, started
    together: what two cores give this work with no coordination at all (the ceiling of
    ``-j 2``, which also has to read, hand out, collect and write in order)."""
    outs = [OUT / "reint" / f"half{i}.stream" for i in (0, 1)]
    procs = [_start(half, o, "-j", "1", "--method", "crystfel") for o in outs]
    return max(_finish(p, o)[0] for p, o in zip(procs, outs))


def index_vs_read(path: Path) -> tuple[float, float]:
    from streamfilter.stream.index import build_index

    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_index(path, cache=False)
    return plain, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=4, help="copies of the stream for timing")
    ap.add_argument("--big", type=int, default=20, help="copies for the memory check")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each timed case")
    args = ap.parse_args()
    print(f"source: {source()}  (2 cores; every figure measured in this run)")
    path = repeated(args.repeat)
    warm_up()
    # floor, -j 1 and -j 2 interleaved, --runs times: the fastest of each counts (the 2
    # cores are shared; a slower run measures the neighbours, not the code)
    half = repeated(args.repeat // 2) if args.repeat % 2 == 0 else None
    floors, j1, j2, pairs = [], [], [], []
    for _ in range(args.runs):
        floor, frames = floor_seconds(path)
        floors.append(floor)
        j1.append(run(path, "-j", "1", "--method", "crystfel"))
        j2.append(run(path, "-j", "2", "--method", "crystfel"))
        if half is not None:
            pairs.append(halves_side_by_side(half))
    floor = min(floors)
    (t1, m1), (t2, m2) = min(j1), min(j2)
    print(f"\n{frames} frames ({args.repeat}x the source stream); floor, -j 1 and -j 2: fastest "
          f"of {args.runs} interleaved runs")
    print(f"{'':12s}{'seconds':>9s}{'frames/s':>10s}{'RSS MB':>8s}   ratio")
    print(f"{'floor h5py':12s}{floor:9.2f}{frames / floor:10.1f}{'':8s}   1.00 (floor)")
    print(f"{'-j 1':12s}{t1:9.2f}{frames / t1:10.1f}{m1:8.0f}   {t1 / floor:.2f} x floor")
    print(f"{'-j 2':12s}{t2:9.2f}{frames / t2:10.1f}{m2:8.0f}   {t1 / t2:.2f} x faster than -j 1")
    if pairs:
        tp = min(pairs)
        print(f"{'2 x -j 1/2':12s}{tp:9.2f}{frames / tp:10.1f}{'':8s}   {t1 / tp:.2f} x faster "
              f"than -j 1 (two independent runs on half the frames each, side by side)")
    spread = ", ".join(f"{a[0] / f:.2f}/{a[0] / b[0]:.2f}" for f, a, b in zip(floors, j1, j2))
    print(f"{'':12s}each run (-j 1 x floor / -j 2 speed-up): {spread}")
    per_round = sorted(a[0] / b[0] for a, b in zip(j1, j2))
    print(f"{'':12s}-j 2 speed-up per round: median {statistics.median(per_round):.2f}, "
          f"range {per_round[0]:.2f}-{per_round[-1]:.2f}")
    if pairs:
        halves = ", ".join(f"{a[0] / p:.2f}" for a, p in zip(j1, pairs))
        print(f"{'':12s}two halves side by side, speed-up per round: {halves}")
    for method in ("robust", "profile"):
        tr, mr = run(path, "-j", "1", "--method", method)
        name = f"{method} -j 1"
        print(f"{name:12s}{tr:9.2f}{frames / tr:10.1f}{mr:8.0f}   {tr / floor:.2f} x floor")
    tp2, mp2 = run(path, "-j", "2", "--method", "profile")
    print(f"{'profile -j 2':12s}{tp2:9.2f}{frames / tp2:10.1f}{mp2:8.0f}   "
          f"{tr / tp2:.2f} x faster than profile -j 1")
    one = repeated(1)
    big = repeated(args.big)
    _, rss1 = run(one, "-j", "2")
    _, rssb = run(big, "-j", "2")
    print(
        f"\npeak RSS -j 2: 1x stream {rss1:.0f} MB, {args.big}x stream {rssb:.0f} MB "
        f"(ratio {rssb / rss1:.2f})"
    )
    plain, idx = index_vs_read(big)
    mb = big.stat().st_size / 1e6
    print(
        f"index of {mb:.0f} MB: {idx:.2f} s ({mb / idx:.0f} MB/s) vs plain read {plain:.2f} s "
        f"({mb / plain:.0f} MB/s): {idx / plain:.2f} x the read"
    )


if __name__ == "__main__":
    main()
    resource.getrusage(resource.RUSAGE_SELF)
