"""Run-time tuning of the processes that integrate: malloc thresholds, pipe sizes."""

from __future__ import annotations

import os
from typing import Any

_MALLOC_TUNED = False
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, once per process (True if done).

    Every frame allocates and frees a few MB (compressed and inflated chunk, the float32
    image, the ring arrays).  With glibc's default, self-adjusting thresholds, whether those
    pages go back to the kernel after a frame depends on the order of all earlier
    allocations: when they do, the next frame starts on fresh pages, ~700 page faults (2.8
    MB) per ref-small frame, +0.5 s of system time on 600 frames (measured: 13 k faults or
    430 k for the same work, depending on unrelated allocations).  Fixed thresholds make it
    deterministic: blocks under 32 MB come from the heap, and up to 64 MB of free heap is
    kept (it was in use at the peak anyway).  Left alone on other C libraries and when
    malloc is tuned through the environment.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    import platform

    if (
        platform.libc_ver()[0] != "glibc"
        or "malloc" in os.environ.get("GLIBC_TUNABLES", "")
        or any(k.startswith("MALLOC_") for k in os.environ)
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


PIPE_BYTES = 1 << 20


def widen_pipes(pool: Any, size: int = PIPE_BYTES) -> bool:
    """Give the pipes of ``pool`` (a ``ProcessPoolExecutor``) room for whole batches
    (Linux); True if both were widened.

    A batch's chunk bytes going out and its rewritten bytes coming back are ~0.3 MB each
    (8 ref-small chunks).  Through a default 64 KiB pipe, a worker that sends its result, or
    reads its next batch, waits until the parent's collecting or feeding thread has moved
    every 64 KiB, and when every core is busy that thread first has to wait for a core.
    With 1 MiB pipes the worker writes its result and finds its next batch whole: measured
    at ``-j 2`` (two workers) on 600 frames, each worker's idle time between batches fell
    from 0.04-0.06 s to 0.02-0.03 s.  Uses the pool's private queues; when they or
    ``F_SETPIPE_SZ`` do not exist, or the system refuses the size (``pipe-max-size``, the
    per-user pipe quota), the pipes stay as they are.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux
    if setsize is None:
        return False
    done = 0
    for queue in (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)):
        try:
            fcntl.fcntl(queue._writer.fileno(), setsize, size)  # one pipe, both ends
        except (AttributeError, OSError, ValueError):
            continue
        done += 1
    return done == 2
