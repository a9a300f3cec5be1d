"""``streamfilter merge``: a quick unweighted merge of streams into a CrystFEL ``.hkl``."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import add_progress_argument
from ._mtz import add_mtz_arguments, check_mtz_options, is_mtz_output, write_merged_mtz


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``streamfilter merge`` (call with the object from ``add_subparsers()``)."""
    p = sub.add_parser(
        "merge",
        help="quick unweighted merge of streams into a CrystFEL .hkl (like process_hkl)",
        description=(
            "Merge all observations of all crystals into the asymmetric unit of a point group "
            "with a plain mean, as process_hkl --polarisation=none does, and write a CrystFEL "
            "reflection list.  No scaling, partiality or polarisation correction "
            "(partialator's job)."
        ),
    )
    p.add_argument("streams", nargs="+", metavar="STREAM", help="input stream(s), '-' = stdin")
    p.add_argument(
        "-y",
        "--symmetry",
        required=True,
        metavar="POINTGROUP",
        help="merging point group, CrystFEL symbol (4/mmm, 422, mmm, 2/m_uab, -1 ...)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.hkl",
        help="output reflection list ('-' = stdout); a name ending in .mtz writes an MTZ",
    )
    p.add_argument(
        "--min-measurements",
        type=int,
        default=2,
        metavar="N",
        help="leave out reflections seen fewer than N times (default 2)",
    )
    p.add_argument(
        "--min-snr",
        type=float,
        default=None,
        metavar="X",
        help="drop observations with I < X*sigma(I)",
    )
    p.add_argument(
        "--push-res",
        type=float,
        default=None,
        metavar="R",
        help="drop observations beyond the crystal's resolution limit + R (nm^-1)",
    )
    p.add_argument(
        "--halves",
        action="store_true",
        help="also write OUT.hkl1 and OUT.hkl2, two random half-sets of crystals",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the half-set split (default 1)")
    add_mtz_arguments(p)
    add_progress_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)
    return p


def _command_line(args: argparse.Namespace) -> str:
    """The merge command as it could be typed again (for the audit trail of the .hkl)."""
    parts = ["streamfilter merge", *args.streams, "-y", args.symmetry, "-o", args.output]
    if args.min_measurements != 2:
        parts += ["--min-measurements", str(args.min_measurements)]
    if args.min_snr is not None:
        parts += ["--min-snr", repr(args.min_snr)]
    if args.push_res is not None:
        parts += ["--push-res", repr(args.push_res)]
    if args.halves:
        parts += ["--halves", "--seed", str(args.seed)]
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter merge``; returns the exit status."""
    from ..analysis.hkl import write_hkl
    from ..analysis.merge import Merger, audit_notes
    from ..analysis.symmetry import point_group
    from ..errors import StreamfilterError

    quiet = bool(getattr(args, "quiet", False))
    pg = point_group(args.symmetry)
    if args.output != "-" and any(
        os.path.exists(s) and os.path.exists(args.output) and os.path.samefile(s, args.output)
        for s in args.streams
        if s != "-"
    ):
        raise StreamfilterError(f"{args.output}: output would overwrite an input stream")
    check_mtz_options(args)
    cells: list | None = None
    if is_mtz_output(args.output):
        from ..crystal import CellCollector

        cells = CellCollector()
    merger = Merger(
        pg, min_snr=args.min_snr, push_res=args.push_res, halves=args.halves, seed=args.seed
    )
    headers: list = []
    for path in args.streams:
        merger.add_stream(path, quiet=quiet, header_out=headers, crystals_out=cells)
    command = _command_line(args)
    notes = audit_notes(command, headers)
    merged = merger.result(args.min_measurements)
    if cells is not None:
        outputs = [write_merged_mtz(args, merger, merged, notes, headers, cells)]
    else:
        write_hkl(args.output, merged, notes=notes)
        outputs = [args.output]
    if args.halves and cells is None:
        for i, half in enumerate(merger.half_results(args.min_measurements), start=1):
            write_hkl(f"{args.output}{i}", half, notes=notes)
            outputs.append(f"{args.output}{i}")
    for w in merger.stats.incomplete_tails:
        print(f"merge: warning: {w} (not merged)", file=sys.stderr)
    if not quiet:
        st = merger.stats
        print(
            f"merged {st.n_observations} observations from {st.n_crystals_used}/"
            f"{st.n_crystals} crystals into {len(merged)} unique reflections "
            f"(point group {pg.symbol}, >= {args.min_measurements} measurements)",
            file=sys.stderr,
        )
        dropped = [
            (st.n_rejected_snr, "--min-snr"),
            (st.n_rejected_res, "--push-res"),
            (st.n_nonfinite, "non-finite I"),
        ]
        for n, why in dropped:
            if n:
                print(f"  {n} observations dropped ({why})", file=sys.stderr)
        print("wrote " + ", ".join(outputs), file=sys.stderr)
    return 0
