"""``streamfilter split``: cut a stream into N valid streams at chunk boundaries.

Every shard gets the full header (geometry included), so each is a stream CrystFEL and
streamfilter read on their own; ``streamfilter cat`` joins them back into the original bytes.
Shards are balanced by bytes, cut only between chunks, using the cached chunk index.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from ..errors import StreamfilterError
from ..interrupt import signals_held
from .index import ChunkIndex, build_index
from .reader import is_same_file
from .writer import atomic_output, commit_temp

COPY_BLOCK = 1 << 22


def shard_bounds(index: ChunkIndex, n: int) -> list[tuple[int, int]]:
    """Chunk ranges [start, stop) of ``n`` shards of about equal size in bytes."""
    total = len(index)
    if total == 0:
        return [(0, 0)] * n
    body = index.size - index.header_end
    targets = index.header_end + body * np.arange(1, n) / n
    cuts = np.searchsorted(index.offsets, targets).clip(0, total)
    edges = [0, *cuts.tolist(), total]
    return [(edges[i], max(edges[i], edges[i + 1])) for i in range(n)]


def split_stream(path: str, n: int, prefix: str, *, cache: bool = True) -> list[Path]:
    """Write ``n`` shards ``PREFIX-000.stream`` ... and return their paths."""
    if n < 1:
        raise StreamfilterError("split: -n must be at least 1")
    if path == "-":
        raise StreamfilterError("split: needs a file (the chunk index is built by seeking)")
    outputs = [Path(f"{prefix}-{k:03d}.stream") for k in range(n)]
    for out in outputs:
        if is_same_file(path, out):
            raise StreamfilterError(f"{out}: shard would overwrite the input; choose another "
                                    "prefix")
    index = build_index(path, cache=cache)
    # All shards or none: each goes to a temporary file, and all are renamed at the end, so
    # an interrupted or failed split never leaves a set of shards that silently lacks chunks.
    temps: list[str] = []
    try:
        with open(path, "rb") as src:
            header = src.read(index.header_end)
            for out, (start, stop) in zip(outputs, shard_bounds(index, n)):
                a, b = index.span(start, stop) if stop > start else (0, 0)
                with atomic_output(out, commit=False) as f:
                    temps.append(f.temp_name)
                    f.write(header)
                    src.seek(a)
                    remaining = b - a
                    while remaining > 0:
                        block = src.read(min(COPY_BLOCK, remaining))
                        if not block:
                            raise StreamfilterError(f"{path}: file shrank while splitting")
                        f.write(block)
                        remaining -= len(block)
        with signals_held():
            for tmp, out in zip(temps, outputs):
                commit_temp(tmp, out)
            temps = []
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return outputs
