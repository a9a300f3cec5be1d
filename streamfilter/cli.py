"""``streamfilter <subcommand>``: a thin argparse shell over the library.

Every subcommand that reads a stream accepts ``-`` for standard input; every one that writes
a stream accepts ``-o -`` for standard output.  Progress bars and summaries go to standard
error.  Exit status: 0 success, 2 bad input or usage (a message names file, line and chunk),
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable

from . import __version__
from .errors import StreamfilterError


def _eprint(*args: object) -> None:
    print(*args, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------

def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise streams: version, counts, radii, cells",
                       description="Summarise one or more CrystFEL streams in one pass: format "
                       "and CrystFEL version, indexamajig command line, integration radii and "
                       "method, counts (chunks, hits, indexed frames, crystals per indexer, "
                       "reflections, peaks), resolution limits and cell parameters.")
    p.add_argument("streams", nargs="+", metavar="STREAM", help="stream file(s), - for stdin")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON (- for stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .info import format_info, stream_info

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


# --------------------------------------------------------------------------------------------
# cat
# --------------------------------------------------------------------------------------------

def _add_cat(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_cat)


def _run_cat(args: argparse.Namespace) -> int:
    from .catenate import cat_streams

    s = cat_streams(args.streams, args.output, upgrade=args.upgrade, keep_going=args.keep_going,
                    full_check=args.check_rows, quiet=args.quiet, geometry=args.geometry)
    msg = f"cat: {s.chunks} chunks written"
    if s.upgraded_chunks:
        msg += f", {s.upgraded_chunks} upgraded to format 2.3"
    if s.headers_dropped:
        msg += f", {s.headers_dropped} repeated identical header(s) dropped"
    if s.headers_kept:
        msg += f", {s.headers_kept} different header(s) kept in place (CrystFEL uses the first)"
    _eprint(msg)
    for p in s.crlf_inputs:
        _eprint(f"cat: note: {p} has CR LF line endings (copied as they are; CrystFEL's "
                "readers reject a CR LF header)")
    if s.malformed:
        _eprint(f"cat: {len(s.malformed)} malformed chunk(s) copied verbatim:")
        for m in s.malformed:
            _eprint(f"  {m}")
    return 0


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_info, _add_cat]


# command -> (module, function registering its parser)
_OPTIONAL = {
    "reintegrate": ("streamfilter.reintegrate", "add_parser"),
    "split": ("streamfilter.split", "add_parser"),
    "merge": ("streamfilter.merge", "add_merge_parser"),
    "compare": ("streamfilter.compare", "add_compare_parser"),
    "inspect": ("streamfilter.inspect", "add_parser"),
    "demo": ("streamfilter.demo", "add_parser"),
}


def _optional_subcommands(only: str | None = None
                          ) -> list[Callable[[argparse._SubParsersAction], None]]:
    """Subcommands that live in their own modules (each registers its own parser); with
    ``only``, just that one (the others' imports are not paid for)."""
    out = []
    for command, (module, name) in _OPTIONAL.items():
        if only is not None and command != only:
            continue
        try:
            mod = __import__(module, fromlist=[name])
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        out.append(getattr(mod, name))
    return out


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` (one of the subcommands) only that subcommand
    is registered, which spares importing the modules of all the others."""
    parser = argparse.ArgumentParser(
        prog="streamfilter",
        description="Re-integrate, rewrite and compare CrystFEL .stream files.")
    parser.add_argument("--version", action="version", version=f"streamfilter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in _OPTIONAL:
        adders = _optional_subcommands(command)
    else:
        adders = SUBCOMMANDS + _optional_subcommands()
    for add in adders:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamfilter`` console script; returns the exit status."""
    from .stream.writer import clear_stop_requests, quiet_unraisable, request_stop

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    clear_stop_requests()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, quiet_unraisable
    signal.signal(signal.SIGTERM, request_stop)  # SIGTERM stops a run as Ctrl-C does
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, request_stop)
    try:
        return int(args.func(args) or 0)
    except StreamfilterError as e:
        _eprint(f"streamfilter {args.command}: error: {e}")
        return 2
    except KeyboardInterrupt:
        _eprint(f"streamfilter {args.command}: interrupted; no output file was left behind")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        _eprint(f"streamfilter {args.command}: error: {e}")
        return 2
    finally:
        clear_stop_requests()
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook


if __name__ == "__main__":
    sys.exit(main())
