"""A byte-offset index of chunk starts, for shards and chunk ranges without a full read.

The index is built in one pass over the file (memchr for the B of each begin marker, numpy
for the newlines) and cached under ``$STREAMFILTER_CACHE``, else
``$XDG_CACHE_HOME/streamfilter`` (``~/.cache/streamfilter``), never beside the stream (data
directories are not ours).
A cached index is used only while the stream's size and modification time are those it was
built from.

``offsets[i]`` is the byte offset of chunk i's ``----- Begin chunk -----`` line;
``header_end == offsets[0]``.  Chunk i (with the bytes that precede it) spans
``[offsets[i-1] end, offsets[i+1])``; :func:`read_range` hands out chunks i..j-1 exactly as
the full reader would.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StreamFormatError
from .model import BEGIN_CHUNK
from .reader import STREAM_MAGIC, StreamReader, _count_newlines

INDEX_VERSION = 1


@dataclass
class ChunkIndex:
    """Chunk start offsets of one stream file."""

    path: str
    size: int
    mtime_ns: int
    offsets: np.ndarray  # int64, one per chunk
    lines: np.ndarray    # int64, 1-based line number of each chunk's begin line

    @property
    def header_end(self) -> int:
        return int(self.offsets[0]) if len(self.offsets) else self.size

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """Byte range [a, b) holding chunks start..stop-1 (and what precedes them)."""
        a = int(self.offsets[start]) if start < len(self) else self.size
        b = int(self.offsets[stop]) if stop < len(self) else self.size
        return a, b


_B_AT = 1 + BEGIN_CHUNK.index(b"B")  # where the B sits in b"\n" + BEGIN_CHUNK


def _scan(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and 1-based line numbers of every chunk-begin line, in one pass."""
    marker = b"\n" + BEGIN_CHUNK
    offsets: list[int] = []
    lines: list[int] = []
    block_size = 1 << 22  # 4 MB: the scan needs about 3 blocks of memory, whatever the file
    with open(path, "rb") as f:
        head = f.read(len(STREAM_MAGIC))
        if not head:
            raise StreamFormatError(path, 1, None, "empty file: not a CrystFEL stream")
        if head != STREAM_MAGIC:
            raise StreamFormatError(path, 1, None, "not a CrystFEL stream")
        f.seek(0)
        base = 0          # file offset of block[0]
        line = 1          # line number at file offset `base`
        carry = b""
        while True:
            data = f.read(block_size)
            block = carry + data
            if not block:
                break
            start = 0
            limit = len(block) - len(marker) + 1 if data else len(block)
            view = memoryview(block)
            # the B of "Begin" (memchr speed; B is rare elsewhere), then the whole marker
            pos = block.find(b"B", _B_AT)
            while 0 <= pos - _B_AT < limit:
                at = pos - _B_AT
                if block.startswith(marker, at):
                    line += _count_newlines(view[start:at + 1])
                    start = at + 1
                    offsets.append(base + start)
                    lines.append(line)
                pos = block.find(b"B", pos + 1)
            if not data:
                break
            keep = max(start, len(block) - len(marker) + 1)
            line += _count_newlines(view[start:keep])
            view.release()
            carry = block[keep:]
            base += keep
    return np.array(offsets, dtype=np.int64), np.array(lines, dtype=np.int64)


def _cache_path(path: Path) -> list[Path]:
    # Never beside the stream: data directories (archives, other people's beamtimes) are not
    # ours to write into, even when the file system would let us.
    base = Path(os.environ.get("STREAMFILTER_CACHE")
                or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                / "streamfilter")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    return [base / f"{path.name}.{digest}.sfidx"]


def build_index(path: str | os.PathLike, *, cache: bool = True) -> ChunkIndex:
    """The chunk index of ``path``, from the cache when it is still valid."""
    p = Path(path)
    st = p.stat()
    candidates = _cache_path(p)
    if cache:
        for c in candidates:
            try:
                with np.load(c) as z:
                    meta = z["meta"]
                    if (int(meta[0]), int(meta[1]), int(meta[2])) == \
                            (INDEX_VERSION, st.st_size, st.st_mtime_ns):
                        return ChunkIndex(str(p), st.st_size, st.st_mtime_ns, z["offsets"],
                                          z["lines"])
            except (OSError, KeyError, ValueError):
                continue
    offsets, lines = _scan(str(p))
    index = ChunkIndex(str(p), st.st_size, st.st_mtime_ns, offsets, lines)
    if cache:
        meta = np.array([INDEX_VERSION, st.st_size, st.st_mtime_ns], dtype=np.int64)
        for c in candidates:
            try:
                c.parent.mkdir(parents=True, exist_ok=True)
                tmp = c.with_name(c.name + ".partial")
                with open(tmp, "wb") as f:
                    np.savez(f, meta=meta, offsets=offsets, lines=lines)
                os.replace(tmp, c)
                break
            except OSError:
                continue
    return index


class _Segments(io.RawIOBase):
    """A read-only file made of byte ranges of one file (the header, then a chunk range)."""

    def __init__(self, path: str, ranges: list[tuple[int, int]]) -> None:
        self._f = open(path, "rb")  # noqa: SIM115
        self._ranges = [r for r in ranges if r[1] > r[0]]
        self._i = 0
        self._pos = self._ranges[0][0] if self._ranges else 0
        self.name = path

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._i < len(self._ranges):
            a, z = self._ranges[self._i]
            if self._pos >= z:
                self._i += 1
                if self._i < len(self._ranges):
                    self._pos = self._ranges[self._i][0]
                continue
            self._f.seek(self._pos)
            n = self._f.readinto(memoryview(b)[:min(len(b), z - self._pos)])
            if not n:
                return 0
            self._pos += n
            return n
        return 0

    def close(self) -> None:
        self._f.close()
        super().close()


def read_range(index: ChunkIndex, start: int, stop: int, *, keep_going: bool = False
               ) -> StreamReader:
    """A reader over chunks ``start..stop-1`` only (the header is read too, nothing else).

    Chunk numbers and line numbers in messages are those of the whole file.
    """
    a, b = index.span(start, stop)
    line = int(index.lines[start]) if start < len(index) else 1
    return read_range_bytes(index.path, index.header_end, a, b, start, line,
                            keep_going=keep_going)


def read_range_bytes(path: str, header_end: int, a: int, b: int, first_index: int,
                     first_line: int, *, keep_going: bool = False) -> StreamReader:
    """A reader over bytes [a, b) of ``path`` after its header (workers: no index needed)."""
    seg = io.BufferedReader(_Segments(path, [(0, header_end), (a, b)]), buffer_size=1 << 20)
    reader = StreamReader(seg, keep_going=keep_going, name=path)
    reader._own = True
    reader._index = first_index
    reader._line = first_line
    return reader


def read_chunks(index: ChunkIndex, numbers: list[int]) -> StreamReader:
    """A reader over the chunks ``numbers`` (ascending) only, with one header read.

    Consecutive numbers are read as one range.  Chunk and line numbers in messages are
    those of the whole file for the first range only (for chunks already read once).
    """
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        a, b = index.span(n, n + 1)
        if ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    seg = io.BufferedReader(_Segments(index.path, [(0, index.header_end), *ranges]),
                            buffer_size=1 << 20)  # fmt: skip
    reader = StreamReader(seg, name=index.path)
    reader._own = True
    if numbers:
        reader._index = numbers[0]
        reader._line = int(index.lines[numbers[0]])
    return reader
