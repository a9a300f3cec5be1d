"""``streamfilter info``: summarise streams."""

from __future__ import annotations

import argparse
import json

from ._common import add_follow_arguments, add_progress_argument, follow_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise streams: version, counts, radii, cells",
                       description="Summarise one or more CrystFEL streams in one pass: format "
                       "and CrystFEL version, indexamajig command line, integration radii and "
                       "method, counts (chunks, hits, indexed frames, crystals per indexer, "
                       "reflections, peaks), resolution limits and cell parameters.")
    p.add_argument("streams", nargs="+", metavar="STREAM", help="stream file(s), - for stdin")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON (- for stdout)")
    add_progress_argument(p)
    add_follow_arguments(p, "count chunks, print the counts so far (chunks, hits, indexed "
                         "frames, crystals) on standard error each time the reading catches up "
                         "with the writing, and print the report")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar (and no counts so far with --follow)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from ..stream.info import format_info, stream_info

    def live(line: str) -> None:
        print(f"info: {time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    follow = follow_of(args)
    results = []
    for path in args.streams:
        info = stream_info(path, quiet=args.quiet, follow=follow,
                           live=None if args.quiet else live)
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
