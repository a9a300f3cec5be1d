"""``streamfilter merge``: merge streams into a CrystFEL ``.hkl`` as ``process_hkl`` does, with
its option names, values and defaults."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from ._common import add_progress_argument
from ._mtz import add_mtz_arguments, check_mtz_options, is_mtz_output, write_merged_mtz


def _polarisation(text: str):
    from ..analysis.polarisation import parse_polarisation

    try:
        return parse_polarisation(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """process_hkl's options that choose crystals and observations."""
    p.add_argument("--min-measurements", type=int, default=2, metavar="N",
                   help="leave out reflections seen fewer than N times (default 2)")
    p.add_argument("--min-snr", type=float, default=None, metavar="X",
                   help="drop observations with I < X*sigma(I) (default: none dropped)")
    p.add_argument("--max-adu", type=float, default=None, metavar="ADU",
                   help="drop observations whose peak value exceeds ADU (default: infinity)")
    p.add_argument("--min-res", type=float, default=None, metavar="A",
                   help="merge only crystals whose diffraction_resolution_limit reaches A "
                   "Angstrom (default: all)")
    p.add_argument("--push-res", "--res-push", type=float, default=None, metavar="R",
                   help="drop observations beyond the crystal's resolution limit + R nm^-1 "
                   "(default: infinity)")
    parity = p.add_mutually_exclusive_group()
    parity.add_argument("--even-only", dest="parity", action="store_const", const="even",
                        help="merge only the even-numbered crystals (2nd, 4th, ...)")
    parity.add_argument("--odd-only", dest="parity", action="store_const", const="odd",
                        help="merge only the odd-numbered crystals (1st, 3rd, ...)")
    p.add_argument("--start-after", type=int, default=0, metavar="N",
                   help="skip N crystals at the start of the stream(s)")
    p.add_argument("--stop-after", type=int, default=0, metavar="N",
                   help="stop after merging N crystals (default 0: all)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``streamfilter merge`` (call with the object from ``add_subparsers()``)."""
    from ..analysis.polarisation import HORIZONTAL, NONE

    p = sub.add_parser(
        "merge",
        help="merge streams into a CrystFEL .hkl, as process_hkl does (same options)",
        description=(
            "Merge all observations of all crystals into the asymmetric unit of a point group "
            "with a plain mean, as process_hkl does (same options and defaults, same numbers), "
            "and write a CrystFEL reflection list.  No partiality or outlier rejection "
            "(partialator's job)."
        ),
    )
    p.add_argument("streams", nargs="*", metavar="STREAM", help="input stream(s), '-' = stdin")
    p.add_argument("-i", "--input", dest="inputs", action="append", default=[],
                   metavar="STREAM", help="an input stream, as process_hkl takes it (repeatable)")
    p.add_argument("-y", "--symmetry", default="1", metavar="POINTGROUP",
                   help="merging point group, CrystFEL symbol (4/mmm, 422, mmm, 2/m_uab, -1, "
                   "-42m ...; default 1, as process_hkl)")
    p.add_argument("-o", "--output", default="processed.hkl", metavar="OUT.hkl",
                   help="output reflection list ('-' = stdout; default processed.hkl); a name "
                   "ending in .mtz writes an MTZ")
    p.add_argument("--polarisation", "--polarization", type=_polarisation, default=HORIZONTAL,
                   metavar="P",
                   help="polarisation correction: none, horiz, vert or <angle>deg, then "
                   "optionally the polarised percentage (horiz90, 45deg50); default horiz "
                   "(fully polarised horizontally), as process_hkl")
    p.add_argument("--no-polarisation", "--no-polarization", dest="polarisation",
                   action="store_const", const=NONE,
                   help="no polarisation correction (= --polarisation=none)")
    _add_selection_arguments(p)
    p.add_argument("--scale", action="store_true",
                   help="merge twice, scaling each crystal against the first merge")
    p.add_argument("--min-cc", type=float, default=None, metavar="CC",
                   help="merge twice, leaving out crystals whose CC against the first merge "
                   "is below CC (default: none)")
    p.add_argument("--stat", metavar="FILE",
                   help="merge twice and write, per crystal merged, 'filename event scale cc' "
                   "against the first merge (as process_hkl --stat)")
    p.add_argument("--halves", action="store_true",
                   help="also write OUT.hkl1 and OUT.hkl2, two random half-sets of crystals")
    p.add_argument("--seed", type=int, default=1, help="seed of the half-set split (default 1)")
    add_mtz_arguments(p)
    add_progress_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run, parity=None)
    return p


