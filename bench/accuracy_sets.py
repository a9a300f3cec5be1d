"""Accuracy of robust and profile against the truth on every reference set, one table.

    python bench/accuracy_sets.py                          # every set found
    python bench/accuracy_sets.py --sets cspad agipd       # some of them
    python bench/accuracy_sets.py --shells --json out.json # also per-shell tables, JSON

Sets: ``ref-small`` (2 panels, stream r345) and ``cspad``, ``agipd``, ``pilatus-cbf`` of
``ref-detectors`` (64, 128 and 1 panel(s); stream ``*_r345.stream``, rings 3,4,5, true
orientations).  Each crystal is re-predicted and integrated with ``--method crystfel``,
``robust`` and ``profile`` on the same predicted reflections
(:func:`streamfilter.analysis.accuracy.compare_on_truth`); T is the true Bragg signal in
exactly the peak-disc pixels all of them estimate.  Printed per set, over the rows every
method writes: RMS(I - T) of each method as a ratio to crystfel's, **the floor** (the same
disc summed with the true noise-free background subtracted: ``background/mean`` of the
ref-detectors' ``truth.h5``, the component sum of ref-small's), RMS z = RMS((I - T)/sigma),
the rows each method writes, and whether the targets hold:
robust <= floor + 0.02, profile < floor, RMS z within 1.00 +- 0.10.

A set whose frames cannot be read (e.g. CBF without a CBF reader) is reported and skipped.
The data are looked for in ``$STREAMFILTER_REF_SMALL`` / ``$STREAMFILTER_REF_DETECTORS`` or
``../shared/data/`` beside the repository; without them the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SETS = ("ref-small", "cspad", "agipd", "pilatus-cbf")
TOLERANCE = 0.02  # robust may lie this far above the floor (ratio to crystfel)


def find_set(name: str) -> tuple[Path, Path] | None:
    """(stream, truth) of a reference set, or None when it is not on this machine."""
    shared = REPO.parent / "shared" / "data"
    if name == "ref-small":
        env = os.environ.get("STREAMFILTER_REF_SMALL")
        root = Path(env) if env else shared / "ref-small"
        stream, truth = root / "lyso_dev_r345.stream", root / "lyso_dev_truth.h5"
    else:
        env = os.environ.get("STREAMFILTER_REF_DETECTORS")
        root = (Path(env) if env else shared / "ref-detectors") / name
        stream, truth = root / f"{name}_r345.stream", root / "truth.h5"
    return (stream, truth) if stream.is_file() and truth.is_file() else None


def measure(name: str, stream: Path, truth: Path, max_chunks: int | None) -> dict:
    """Run the three methods and the floor on one set; the summary figures."""
    from streamfilter.analysis.accuracy import compare_on_truth
    from streamfilter.integrate.profile import ProfileOptions
    from streamfilter.integrate.robust import RobustOptions

    options = RobustOptions()
    t0 = time.perf_counter()
    frames = 0

    def count(done: int) -> None:
        nonlocal frames
        frames = done

    cmp = compare_on_truth(
        stream, truth, options=options, perfect_background=True, max_chunks=max_chunks,
        extra={"profile": ("profile", ProfileOptions(options))}, progress=count,
    )  # fmt: skip
    secs = time.perf_counter() - t0
    tables = cmp.tables()
    ref = tables["crystfel"].overall
    out: dict = {
        "set": name,
        "frames": frames,
        "rows_common": int(ref.n),
        "rows_written": {m: int(w.sum()) for m, w in cmp.written.items() if m != "perfect"},
        "crystfel_rms": ref.rms_error,
        "seconds": secs,
        "tables": {m: t.to_dict() for m, t in tables.items()},
    }
    for m, t in tables.items():
        out[m] = {"ratio": t.overall.rms_error / ref.rms_error, "rms_z": t.overall.rms_z}
    floor = out["perfect"]["ratio"]
    z_ok = all(abs(out[m]["rms_z"] - 1.0) <= 0.10 for m in ("robust", "profile"))
    out["targets"] = {
        "robust_within_floor": out["robust"]["ratio"] <= floor + TOLERANCE,
        "profile_below_floor": out["profile"]["ratio"] < floor,
        "rms_z_within_0.1": z_ok,
    }
    out["_tables"] = tables
    return out


def format_summary(results: list[dict]) -> str:
    """The one table: a line per set."""
    head = (
        f"{'set':12s} {'frames':>6s} {'rows':>6s} | {'crystfel':>8s} {'z':>5s} | "
        f"{'robust':>6s} {'z':>5s} | {'profile':>7s} {'z':>5s} | {'floor':>6s} | "
        f"{'written c/r/p':>17s} | targets"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['set']:12s} not measured: {r['error']}")
            continue
        w = r["rows_written"]
        ok = ", ".join(k for k, v in r["targets"].items() if not v)
        lines.append(
            f"{r['set']:12s} {r['frames']:6d} {r['rows_common']:6d} | "
            f"{r['crystfel_rms']:8.2f} {r['crystfel']['rms_z']:5.2f} | "
            f"{r['robust']['ratio']:6.3f} {r['robust']['rms_z']:5.2f} | "
            f"{r['profile']['ratio']:7.3f} {r['profile']['rms_z']:5.2f} | "
            f"{r['perfect']['ratio']:6.3f} | "
            f"{w['crystfel']:5d}/{w['robust']:5d}/{w['profile']:5d} | "
            + ("all met" if not ok else "missed: " + ok)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--max-chunks", type=int, default=None, help="only the first N frames")
    ap.add_argument("--shells", action="store_true", help="also print per-shell tables")
    ap.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = ap.parse_args(argv)

    from streamfilter.analysis.accuracy import format_side_by_side
    from streamfilter.errors import StreamfilterError

    results = []
    for name in args.sets:
        found = find_set(name)
        if found is None:
            results.append({"set": name, "error": "data not found"})
            continue
        try:
            r = measure(name, *found, args.max_chunks)
        except StreamfilterError as e:  # e.g. frames in a format this build cannot read
            results.append({"set": name, "error": str(e).splitlines()[0]})
            continue
        tables = r.pop("_tables")
        print(f"{name}: {found[0].name}, {r['frames']} frames, {r['seconds']:.1f} s", flush=True)
        if args.shells:
            print(format_side_by_side(tables, "crystfel"))
            print()
        results.append(r)
    if all("error" in r for r in results):
        print("no reference set found (../shared/data); nothing to measure.")
        return 0
    print()
    print(
        "RMS(I - T) as a ratio to crystfel's on the rows every method writes (crystfel: "
        "absolute, ADU);\nfloor = the disc summed with the true background subtracted; "
        "z = RMS((I - T)/sigma)"
    )
    print(format_summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
