"""Stop requests of the process: the SIGINT/SIGTERM handler of the command line, and the
check the writers call before every write.

The command line installs :func:`request_stop` for SIGINT and SIGTERM.  It raises
KeyboardInterrupt, but Python swallows an exception raised while a weakref callback or
``__del__`` runs (it prints "Exception ignored in ..."), so the request is also recorded
here and :func:`check_stop` (called by the stream writer before each write) raises it again:
such a request then still stops the run, at its next write.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

# Signals that asked the command line to stop (see the module docstring).
_STOP_REQUESTS: list[int] = []


def request_stop(signum: int, frame: object = None) -> None:
    """Signal handler of the command line for SIGINT/SIGTERM: stop the run."""
    _STOP_REQUESTS.append(signum)
    raise KeyboardInterrupt


def clear_stop_requests() -> None:
    """Forget earlier stop requests (at the start and the end of a command)."""
    _STOP_REQUESTS.clear()


def stop_signal() -> int | None:
    """The first signal that asked the command line to stop (None if none did)."""
    return _STOP_REQUESTS[0] if _STOP_REQUESTS else None


def check_stop() -> None:
    """Raise KeyboardInterrupt if a stop was requested (one the interpreter swallowed)."""
    if _STOP_REQUESTS:
        raise KeyboardInterrupt


def quiet_unraisable(unraisable) -> None:
    """``sys.unraisablehook`` that drops the swallowed KeyboardInterrupt of a stop request
    (it is honoured at the next write) instead of printing a traceback."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _STOP_REQUESTS:
        return
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back for the duration; they take effect when it ends.

    Renaming several finished outputs, or writing a journal, inside it is all or nothing.
    (The Python-level handlers are swapped, not the thread's signal mask: with a process
    pool, the kernel may deliver the signal to another thread of the process.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)
