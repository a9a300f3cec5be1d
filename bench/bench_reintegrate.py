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

With ``--sets`` (e.g. ``--sets example,ref-small,cspad,agipd,pilatus-cbf``; ``all`` for every
set found) the same is printed per data set instead (each set's stream repeated to at least
``--frames`` frames): the floor (reading and decoding the frames with plain h5py or fabio),
every method's -j 1 time as a ratio to it, every method's -j 2 speed-up, and a breakdown of
the default method's time by stage (measured in this process, by wrapping the stage
functions).
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
    out.parent.mkdir(parents=True, exist_ok=True)
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


SHARED = REPO.parent / "shared" / "data"
SETS = {
    "example": REPO / "stream_files" / "example.stream",
    "ref-small": SHARED / "ref-small" / "lyso_dev_r345.stream",
    "cspad": SHARED / "ref-detectors" / "cspad" / "cspad_r345.stream",
    "agipd": SHARED / "ref-detectors" / "agipd" / "agipd_r345.stream",
    "pilatus-cbf": SHARED / "ref-detectors" / "pilatus-cbf" / "pilatus-cbf_r345.stream",
}
METHODS = ("crystfel", "robust", "profile")


def set_stream(name: str, min_frames: int) -> tuple[Path, list[str], int]:
    """The set's stream repeated to at least ``min_frames`` chunks, beside links to everything
    else in its folder (frames, geometry); the reintegrate arguments it needs (``-g`` when the
    folder has one geometry file) and the number of copies."""
    from streamfilter.stream import read_stream

    src = SETS[name]
    d = OUT / "sets" / name
    d.mkdir(parents=True, exist_ok=True)
    for f in src.parent.iterdir():
        link = d / f.name
        if f.suffix != ".stream" and not link.exists():
            link.symlink_to(f)
    with read_stream(src) as r:
        header = r.header.raw
        chunks = [c.raw for c in r]
    copies = max(1, -(-min_frames // len(chunks)))
    path = d / f"{src.stem}_x{copies}.stream"
    if not path.exists():
        path.write_bytes(header + b"".join(chunks) * copies)
    geoms = sorted(src.parent.glob("*.geom"))
    return path, (["-g", str(geoms[0])] if len(geoms) == 1 else []), copies


def set_floor(path: Path, args: list[str]) -> tuple[float, int]:
    """Read and decode every frame a stream's indexed chunks reference with the plain library
    (h5py for HDF5, the event's index on the first axis; fabio for CBF), nothing else."""
    import h5py
    import hdf5plugin  # noqa: F401

    from streamfilter.geometry import parse_geometry
    from streamfilter.stream import read_stream

    t0 = time.perf_counter()
    files: dict[str, h5py.File] = {}
    n = 0
    with read_stream(path) as r:
        text = Path(args[1]).read_text() if args else r.header.geometry_text
        data_path = parse_geometry(text).panels[0].data
        for chunk in r:
            if not chunk.crystals:
                continue
            name = path.parent / chunk.filename
            if name.suffix in (".cbf", ".gz"):
                import fabio

                fabio.open(str(name)).data.astype("float32")
            else:
                f = files.get(chunk.filename)
                if f is None:
                    f = files[chunk.filename] = h5py.File(name, "r")
                ev = [int(x) for x in (chunk.event or "//").split("//")[-1].split("/") if x]
                ds = f[data_path]
                (ds[tuple(ev)] if ev else ds[()]).astype("float32")
            n += 1
    for f in files.values():
        f.close()
    return time.perf_counter() - t0, n


#: the default method's stages: (label, module, attribute); a method is wrapped on its class
STAGES = (
    ("read + decode frame", "streamfilter.frames.source", "FrameSource.load"),
    ("predict", "streamfilter.pipeline.frame", "FrameIntegrator.predict"),
    ("background fit", "streamfilter.integrate.robust", "_frame_model"),
    ("boxes cut (per panel)", "streamfilter.integrate.robust", "_cut_panel"),
    ("robust sums", "streamfilter.integrate.robust", "integrate_robust"),
    ("profile learning", "streamfilter.integrate.profile", "_assign_profiles"),
    ("profile fits", "streamfilter.integrate.profile", "_fit_panel"),
    ("profile covariance", "streamfilter.integrate.profile", "_frame_covariance"),
    ("profile finish", "streamfilter.integrate.profile", "_finish_panel"),
)


def stage_breakdown(path: Path, args: list[str]) -> tuple[float, dict[str, float]]:
    """Wall seconds of one default-method ``-j 1`` run in this process and the seconds spent
    in each stage of :data:`STAGES` (a stage no longer found is left out)."""
    import importlib

    from streamfilter.cli import main as cli_main

    spent: dict[str, float] = {}
    undo = []
    for label, module, attr in STAGES:
        owner = importlib.import_module(module)
        *outer, name = attr.split(".")
        for part in outer:
            owner = getattr(owner, part)
        fn = getattr(owner, name, None)
        if fn is None:
            continue

        def timed(*a, _fn=fn, _label=label, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - t

        setattr(owner, name, timed)
        undo.append((owner, name, fn))
    out = OUT / "sets" / "stages.stream"
    t0 = time.perf_counter()
    try:
        cli_main(["reintegrate", str(path), "-o", str(out), "-q", "-j", "1", *args])
    finally:
        wall = time.perf_counter() - t0
        for owner, name, fn in undo:
            setattr(owner, name, fn)
        out.unlink(missing_ok=True)
    return wall, spent


def bench_sets(names: list[str], min_frames: int, runs: int) -> None:
    """Per data set: floor, every method's -j 1 ratio and -j 2 speed-up, default's stages."""
    print(f"per data set, each stream repeated to >= {min_frames} frames; floor and -j 1: "
          f"fastest of {runs} interleaved runs; -j 2: one run")
    for name in names:
        if not SETS[name].is_file():
            print(f"\n{name}: skipped ({SETS[name]} not found)")
            continue
        path, args, copies = set_stream(name, min_frames)
        floors, j1 = [], {m: [] for m in METHODS}
        for _ in range(runs):
            floor, frames = set_floor(path, args)
            floors.append(floor)
            for m in METHODS:
                j1[m].append(run(path, "-j", "1", "--method", m, *args)[0])
        floor = min(floors)
        print(f"\n{name}: {frames} frames ({copies} x {SETS[name].name}); floor "
              f"{1000 * floor / frames:.1f} ms/frame")
        print(f"{'method':10s}{'ms/frame':>10s}{'x floor':>9s}{'-j 2 speed-up':>15s}")
        for m in METHODS:
            t1 = min(j1[m])
            t2 = run(path, "-j", "2", "--method", m, *args)[0]
            print(f"{m:10s}{1000 * t1 / frames:10.1f}{t1 / floor:9.2f}{t1 / t2:15.2f}")
        wall, spent = stage_breakdown(path, args)
        print(f"default method by stage ({wall:.1f} s in this process):")
        for label, _, _ in STAGES:
            if label in spent:
                print(f"  {label:22s}{1000 * spent[label] / frames:8.1f} ms/frame")
        rest = wall - sum(spent.values())
        print(f"  {'everything else':22s}{1000 * rest / frames:8.1f} ms/frame "
              "(start-up, check, parse, write)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=4, help="copies of the stream for timing")
    ap.add_argument("--big", type=int, default=20, help="copies for the memory check")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each timed case")
    ap.add_argument("--sets", help="comma-separated data sets (or 'all'): per-set figures "
                    f"instead; sets: {', '.join(SETS)}")
    ap.add_argument("--frames", type=int, default=200, help="frames per set (--sets)")
    args = ap.parse_args()
    if args.sets:
        names = list(SETS) if args.sets == "all" else args.sets.split(",")
        unknown = [n for n in names if n not in SETS]
        if unknown:
            ap.error(f"unknown set(s): {', '.join(unknown)}")
        warm_up()
        bench_sets(names, args.frames, args.runs)
        return
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
