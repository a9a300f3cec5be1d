"""``streamfilter stats``: check_hkl's table (and half-set CC1/2, CC*, Rsplit) of one input."""

from __future__ import annotations

import argparse
import sys

from ._common import add_progress_argument


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``streamfilter stats`` (call with the object from ``add_subparsers()``)."""
    from ..analysis.liststats import STATS_JSON_KEYS

    p = sub.add_parser(
        "stats",
        help="check_hkl's per-shell table of a stream, .hkl or .mtz, with CC1/2, CC*, Rsplit",
        description=(
            "Completeness, multiplicity, <I/sigma> per resolution shell as check_hkl computes "
            "them, and where half-sets exist (a stream: random halves of its crystals; X.hkl: "
            "X.hkl1 and X.hkl2 beside it; an MTZ from merge --halves: its *_HALF1/2 columns) "
            "CC1/2, CC* and Rsplit as compare_hkl computes them.  A stream is merged first as "
            "streamfilter merge does."
        ),
        epilog=STATS_JSON_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="FILE", help="stream ('-' = stdin), .hkl or .mtz")
    p.add_argument(
        "-y",
        "--symmetry",
        default=None,
        metavar="POINTGROUP",
        help="point group (CrystFEL symbol); default: the list's own; required for a stream",
    )
    p.add_argument(
        "-p",
        "--cell",
        default=None,
        metavar="FILE",
        help="unit cell (CrystFEL .cell or PDB); default: the MTZ's, or the stream header's "
        "or median cell; required for a .hkl",
    )
    p.add_argument("--highres", type=float, default=None, metavar="D",
                   help="high-resolution limit, Angstrom")  # fmt: skip
    p.add_argument("--lowres", type=float, default=None, metavar="D",
                   help="low-resolution limit, Angstrom")  # fmt: skip
    p.add_argument("--shells", type=int, default=10, metavar="N",
                   help="number of resolution shells (default 10)")  # fmt: skip
    p.add_argument("--json", default=None, metavar="FILE",
                   help="write all numbers as JSON ('-' = stdout)")  # fmt: skip
    p.add_argument("--column", default=None, metavar="LABEL",
                   help="MTZ intensity column (default: the first of type J, with its sigma)")
    p.add_argument("--min-measurements", type=int, default=2, metavar="N",
                   help="a stream's merged reflections need N observations (default 2)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of a stream's half-set split (default 1)")  # fmt: skip
    p.add_argument("-u", "--no-scale", action="store_true",
                   help="do not Wilson-scale the second half-set (compare_hkl's -u)")
    add_progress_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter stats``; returns the exit status."""
    from ..analysis.liststats import StatsOptions, format_stats, list_stats, overall_line
    from ..analysis.report import write_json
    from ..errors import StreamfilterError

    if args.shells < 1:
        raise StreamfilterError(f"--shells must be at least 1, not {args.shells}")
    opts = StatsOptions(
        symmetry=args.symmetry,
        cell=args.cell,
        highres=args.highres,
        lowres=args.lowres,
        nshells=args.shells,
        column=args.column,
        min_measurements=args.min_measurements,
        seed=args.seed,
        scale=not args.no_scale,
        quiet=bool(args.quiet),
    )
    report = list_stats(args.input, opts)
    for w in report["inputs"].get("incomplete_tails", []):
        print(f"streamfilter stats: warning: {w} (not merged)", file=sys.stderr)
    if args.json != "-":
        sys.stdout.write(format_stats(report))
    if args.json:
        write_json(report, args.json)
    if not args.quiet:
        print(overall_line(report), file=sys.stderr)
    return 0
