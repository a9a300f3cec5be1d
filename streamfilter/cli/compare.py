"""``streamfilter compare``: two streams (or reflection lists), per observation and merged."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``streamfilter compare`` (call with the object from ``add_subparsers()``)."""
    from ..analysis.pairing import PAIR_BY_HELP
    from ..analysis.report import JSON_KEYS

    p = sub.add_parser(
        "compare",
        help="compare two streams per observation and merged, per resolution shell",
        description=(
            "Compare two streams: matched observations (frames in both, crystals matched by "
            "orientation with reindexing) and merged data (completeness, multiplicity, "
            "<I/sigma>, CC1/2, CC*, CC and R1(I) between A and B and against a reference).  "
            "Two CrystFEL reflection lists may be given instead of streams (merged level only)."
        ),
        epilog=JSON_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", help="first stream (or .hkl, .mtz)")
    p.add_argument("b", metavar="B", help="second stream (or .hkl, .mtz)")
    p.add_argument(
        "-y",
        "--symmetry",
        default=None,
        metavar="POINTGROUP",
        help="merging point group (CrystFEL symbol; default -1, or the lists' own)",
    )
    p.add_argument("--shells", type=int, default=10, metavar="N",
                   help="number of resolution shells (default 10)")  # fmt: skip
    p.add_argument("--json", default=None, metavar="FILE", help="write all numbers as JSON")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG figures to DIR")
    p.add_argument(
        "--reference",
        default=None,
        metavar="FILE",
        help="reference reflection list, .hkl or .mtz (e.g. the truth), for CC and R1(I)",
    )
    p.add_argument("--column", metavar="LABEL", help="intensity column of MTZ inputs A and B "
                   "(default: the first of type J, with its sigma)")  # fmt: skip
    p.add_argument("--reference-column", metavar="LABEL",
                   help="intensity column of an MTZ --reference (default: the first of type J)")
    p.add_argument(
        "-p",
        "--cell",
        default=None,
        metavar="FILE",
        help="unit cell (CrystFEL .cell or PDB); default: stream header or median",
    )
    p.add_argument(
        "--highres",
        type=float,
        default=None,
        metavar="D",
        help="high-resolution limit of the shells, Angstrom",
    )
    p.add_argument(
        "--lowres",
        type=float,
        default=None,
        metavar="D",
        help="low-resolution limit of the shells, Angstrom",
    )
    p.add_argument(
        "--min-measurements",
        type=int,
        default=2,
        metavar="N",
        help="merged reflections need N observations (default 2, as process_hkl)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the half-set split (default 1)")
    p.add_argument("--pair-by", default="file", metavar="HOW", help=PAIR_BY_HELP)
    p.add_argument(
        "--data-root",
        action="append",
        default=[],
        metavar="DIR|OLD=NEW",
        help="where the frames are, as for reintegrate: image file names are resolved "
        "through these (after each stream's own directory) to pair the same file named "
        "differently (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter compare``; returns the exit status."""
    from ..analysis.compare import CompareOptions, compare_streams
    from ..analysis.mtz import is_reflection_list, read_reflections
    from ..analysis.pairing import parse_pair_by
    from ..analysis.report import format_report, write_json

    if args.plots:  # before the comparison, which can take minutes
        from ..analysis.plots import require_matplotlib

        require_matplotlib("--plots")
    pairing = parse_pair_by(args.pair_by, tuple(args.data_root))
    symmetry = args.symmetry
    if symmetry is None:
        symmetry = None
        if is_reflection_list(args.a):
            symmetry = read_reflections(args.a, args.column).symmetry
        if symmetry is None:
            symmetry = "-1"
            print(
                "streamfilter compare: warning: no point group given (-y): merging in -1, "
                "so symmetry-equivalent reflections are not merged and completeness, "
                "multiplicity and CC1/2 are those of P1; give -y POINTGROUP (e.g. -y 4/mmm)",
                file=sys.stderr,
            )
    opts = CompareOptions(
        pairing=pairing,
        symmetry=symmetry,
        nshells=args.shells,
        reference=args.reference,
        column=args.column,
        reference_column=args.reference_column,
        cell=args.cell,
        highres=args.highres,
        lowres=args.lowres,
        min_measurements=args.min_measurements,
        seed=args.seed,
        quiet=bool(getattr(args, "quiet", False)),
    )
    result = compare_streams(args.a, args.b, opts)
    for w in result.warnings:
        print(f"compare: warning: {w} (not read)", file=sys.stderr)
    sys.stdout.write(format_report(result.report))
    if args.json:
        write_json(result.report, args.json)
    if args.plots:
        from ..analysis.plots import write_compare_plots

        files = write_compare_plots(result, args.plots)
        if not opts.quiet:
            print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0
