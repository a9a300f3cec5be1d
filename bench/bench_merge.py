"""merge and compare: wall time and peak memory at 1x and Nx the stream, against process_hkl.

    python bench/bench_merge.py                 # 1x and 20x, 3 interleaved runs each
    python bench/bench_merge.py --big 20 --runs 3

Source: ref-small's r345 stream (``../shared``) or the bundled example, repeated to make
the big stream (its chunks again and again).  Each command runs in a fresh process (so its
peak RSS is its own, measured by the parent with ``wait4``); the fastest of ``--runs``
interleaved runs counts.  Printed per stream size:

  merge         streamfilter merge -y 4/mmm -o OUT.hkl
  process_hkl   process_hkl -y 4/mmm -i IN -o OUT.hkl (when on PATH; CrystFEL 0.12)
  compare       streamfilter compare IN IN -y 4/mmm --json OUT (the stream against itself:
                every frame is paired)

and the ratio of peak RSS at Nx to that at 1x (constant memory: close to 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out" / "merge"


def source() -> Path:
    ref = REPO.parent / "shared" / "data" / "ref-small" / "lyso_dev_r345.stream"
    return ref if ref.is_file() else REPO / "stream_files" / "example.stream"


def repeated(n: int) -> Path:
    """``n`` copies of the source's chunks behind its header."""
    sys.path.insert(0, str(REPO))
    from streamfilter.stream import read_stream

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{source().stem}_x{n}.stream"
    if not path.exists():
        with read_stream(source()) as r:
            header = r.header.raw
            body = b"".join(c.raw for c in r)
        path.write_bytes(header + body * n)
    return path


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return dt, usage.ru_maxrss / 1024


def commands(stream: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "streamfilter.cli"]
    out = {
        "merge": [*cli, "merge", str(stream), "-y", "4/mmm", "-o", str(OUT / "m.hkl")],
        "compare": [*cli, "compare", str(stream), str(stream), "-y", "4/mmm",
                    "--json", str(OUT / "c.json")],  # fmt: skip
    }
    process_hkl = shutil.which("process_hkl")
    if process_hkl:
        out["process_hkl"] = [process_hkl, "-y", "4/mmm", "-i", str(stream),
                              "-o", str(OUT / "p.hkl")]  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=20, help="copies of the stream for the big run")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each command")
    args = ap.parse_args()
    print(f"source: {source()}")
    rss: dict[tuple[str, int], float] = {}
    for n in (1, args.big):
        stream = repeated(n)
        cmds = commands(stream)
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                dt, mb = timed(cmd)
                old = best.get(name)
                best[name] = (min(dt, old[0]) if old else dt, max(mb, old[1]) if old else mb)
        size = stream.stat().st_size / 1e6
        print(f"\n{n}x stream: {size:.0f} MB (fastest of {args.runs} runs; peak RSS)")
        for name, (dt, mb) in best.items():
            rss[(name, n)] = mb
            print(f"  {name:12s}{dt:8.2f} s{size / dt:8.0f} MB/s{mb:8.0f} MB")
        if "process_hkl" not in cmds:
            print("  process_hkl   not on PATH (CrystFEL not installed): skipped")
    print(f"\npeak RSS {args.big}x / 1x:")
    for name in ("merge", "compare", "process_hkl"):
        if (name, 1) in rss:
            print(f"  {name:12s}{rss[(name, args.big)] / rss[(name, 1)]:6.2f}")


if __name__ == "__main__":
    main()
