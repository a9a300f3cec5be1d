"""``streamfilter check``: do the frames and the geometry match the stream?"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``streamfilter check``."""
    from ._common import add_frame_arguments

    p = sub.add_parser(
        "check",
        help="check that the frames and the geometry match the stream",
        description="Open every frame the stream names (counting missing files and events, "
        "unreadable frames and shapes that disagree with the geometry), then, on a sample of "
        "frames, re-predict the reflections from the geometry and measure how far they fall "
        "from the stream's found peaks and printed positions, and whether the found peaks "
        "sit on bright pixels of the frames read. No integration, no output stream.",
        epilog="Exit status: 0 all well; 1 the geometry or the frames do not match the stream; "
        "3 frames missing or unreadable; 2 bad input or usage.",
    )
    p.add_argument("stream", metavar="STREAM", help="stream file (- for standard input)")
    add_frame_arguments(p)
    p.add_argument(
        "--sample",
        type=int,
        default=100,
        metavar="N",
        help="measure the first N frames with found peaks (default 100; 0 = all)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON (- for stdout)")
    p.set_defaults(func=run)


def format_report(check) -> str:
    """The text report of a :class:`~streamfilter.pipeline.checks.StreamCheck`."""
    from ..pipeline.checks import EXIT_FRAMES, EXIT_MISMATCH, EXIT_OK

    lines = [f"{check.stream}: geometry {check.geometry}",
             f"  frames: {check.chunks} chunks, {check.opened} frames opened"]
    for kind, (count, first) in check.problems.items():
        lines.append(f"  {kind}: {count} chunk{'s' if count != 1 else ''}")
        lines += [f"    {x}" for x in first]
    result = check.result
    if result is not None:
        lines.append(f"  measured on {result.frames} frames with found peaks "
                     f"({result.indexed} indexed)")
        lines += ["  " + x for x in result.message.splitlines()]
    status = {EXIT_OK: "OK", EXIT_MISMATCH: "MISMATCH", EXIT_FRAMES: "FRAMES MISSING OR UNREADABLE"}
    lines.append(f"  verdict: {status[check.exit_status]}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``streamfilter check`` from parsed arguments; returns the exit status."""
    from ..errors import StreamfilterError
    from ..pipeline.checks import check_stream

    if args.sample < 0:
        raise StreamfilterError("--sample must be 0 (all) or more")
    check = check_stream(args.stream, geometry=args.geometry, data_roots=args.data_root,
                         sample=args.sample)
    if args.json != "-":
        print(format_report(check))
    if args.json:
        text = json.dumps(check.to_dict(), indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return check.exit_status
