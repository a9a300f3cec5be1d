"""Dask distributed engine for ``reintegrate --dask``.

The client reads nothing but the chunk index: it sends chunk *ranges* (byte offsets into the
input file, which workers read from the shared file system) to the workers, keeps a bounded
number of ranges in flight, and writes the results in input order.  A range whose worker dies
or fails is retried (``retries``).  Input that is not a regular file (stdin) is shipped as
chunk bytes instead.  Workers run exactly the same :func:`streamfilter.pipeline.process_batch`
code as the local process pool, so the output is byte-identical to ``-j 1``.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from typing import Any

from streamfilter.errors import StreamfilterError
from streamfilter.pipeline.config import ReintegrateConfig
from streamfilter.pipeline.step import ChunkResult, _worker_processor, process_batch
from streamfilter.stream.index import ChunkIndex, read_range_bytes

RETRIES = 3


@contextlib.contextmanager
def dask_client(scheduler: str, jobs: int = 2) -> Iterator[Any]:
    """A Dask client: ``local`` starts a LocalCluster of ``jobs`` single-threaded worker
    processes; anything else is a scheduler address (``tcp://host:8786``)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise StreamfilterError("--dask needs the 'dask' extra: pip install "
                                "'streamfilter[dask]'") from e
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
    else:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()


def process_range(config: ReintegrateConfig, path: str, header_end: int, a: int, b: int,
                  first_index: int, first_line: int) -> list[ChunkResult]:
    """Re-integrate the chunks in bytes [a, b) of ``path`` (run on a worker).

    Each result's ``preceding`` holds the bytes before its chunk; when the range reaches
    the end of the file, a last result carries the file's trailing bytes, or what was left
    of a last chunk the file ends inside (``incomplete_tail``).
    """
    proc = _worker_processor(config)
    out = []
    with read_range_bytes(path, header_end, a, b, first_index, first_line,
                          keep_going=config.keep_going) as reader:
        for chunk in reader:
            res = proc.process(chunk)
            res.preceding = chunk.preceding
            out.append(res)
        if reader.trailer:
            out.append(ChunkResult(b"", Counter(), None, None, preceding=reader.trailer))
        if reader.incomplete_tail is not None:  # the file ends inside this range's last chunk
            out.append(ChunkResult(b"", Counter(), None, None,
                                   incomplete_tail=str(reader.incomplete_tail)))  # fmt: skip
    return out


def _ordered(client: Any, submissions: Iterable[tuple], in_flight: int) -> Iterator[Any]:
    pending: deque = deque()
    try:
        for args in submissions:
            pending.append(client.submit(*args, retries=RETRIES, pure=False))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def dask_range_map(config: ReintegrateConfig, index: ChunkIndex, scheduler: str, *,
                   jobs: int = 2, chunks_per_task: int = 16) -> Iterator[ChunkResult]:
    """Results of every chunk of an indexed file, in order, computed on Dask."""
    with dask_client(scheduler, jobs) as client:
        [cfg] = client.scatter([config], broadcast=True)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or jobs)

        def submissions():
            for start in range(0, len(index), chunks_per_task):
                stop = min(start + chunks_per_task, len(index))
                a, b = index.span(start, stop)
                yield (process_range, cfg, index.path, index.header_end, a, b, start,
                       int(index.lines[start]))

        for results in _ordered(client, submissions(), 2 * n_workers):
            yield from results


def dask_ordered_map(config: ReintegrateConfig, payloads: Iterable[list], scheduler: str, *,
                     jobs: int = 2) -> Iterator[list[ChunkResult]]:
    """Like :func:`streamfilter.pipeline.ordered_map`, on Dask, for chunk bytes (stdin)."""
    with dask_client(scheduler, jobs) as client:
        [cfg] = client.scatter([config], broadcast=True)
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or jobs)
        yield from _ordered(client, ((process_batch, cfg, p) for p in payloads),
                            2 * n_workers)