def _command_line(args: argparse.Namespace) -> str:
    """The merge command as it could be typed again (for the audit trail of the .hkl)."""
    from ..analysis.polarisation import HORIZONTAL

    parts = ["streamfilter merge", *args.streams, f"-y={args.symmetry}", "-o", args.output]
    if args.polarisation != HORIZONTAL:
        pol = args.polarisation
        parts.append("--polarisation=none" if pol.disable else
                     f"--polarisation={round(pol.angle * 180 / 3.141592653589793)}deg"
                     f"{round(pol.fraction * 100)}")  # fmt: skip
    if args.min_measurements != 2:
        parts += ["--min-measurements", str(args.min_measurements)]
    for name in ("min_snr", "max_adu", "min_res", "push_res"):
        if getattr(args, name) is not None:
            parts += ["--" + name.replace("_", "-"), repr(getattr(args, name))]
    if args.parity is not None:
        parts.append(f"--{args.parity}-only")
    for name in ("start_after", "stop_after"):
        if getattr(args, name):
            parts += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    if args.scale:
        parts.append("--scale")
    if args.min_cc is not None:
        parts += ["--min-cc", repr(args.min_cc)]
    if args.stat:
        parts += ["--stat", args.stat]
    if args.halves:
        parts += ["--halves", "--seed", str(args.seed)]
    return " ".join(parts)


@contextlib.contextmanager
def _no_file() -> Iterator[None]:
    yield None


def _check_paths(args: argparse.Namespace) -> None:
    from ..errors import StreamfilterError

    for out in (args.output, args.stat):
        if out is None or out == "-":
            continue
        if any(os.path.exists(s) and os.path.exists(out) and os.path.samefile(s, out)
               for s in args.streams if s != "-"):  # fmt: skip
            raise StreamfilterError(f"{out}: output would overwrite an input stream")
    if (args.scale or args.stat or args.min_cc is not None) and "-" in args.streams:
        raise StreamfilterError("--scale, --min-cc and --stat read the streams twice: "
                                "standard input cannot be used")  # fmt: skip


def write_outputs(args: argparse.Namespace, merged, merger, notes: list[str], headers: list,
                  cells) -> list[str]:
    """Write the merged list (and the half-sets): the one place output files are written.
    ``cells``: the crystals' cells for an MTZ output (None for a CrystFEL list).  Returns
    the paths written."""
    from ..analysis.hkl import write_hkl

    if cells is not None:
        return [write_merged_mtz(args, merger, merged, notes, headers, cells)]
    write_hkl(args.output, merged, notes=notes)
    outputs = [args.output]
    if args.halves:
        for i, half in enumerate(merger.half_results(args.min_measurements), start=1):
            write_hkl(f"{args.output}{i}", half, notes=notes)
            outputs.append(f"{args.output}{i}")
    return outputs


def _summary(args: argparse.Namespace, merger, merged, outputs: list[str]) -> None:
    st = merger.stats
    print(
        f"merged {st.n_observations} observations from {st.n_crystals_merged}/"
        f"{st.n_crystals} crystals into {len(merged)} unique reflections "
        f"(point group {merger.pg.symbol}, >= {args.min_measurements} measurements)",
        file=sys.stderr,
    )
    dropped = [
        (st.n_rejected_snr, "observations dropped (--min-snr)"),
        (st.n_rejected_adu, "observations dropped (--max-adu)"),
        (st.n_rejected_res, "observations dropped (--push-res)"),
        (st.n_nonfinite, "observations dropped (non-finite I)"),
        (st.n_rejected_scale, "crystals left out (scale factor not positive, or --min-cc)"),
    ]
    for n, why in dropped:
        if n:
            print(f"  {n} {why}", file=sys.stderr)
    print("wrote " + ", ".join(outputs), file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter merge``; returns the exit status."""
    from ..analysis.merge import MergeOptions, audit_notes, merge_streams
    from ..analysis.symmetry import point_group
    from ..errors import StreamfilterError
    from ..stream.writer import atomic_output

    quiet = bool(getattr(args, "quiet", False))
    args.streams = [*getattr(args, "inputs", []), *args.streams]
    if not args.streams:
        raise StreamfilterError("give at least one input stream (STREAM or -i STREAM)")
    pg = point_group(args.symmetry)
    _check_paths(args)
    check_mtz_options(args)
    cells = None
    if is_mtz_output(args.output):
        from ..crystal import CellCollector

        cells = CellCollector()
    options = MergeOptions(
        min_snr=args.min_snr, push_res=args.push_res, max_adu=args.max_adu,
        min_res=args.min_res, polarisation=args.polarisation, parity=args.parity,
        start_after=args.start_after, stop_after=args.stop_after,
    )  # fmt: skip
    headers: list = []
    with atomic_output(args.stat) if args.stat else _no_file() as stat:
        on_crystal = None
        if stat is not None:
            def on_crystal(xtal, scale: float, cc: float) -> None:
                event = xtal.frame[1] if xtal.frame[1] is not None else "(null)"
                stat.write(f"{xtal.frame[0]} {event} {scale:f} {cc:f}\n".encode())
        merged, merger = merge_streams(
            args.streams, pg, min_measurements=args.min_measurements, halves=args.halves,
            seed=args.seed, quiet=quiet, options=options, scale=args.scale,
            min_cc=args.min_cc, on_crystal=on_crystal, header_out=headers, crystals_out=cells,
        )  # fmt: skip
    notes = audit_notes(_command_line(args), headers)
    outputs = write_outputs(args, merged, merger, notes, headers, cells)
    for w in merger.stats.incomplete_tails:
        print(f"merge: warning: {w} (not merged)", file=sys.stderr)
    if not quiet:
        _summary(args, merger, merged, outputs + ([args.stat] if args.stat else []))
    return 0
