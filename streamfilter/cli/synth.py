"""``streamfilter synth`` (and ``python -m streamfilter.synth``): write a simulated data set."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..errors import StreamfilterError
from ._common import eprint, int_radius

DESCRIPTION = "Write a simulated data set with known truth."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options, with the defaults of :class:`~streamfilter.synth.config.SynthConfig`."""
    from ..synth.config import SynthConfig  # light: the dataclass only
    from ..synth.layouts import LAYOUT_NAMES  # light: geometry text only

    d = SynthConfig()
    p.add_argument("directory", help="output directory (created if needed)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-frames", type=int, default=d.n_frames)
    p.add_argument("--name", default=d.name, help="file-name stem (default %(default)s)")
    p.add_argument("--int-radius", type=int_radius, default=d.int_radius, metavar="R1,R2,R3",
                   help="radii written into the stream and used by its integration (pixels)")
    p.add_argument("--compression", choices=("gzip", "bitshuffle-lz4"), default=d.compression)
    p.add_argument("--adu-per-photon", type=float, default=d.adu_per_photon)
    p.add_argument("--max-adu", type=float, default=None)
    p.add_argument(
        "--panel-size",
        type=int,
        nargs=2,
        default=(d.panel_width, d.panel_height),
        metavar=("FS", "SS"),
        help="pixels of each panel of the two-panel layout (default 256 256)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUT_NAMES,
        default=None,
        help="detector layout and file format (default two-panel; see README)",
    )
    p.add_argument("--geometry", metavar="FILE", default=None,
                   help="simulate on this CrystFEL geometry instead (frames as HDF5 in its "
                        "data/dim layout, no bad pixels)")
    p.add_argument("--shrink", type=int, default=d.shrink,
                   help="divide the panels' pixel counts by this, keeping the layout")
    p.add_argument("--no-truth-bragg", action="store_true",
                   help="leave the noise-free Bragg images out of the truth (large frames)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a simulated data set with known truth",
                       description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth.config import SynthConfig
    from ..synth.dataset import generate

    if args.geometry is not None and args.layout not in (None, "two-panel"):
        raise StreamfilterError("give --layout or --geometry, not both")
    layout = "geometry" if args.geometry is not None else (args.layout or "two-panel")
    try:
        config = SynthConfig(
            seed=args.seed,
            n_frames=args.n_frames,
            name=args.name,
            int_radius=args.int_radius,
            compression=args.compression,
            adu_per_photon=args.adu_per_photon,
            max_adu=args.max_adu,
            panel_width=args.panel_size[0],
            panel_height=args.panel_size[1],
            layout=layout,
            shrink=args.shrink,
            geometry_file=args.geometry,
            truth_bragg=not args.no_truth_bragg,
        )
    except ValueError as e:
        raise StreamfilterError(f"synth: {e}") from e
    ds = generate(args.directory, config)
    t = ds.truth
    n_xtal = len(t.crystals)
    frames = ds.h5_path.name if len(ds.frame_paths) < 3 else (
        f"{len(ds.frame_paths)} frame files")
    eprint(
        f"wrote {ds.stream_path}, {frames}, {ds.geometry_path.name}, "
        f"{ds.cell_path.name}, {ds.truth_path.name}: {config.n_frames} frames, "
        f"{n_xtal} crystals, {len(t.reflections)} predicted reflections"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamfilter.synth DIR [options]``: write a simulated data set."""
    p = argparse.ArgumentParser(prog="python -m streamfilter.synth", description=DESCRIPTION)
    add_arguments(p)
    return run(p.parse_args(argv))
