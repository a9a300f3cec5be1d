"""``streamfilter inspect``: the pixels and numbers behind one reflection, or a frame's maxima."""

from __future__ import annotations

import argparse
import sys


def _hkl(text: str) -> tuple[int, int, int]:
    from ..crystal import parse_hkl
    from ..errors import StreamfilterError

    try:
        return parse_hkl(text)
    except StreamfilterError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``streamfilter inspect``."""
    from ._common import add_frame_arguments, int_radius

    p = sub.add_parser(
        "inspect",
        help="show the pixels and numbers behind one reflection",
        description="Print the integration box around one reflection: each pixel's class "
        "(peak disc, ignored, background annulus, masked, a neighbour's peak, off panel), its "
        "value, and the numbers that give I and sigma(I), re-computed exactly as the "
        "CrystFEL-identical rings integration does; with --method robust or profile, the "
        "disc that method sums, its background model and (profile) the fitted profile. "
        "With --threshold, list the local maxima of the frame instead, each with its "
        "nearest predicted reflection.",
        epilog="Negative indices need '=': --hkl=-3,2,1.",
    )
    p.add_argument("stream", metavar="STREAM", help="stream file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--chunk", type=int, metavar="N",
                       help="chunk number, counted from 0 in file order")  # fmt: skip
    which.add_argument("--event", metavar="EV",
                       help="the chunk whose Event is EV (//7, or 7 for //7)")  # fmt: skip
    p.add_argument("--image", metavar="FILE",
                   help="with --event: the chunk's Image filename (or its last components), "
                   "when several files have that event")  # fmt: skip
    p.add_argument("--method", choices=("crystfel", "robust", "profile"), default="crystfel",
                   help="the integration to show (default crystfel, the rings)")  # fmt: skip
    p.add_argument(
        "--crystal",
        type=int,
        metavar="I",
        help="crystal number in the chunk, from 0 (needed only if ambiguous)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--hkl", type=_hkl, metavar="H,K,L", help="the reflection")
    what.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="list local maxima above T ADU with their nearest prediction",
    )
    p.add_argument(
        "--int-radius",
        type=int_radius,
        metavar="R1,R2,R3",
        help="ring radii in pixels (default: the stream's own, else 4,5,7)",
    )
    p.add_argument("--png", metavar="FILE", help="also draw the box (or the maxima) to a PNG")
    add_frame_arguments(p)
    p.add_argument(
        "--limit",
        type=int,
        default=50,
        metavar="N",
        help="with --threshold, print at most N maxima (default 50; 0 = all)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter inspect`` from parsed arguments; returns the exit status."""
    from ..analysis.inspect import chunk_of_event, format_inspect, inspect_reflection
    from ..analysis.maxima import format_maxima, inspect_maxima
    from ..analysis.plots import plot_inspect, plot_maxima, require_matplotlib
    from ..errors import StreamfilterError

    if args.png:  # before the stream is read
        require_matplotlib("--png")
    if args.image is not None and args.event is None:
        raise StreamfilterError("--image FILE goes with --event EV")
    chunk = args.chunk
    if chunk is None:
        chunk = chunk_of_event(args.stream, args.event, args.image)
    common = {"int_radius": args.int_radius, "geometry": args.geometry, "data_root": args.data_root}
    if args.threshold is not None:
        m = inspect_maxima(args.stream, chunk, args.threshold, **common)
        print(format_maxima(m, None if args.limit == 0 else args.limit))
        if args.png:
            plot_maxima(m, args.png)
            print(f"wrote {args.png}", file=sys.stderr)
        return 0
    if args.method != "crystfel":
        from ..analysis.inspect_methods import format_method_inspect, inspect_method
        from ..analysis.plots import plot_inspect_method

        rm = inspect_method(args.stream, chunk, args.hkl, method=args.method,
                            crystal=args.crystal, **common)  # fmt: skip
        print(format_method_inspect(rm))
        if args.png:
            plot_inspect_method(rm, args.png)
            print(f"wrote {args.png}", file=sys.stderr)
        return 0
    r = inspect_reflection(args.stream, chunk, args.hkl, crystal=args.crystal, **common)
    print(format_inspect(r))
    if args.png:
        plot_inspect(r, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
