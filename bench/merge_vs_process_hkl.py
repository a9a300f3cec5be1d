"""`streamfilter merge` against CrystFEL's `process_hkl`: time, peak memory, same rows.

    python bench/merge_vs_process_hkl.py                       # 113 MB stream in bench/out/
    python bench/merge_vs_process_hkl.py --size 340 --options="--scale --stat=STAT"

Builds a stream of about ``--size`` MB by repeating the chunks of ref-small's r345 stream
(``stream_files/example.stream`` without ``../shared``; see bench_stream.py), then runs
``process_hkl -i S -y 4/mmm -o A OPTIONS`` and ``streamfilter merge S -y 4/mmm -o B OPTIONS``
(``STAT`` in the options becomes a file of each), each in a fresh process, ``--repeat``
times interleaved, and prints the fastest wall time, the peak RSS, the ratio merge /
process_hkl (the floor is 1: not slower) and whether the reflection rows (and ``--stat``
files) are identical.  Without process_hkl (``--crystfel-bin``, default: found on PATH)
only streamfilter is timed.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_stream import OUT, build  # noqa: E402

OUT = OUT / "merge_vs_process_hkl"


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of a command in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def _rows(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return lines[3 : lines.index("End of reflections")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=113, help="stream size in MB (default 113)")
    ap.add_argument("--options", default="", help="extra process_hkl options, one string")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crystfel-bin", help="folder of CrystFEL's programs (default: PATH)")
    a = ap.parse_args()
    stream = build(a.size)
    OUT.mkdir(parents=True, exist_ok=True)
    exe = Path(a.crystfel_bin or ".") / "process_hkl"
    process_hkl = str(exe) if a.crystfel_bin and exe.is_file() else shutil.which("process_hkl")
    runs: dict[str, list[str]] = {}
    for name in ("process_hkl", "streamfilter"):
        opts = [o.replace("STAT", str(OUT / f"{name}.stat")) for o in a.options.split()]
        out = str(OUT / f"{name}.hkl")
        if name == "process_hkl" and process_hkl:
            runs[name] = [process_hkl, "-i", str(stream), "-y", "4/mmm", "-o", out, *opts]
        elif name == "streamfilter":
            runs[name] = [sys.executable, "-m", "streamfilter", "merge", str(stream), "-y",
                          "4/mmm", "-o", out, "-q", *opts]  # fmt: skip
    best: dict[str, tuple[float, float]] = {}
    for _ in range(a.repeat):
        for name, argv in runs.items():
            wall, rss = _run(argv)
            if name not in best or wall < best[name][0]:
                best[name] = (wall, rss)
    size_mb = stream.stat().st_size / 1e6
    print(f"{stream.name}: {size_mb:.0f} MB, options: {a.options or '(none)'}")
    for name, (wall, rss) in best.items():
        print(f"  {name:12s} {wall:6.2f} s  {rss:6.0f} MB peak RSS")
    if "process_hkl" in best:
        ratio = best["streamfilter"][0] / best["process_hkl"][0]
        same = _rows(OUT / "process_hkl.hkl") == _rows(OUT / "streamfilter.hkl")
        if "STAT" in a.options:
            same &= filecmp.cmp(OUT / "process_hkl.stat", OUT / "streamfilter.stat", False)
        print(f"  time ratio merge / process_hkl: {ratio:.2f} (floor 1.00: not slower)")
        print(f"  identical output: {'yes' if same else 'NO'}")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
