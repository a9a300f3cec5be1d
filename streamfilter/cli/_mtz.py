"""``merge -o OUT.mtz``: the MTZ options of ``streamfilter merge`` and the MTZ output step."""

from __future__ import annotations

import argparse


def add_mtz_arguments(p: argparse.ArgumentParser) -> None:
    """``-p/--cell`` and ``--space-group``, used when the output name ends in ``.mtz``."""
    p.add_argument(
        "-p",
        "--cell",
        default=None,
        metavar="FILE",
        help="for -o X.mtz: unit cell (CrystFEL .cell or PDB); default: the stream header's "
        "target cell, else the crystals' median cell",
    )
    p.add_argument(
        "--space-group",
        default=None,
        metavar="NAME",
        help="for -o X.mtz: space group written in the MTZ (e.g. 'P 43 21 2'), of the Laue "
        "class of -y; default: no screw axes or glides, the cell's centring, the rotations of "
        "a Laue group (4/mmm -> P 4 2 2), else the point group's own (mm2 -> P m m 2)",
    )


def is_mtz_output(path: str) -> bool:
    """Whether ``-o PATH`` asks for an MTZ (by its suffix)."""
    return path.lower().endswith(".mtz")


def check_mtz_options(args: argparse.Namespace) -> None:
    """Refuse ``-p``/``--space-group`` for a ``.hkl`` output (they would be ignored) and a
    bad space group before reading the streams."""
    from ..analysis.mtz import space_group_for
    from ..analysis.symmetry import point_group
    from ..errors import StreamfilterError

    if not is_mtz_output(args.output):
        if args.cell or args.space_group:
            raise StreamfilterError("-p and --space-group apply to an MTZ output (-o X.mtz)")
        return
    space_group_for(point_group(args.symmetry), args.space_group)


def write_merged_mtz(args: argparse.Namespace, merger, merged, notes: list[str], headers: list,
                     cells: list) -> str:  # fmt: skip
    """Write the merge (and its half-sets with ``--halves``) as ``args.output``; returns a
    description of what was written, for the summary."""
    from ..analysis.mtz import write_mtz
    from ..crystal import choose_cell

    names = ", ".join(args.streams)
    cell = choose_cell(args.cell, headers, cells, names)
    halves = merger.half_results(args.min_measurements) if args.halves else None
    mtz = write_mtz(
        args.output,
        merged,
        cell,
        merger.pg,
        space_group=args.space_group,
        halves=halves,
        title=f"streamfilter merge of {names}",
        history=[*notes, f"cell: {cell.source}"],
    )
    c = cell
    return (f"{args.output} ({mtz.nreflections} reflections, space group {mtz.spacegroup.xhm()},"
            f" cell {c.a:.2f} {c.b:.2f} {c.c:.2f} {c.alpha:.2f} {c.beta:.2f} {c.gamma:.2f} from "
            f"{cell.source}{'; half-sets in *_HALF1/2 columns' if halves else ''})")  # fmt: skip
