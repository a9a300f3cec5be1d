"""``streamfilter split``: cut a stream into N streams at chunk boundaries."""

from __future__ import annotations

import argparse

from ._common import eprint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="cut a stream into N streams at chunk boundaries",
                       description="Cut a stream into N valid streams (each with the full "
                       "header) balanced by size, split between chunks. Join the results "
                       "with 'streamfilter cat'.")
    p.add_argument("input", metavar="IN", help="input stream (a file)")
    p.add_argument("-n", type=int, required=True, help="number of shards")
    p.add_argument("-o", "--prefix", required=True, metavar="PREFIX",
                   help="shards are written to PREFIX-000.stream, PREFIX-001.stream, ...")
    p.add_argument("--no-cache", action="store_true", help="do not cache the chunk index")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stream.split import split_stream

    outs = split_stream(args.input, args.n, args.prefix, cache=not args.no_cache)
    eprint(f"split: wrote {len(outs)} shards: {outs[0]} ... {outs[-1]}")
    return 0
