"""``streamfilter <subcommand>``: a thin argparse shell over the library.

Every subcommand that reads a stream accepts ``-`` for standard input; every one that writes
a stream accepts ``-o -`` for standard output.  Progress bars and summaries go to standard
error, as do warnings, one line each (``streamfilter CMD: warning: ...``).  Exit status:
0 success, 2 bad input or usage (a message names file, line and chunk), 3 ``reintegrate``
wrote its output but left chunks with crystals not re-integrated, 130 interrupted by Ctrl-C
(SIGINT), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import warnings
from collections.abc import Iterator

from .. import __version__
from ..errors import StreamfilterError
from ._common import eprint, join_dash_values

# one module of this package per subcommand, each with add_parser(subparsers) and run(args)
SUBCOMMANDS = ("info", "cat", "split", "reintegrate", "merge", "compare", "inspect", "demo",
               "synth", "check", "stats")


def _module(command: str):
    return importlib.import_module(f"{__name__}.{command}")


class _Version(argparse.Action):
    """``--version``: the version and the solver of ``--method crystfel``'s ``-grad`` plane
    (found only when asked: GSL is looked up at run time)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..integrate.plane import plane_solver

        print(f"streamfilter {__version__}\ncrystfel -grad plane solver: {plane_solver()}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` (one of :data:`SUBCOMMANDS`) only that
    subcommand is registered, which spares importing the modules of all the others."""
    parser = argparse.ArgumentParser(
        prog="streamfilter",
        description="Re-integrate, rewrite and compare CrystFEL .stream files.")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="show the version and the -grad plane solver, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (command,) if command in SUBCOMMANDS else SUBCOMMANDS:
        _module(name).add_parser(sub)
    return parser


@contextlib.contextmanager
def _plain_warnings(command: str) -> Iterator[None]:
    """While a command runs, a warning of streamfilter's own categories (such as
    :class:`~streamfilter.geometry.GeometryWarning`) is one line on standard error,
    ``streamfilter COMMAND: warning: MESSAGE``, each distinct message once; other warnings
    are shown as before.  The previous display and filters are restored afterwards."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        shown_before = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.split(".")[0] != "streamfilter":
                return shown_before(message, category, filename, lineno, file, line)
            text = str(message)
            if text not in seen:
                seen.add(text)
                eprint(f"streamfilter {command}: warning: {text}")

        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamfilter`` console script; returns the exit status."""
    from ..interrupt import clear_stop_requests, quiet_unraisable, request_stop, stop_signal

    argv = join_dash_values(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    from ..progress import set_every

    set_every(getattr(args, "progress_every", None))
    clear_stop_requests()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, quiet_unraisable
    signal.signal(signal.SIGTERM, request_stop)  # SIGTERM stops a run as Ctrl-C does
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, request_stop)
    try:
        with _plain_warnings(args.command):
            return int(args.func(args) or 0)
    except StreamfilterError as e:
        eprint(f"streamfilter {args.command}: error: {e}")
        return 2
    except KeyboardInterrupt:
        if stop_signal() == signal.SIGTERM:
            eprint(f"streamfilter {args.command}: terminated (SIGTERM); no output file was "
                   "left behind")
            return 128 + signal.SIGTERM
        eprint(f"streamfilter {args.command}: interrupted; no output file was left behind")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        eprint(f"streamfilter {args.command}: error: {e}")
        return 2
    finally:
        clear_stop_requests()
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook

