"""``streamfilter cat``: validate and join streams."""

from __future__ import annotations

import argparse

from ._common import add_progress_argument, eprint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cat", help="validate and join streams (shards) into one",
                       description="Validate and concatenate streams through the parser and "
                       "writer. One input gives a byte-identical copy. Later headers identical "
                       "to the first are dropped; different ones are kept where they stood.")
    p.add_argument("streams", nargs="+", metavar="IN", help="input stream(s), - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output, - for stdout")
    p.add_argument("--upgrade", action="store_true",
                   help="convert format 2.1/2.2 input to 2.3 (panel names from the geometry)")
    p.add_argument("-g", "--geometry", metavar="FILE",
                   help="geometry for --upgrade when the stream has none embedded")
    p.add_argument("--check-rows", action="store_true",
                   help="also parse every reflection and peak row (slower)")
    p.add_argument("--keep-going", action="store_true",
                   help="copy malformed chunks verbatim, report them, and continue")
    p.add_argument("--strict", action="store_true",
                   help="an input that ends inside its last chunk (still being written, or "
                   "cut short) is an error; by default its complete chunks are written, the "
                   "incomplete tail is left out and a warning names it")
    add_progress_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..stream.cat import cat_streams

    s = cat_streams(args.streams, args.output, upgrade=args.upgrade, keep_going=args.keep_going,
                    full_check=args.check_rows, quiet=args.quiet, geometry=args.geometry,
                    strict=args.strict)
    msg = f"cat: {s.chunks} chunks written"
    if s.upgraded_chunks:
        msg += f", {s.upgraded_chunks} upgraded to format 2.3"
    if s.headers_dropped:
        msg += f", {s.headers_dropped} repeated identical header(s) dropped"
    if s.headers_kept:
        msg += f", {s.headers_kept} different header(s) kept in place (CrystFEL uses the first)"
    eprint(msg)
    for p in s.crlf_inputs:
        eprint(f"cat: note: {p} has CR LF line endings (copied as they are; CrystFEL's "
                "readers reject a CR LF header)")
    for t in s.incomplete_tails:
        eprint(f"cat: warning: {t} (not copied)")
    if s.malformed:
        eprint(f"cat: {len(s.malformed)} malformed chunk(s) copied verbatim:")
        for m in s.malformed:
            eprint(f"  {m}")
    return 0
