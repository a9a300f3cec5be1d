"""``streamfilter info``: summarise streams."""

from __future__ import annotations

import argparse
import json

from ._common import add_progress_argument


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise streams: version, counts, radii, cells",
                       description="Summarise one or more CrystFEL streams in one pass: format "
                       "and CrystFEL version, indexamajig command line, integration radii and "
                       "method, counts (chunks, hits, indexed frames, crystals per indexer, "
                       "reflections, peaks), resolution limits and cell parameters.")
    p.add_argument("streams", nargs="+", metavar="STREAM", help="stream file(s), - for stdin")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON (- for stdout)")
    add_progress_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stream.info import format_info, stream_info

    results = []
    for path in args.streams:
        info = stream_info(path, quiet=args.quiet)
        results.append(info)
        if args.json != "-":
            print(format_info(info))
    if args.json:
        text = json.dumps(results if len(results) > 1 else results[0], indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0
