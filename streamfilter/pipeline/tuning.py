"""Run-time tuning of the processes that integrate: one BLAS thread, malloc thresholds, pipes.

:func:`tune_process` is called once in every process that integrates (``-j 1``'s, each
``-j N`` worker, each Dask worker) when it builds its chunk processor.
"""

from __future__ import annotations

import os
from typing import Any

#: Environment variables through which a user sets the threads of numpy's BLAS or of OpenMP;
#: when one is set, the user's choice stands.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def tune_process() -> None:
    """Everything a process that integrates sets up once: :func:`one_blas_thread` and
    :func:`keep_freed_memory`."""
    one_blas_thread()
    keep_freed_memory()


_ONE_THREAD = False


def one_blas_thread() -> bool:
    """Limit numpy's BLAS (and any OpenMP runtime loaded) to one thread in this process,
    unless one of :data:`THREAD_VARIABLES` is set (True if limited).

    OpenBLAS starts a thread per core by default, so a ``-j 1`` run of the robust or profile
    method kept two cores busy for the small matrix products of its fits and ``-j N``
    oversubscribed the machine (measured: ``-j 2`` slower than ``-j 1``).  With one thread
    per process, ``-j N`` means N busy cores; ask for more with ``OMP_NUM_THREADS`` (or
    ``OPENBLAS_NUM_THREADS``) in the environment.  Uses threadpoolctl, which sets the limit
    through each library's own API (the numbers do not change).
    """
    global _ONE_THREAD
    if _ONE_THREAD:
        return True
    if any(os.environ.get(v) for v in THREAD_VARIABLES):
        return False
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    _ONE_THREAD = True
    return True


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
