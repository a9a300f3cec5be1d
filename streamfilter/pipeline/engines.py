"""Engines: the chunk step over a stream in input order, in this process, on a process pool
(:func:`ordered_map`) or on Dask (:mod:`streamfilter.pipeline.dask`); every engine writes the
same bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streamfilter.errors import StreamfilterError, StreamFormatError
from streamfilter.pipeline.config import ReintegrateConfig
from streamfilter.pipeline.step import (
    ChunkProcessor,
    ChunkResult,
    _close_worker_processor,
    _init_pool_worker,
    _worker_processor,
    pack_batch,
    process_batch,
)
from streamfilter.pipeline.tuning import widen_pipes
from streamfilter.stream import Chunk


class WorkerDiedError(StreamfilterError):
    """A worker process was killed (the work done before it is valid: resumable)."""

    resumable = True


AHEAD = 8  # items the caller of ordered_map may finish ahead of the oldest unfinished one


def ordered_map(
    func: Callable,
    items: Iterable,
    *,
    jobs: int,
    in_flight: int | None = None,
    pack: Callable | None = None,
) -> Iterator:
    """``map(func, items)`` on ``jobs`` processes, results in input order, bounded memory.

    The calling process is one of the ``jobs``: a process pool of ``jobs - 1`` workers gets
    items until it holds ``in_flight`` of them (default 3 per worker: each busy with one and
    two queued), and while it is that full the caller runs ``func`` on the next item itself
    instead of waiting.  On a machine with ``jobs`` cores this keeps ``jobs`` processes
    computing, not ``jobs`` workers plus a reader/writer competing with them for a core, and
    only the workers' share of the items crosses a pipe.  When the workers outpace the
    caller (many cores) the pool is seldom full and the caller mostly feeds it.  ``pack``
    turns an item into what is sent to a worker (e.g. chunk objects into plain tuples); the
    caller runs ``func`` on the item itself.

    Up to ``in_flight + AHEAD`` items are under way or wait for their turn: the caller goes
    on with ``AHEAD`` more items of its own while a worker is slow with the oldest one (a
    frame that takes long, a core busy with something else for a while), and a huge input
    never piles up in memory.  An exception of the caller's own ``func`` call is raised when
    its item's turn comes, exactly as a worker's would be.

    Measured at ``-j 2`` on 600 ref-small frames (``bench/README.md``): within a few per
    cent of two independent ``-j 1`` runs on half the frames each, where two workers with
    an idle parent were 8 % slower than those.
    """
    if jobs <= 1:
        yield from map(func, items)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    workers = jobs - 1
    in_flight = in_flight or 3 * workers
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_pool_worker)
    widen_pipes(pool)
    pending: deque = deque()  # in input order: the pool's futures and the caller's results
    try:
        for item in items:
            if _running(pending) < in_flight:
                pending.append(pool.submit(func, item if pack is None else pack(item)))
            else:
                pending.append(_run_here(func, item))
            while pending and pending[0].done():
                yield pending.popleft().result()
            if len(pending) >= in_flight + AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as e:
        raise WorkerDiedError("a worker process died (killed, or out of memory?)") from e
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _run_here(func: Callable, item: Any) -> Any:
    """``func(item)`` in this process, as a finished future (an error raised in its turn)."""
    from concurrent.futures import Future

    done: Future = Future()
    try:
        done.set_result(func(item))
    except Exception as e:  # noqa: BLE001 - raised in its turn, like a worker's
        done.set_exception(e)
    return done


def _running(pending: deque) -> int:
    """The pool's items still queued or being worked on."""
    return sum(1 for f in pending if not f.done())


def _batches(
    reader: Iterable[Chunk], size: int, errors: list[StreamFormatError], *, tail: int = 3
) -> Iterator[list[Chunk]]:
    """Batches of ``size`` chunks, and the last ``tail * size`` chunks of the input in
    batches of ``size // 4``: the processes then finish within a small batch of each other
    instead of one waiting for the other's last full batch (measured at ``-j 2``: the
    reading process was idle for the last 35-50 ms of a 1.3 s run).  The reader runs
    ``tail`` batches ahead to see the end coming.

    A reader error ends the batches and goes to ``errors``, so that it is raised after the
    chunks before it were processed, as with ``-j 1``."""
    small = max(1, size // 4)
    ahead: deque[Chunk] = deque()
    try:
        for chunk in reader:
            ahead.append(chunk)
            if len(ahead) >= (tail + 1) * size:
                yield [ahead.popleft() for _ in range(size)]
    except StreamFormatError as e:
        errors.append(e)
    while ahead:
        yield [ahead.popleft() for _ in range(min(small, len(ahead)))]


def run_chunks(
    chunks: Iterable[Chunk],
    config: ReintegrateConfig,
    *,
    jobs: int = 1,
    batch_size: int = 8,
    dask: str | None = None,
) -> Iterator[tuple[Chunk, ChunkResult]]:
    """Process ``chunks`` with the chosen engine; yields (chunk, result) in input order."""
    if jobs <= 1 and dask is None:
        proc = ChunkProcessor(config)
        try:
            for chunk in chunks:
                yield chunk, proc.process(chunk)
        finally:
            proc.close()
        return
    reader_errors: list[StreamFormatError] = []
    batches = _batches(chunks, batch_size, reader_errors)
    held: deque = deque()

    def held_batches():
        for b in batches:
            held.append(b)
            yield b

    if dask is not None:
        from streamfilter.pipeline.dask import dask_ordered_map

        results = dask_ordered_map(config, map(pack_batch, held_batches()), dask, jobs=jobs)
    else:
        import functools
        import multiprocessing

        if multiprocessing.get_start_method() == "fork":
            # set the worker up once here (geometry, imports): forked workers inherit it
            # instead of each repeating it on the critical path.  No frame file is open
            # yet: the pool forks all its workers at the first item, which it always gets.
            _worker_processor(config)
        results = ordered_map(
            functools.partial(process_batch, config), held_batches(), jobs=jobs, pack=pack_batch
        )
    try:
        for res in results:
            batch = held.popleft()
            for chunk, r in zip(batch, res):
                if r is None:  # a worker needed the line number: see _LineWanted
                    r = _worker_processor(config).process(chunk)
                yield chunk, r
    finally:
        _close_worker_processor()  # this process worked too: close its frame files
    if reader_errors:
        raise reader_errors[0]
