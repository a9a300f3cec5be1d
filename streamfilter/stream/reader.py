"""The one stream reader: chunk by chunk, in constant memory, from a file, a .gz or stdin.

The reader splits the byte stream at ``----- Begin chunk -----`` / ``----- End chunk -----``
lines and hands out :class:`~streamfilter.stream.model.Chunk` objects that parse themselves
lazily.  It never reads more than one block (4 MiB) beyond the current chunk.  Bytes between
chunks (the header of a second stream joined with ``cat``) travel with the next chunk as
``chunk.preceding``; bytes after the last chunk are ``reader.trailer``.  Nothing is dropped, so
writing every chunk back gives the input byte for byte.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import StreamFormatError
from .model import BEGIN_CHUNK, END_CHUNK, Chunk, StreamHeader

BLOCK_SIZE = 1 << 22
STREAM_MAGIC = b"CrystFEL stream format "
_MARK = b"--- "  # starts the crystal markers, two bytes into the chunk markers
assert BEGIN_CHUNK.index(_MARK) == END_CHUNK.index(_MARK) == 2
_LONGEST = max(len(BEGIN_CHUNK), len(END_CHUNK))


def _count_newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, three times faster on a chunk's tens of kilobytes."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))


def open_binary(path: str | os.PathLike) -> tuple[BinaryIO, str]:
    """Open a stream for reading bytes: ``-`` is standard input, ``*.gz`` is decompressed.

    Returns the file object and the name to use in messages.
    """
    if str(path) == "-":
        return sys.stdin.buffer, "<stdin>"
    name = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the reader
    except FileNotFoundError:
        raise StreamFormatError(name, None, None, "no such file") from None
    except IsADirectoryError:
        raise StreamFormatError(name, None, None, "is a directory, not a stream") from None
    except PermissionError:
        raise StreamFormatError(name, None, None, "permission denied") from None
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb"), name  # type: ignore[return-value]
    return f, name


class StreamReader:
    """Iterate over the chunks of one CrystFEL stream.

    Parameters
    ----------
    source : path, ``"-"`` or binary file object
    keep_going : bool
        If True, a chunk whose markers are broken (no end marker before the next begin marker
        or before the end of the file) is yielded with ``chunk.malformed`` set instead of
        raising, so callers can copy it verbatim and count it.
    name : str, optional
        Name for messages when ``source`` is a file object.

    Attributes
    ----------
    header : StreamHeader
        The bytes before the first chunk.
    trailer : bytes
        Bytes after the last chunk (after iteration).
    crlf : bool
        True when the input uses CR LF line endings (read, but CrystFEL's own readers reject
        such a header).
    bytes_read : int
        Bytes consumed so far (for progress bars).
    """

    def __init__(self, source: str | os.PathLike | BinaryIO, *, keep_going: bool = False,
                 name: str | None = None) -> None:
        if isinstance(source, (str, os.PathLike)):
            self._f, self.path = open_binary(source)
            self._own = str(source) != "-"
        else:
            self._f, self.path, self._own = source, name or getattr(source, "name", "<stream>"), \
                False
        self.keep_going = keep_going
        self.trailer = b""
        self.bytes_read = 0
        self.headers: list[StreamHeader] = []
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._line = 1  # line number of the first byte of self._buf
        self._read_header()

    # -- low level -----------------------------------------------------------------------
    # self._buf[self._pos:] is unconsumed input; offsets passed around below are relative to
    # self._pos, so that _fill() may compact the buffer at any time.

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            block = self._f.read(BLOCK_SIZE)
        except (OSError, EOFError) as e:  # truncated gzip etc.
            raise StreamFormatError(self.path, None, None, f"read error: {e}") from None
        if not block:
            self._eof = True
            return False
        self.bytes_read += len(block)
        self._buf = self._buf[self._pos:] + block if self._pos < len(self._buf) else block
        self._pos = 0
        return True

    def _find_line(self, marker: bytes, start: int) -> int:
        """Relative offset of the next line starting with ``marker`` at or after ``start``,
        reading more input as needed; -1 at the end of input."""
        pos = start
        while True:
            i = self._find(marker, pos)
            at = self._pos + i
            if i < 0 or at == 0 or self._buf[at - 1] == 10:
                return i
            pos = i + 1

    def _line_end(self, start: int) -> int:
        """Relative offset just past the newline that ends the line holding ``start``."""
        while True:
            i = self._buf.find(b"\n", self._pos + start)
            if i >= 0:
                return i - self._pos + 1
            if not self._fill():
                return len(self._buf) - self._pos

    def _find_chunk_end(self) -> tuple[int, int, list[int]]:
        """(end, next_begin, marks) for the chunk that begins at relative offset 0.

        ``end`` / ``next_begin`` are the relative offsets of the first line after the begin
        marker that starts with the end marker, or with a begin marker (the chunk then has
        no end), whichever comes first; the other is -1, both are -1 at the end of input.
        ``marks`` are the offsets of the lines before it that start with ``--- `` (the
        crystal markers).  Every one of these lines holds ``--- `` (the chunk markers two
        bytes in), so one forward search finds them all: the chunk is scanned once.
        """
        pos = len(BEGIN_CHUNK)
        marks: list[int] = []
        while True:
            i = self._find(_MARK, pos)
            if i < 0:
                return -1, -1, marks
            at = self._pos + i
            start = i - 2
            if start >= 0 and self._buf[at - 2:at] == b"--" and (
                    start == 0 or self._buf[at - 3] == 10):
                while len(self._buf) - self._pos - start < _LONGEST and self._fill():
                    pass
                at = self._pos + start
                if self._buf.startswith(END_CHUNK, at):
                    return start, -1, marks
                if self._buf.startswith(BEGIN_CHUNK, at):
                    return -1, start, marks
            elif i == 0 or self._buf[at - 1] == 10:
                marks.append(i)
            pos = i + 1

    def _find(self, needle: bytes, start: int) -> int:
        """Relative offset of the next ``needle`` at or after ``start``, reading more input
        as needed; -1 at the end of input."""
        pos = start
        while True:
            i = self._buf.find(needle, self._pos + pos)
            if i >= 0:
                return i - self._pos
            pos = max(start, len(self._buf) - self._pos - len(needle) + 1)
            if not self._fill():
                return -1

    def _take(self, stop: int) -> bytes:
        out = self._buf[self._pos:self._pos + stop]
        self._pos += stop
        return out

    def _read_header(self) -> None:
        self._pos = 0
        while len(self._buf) < 64 and self._fill():
            pass
        if not self._buf:
            raise StreamFormatError(self.path, 1, None, "empty file: not a CrystFEL stream")
        if not self._buf.startswith(STREAM_MAGIC):
            first = self._buf.split(b"\n", 1)[0][:80].decode("utf-8", "replace")
            raise StreamFormatError(self.path, 1, None,
                                    "not a CrystFEL stream (line 1 should start with "
                                    "'CrystFEL stream format')", first)
        self.crlf = self._buf.split(b"\n", 1)[0].endswith(b"\r")
        begin = self._find_line(BEGIN_CHUNK, 0)
        if begin < 0:
            while self._fill():
                pass
            begin = len(self._buf) - self._pos
        raw = self._take(begin)
        self.header = StreamHeader(raw)
        self.headers.append(self.header)
        self.version = self.header.format_version or "2.3"
        self._line += raw.count(b"\n")
        self._index = 0

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            begin = self._find_line(BEGIN_CHUNK, 0)
            if begin < 0:
                self.trailer = self._take(len(self._buf) - self._pos)
                return
            preceding = self._take(begin)
            if preceding and STREAM_MAGIC in preceding:
                h = StreamHeader(preceding[preceding.find(STREAM_MAGIC):])
                self.headers.append(h)
                self.version = h.format_version or self.version
            line = self._line + preceding.count(b"\n")
            end, nxt, marks = self._find_chunk_end()
            malformed = None
            if end >= 0 and nxt < 0:
                stop = self._line_end(end)
            else:
                stop = nxt if nxt >= 0 else len(self._buf) - self._pos
                why = ("chunk has no '----- End chunk -----' before the next chunk begins"
                       if nxt >= 0 else
                       "chunk has no '----- End chunk -----' (file truncated?)")
                malformed = StreamFormatError(self.path, line, self._index, why)
                if not self.keep_going:
                    raise malformed
            raw = self._take(stop)
            chunk = Chunk(raw, index=self._index, line_no=line, version=self.version,
                          path=self.path, preceding=preceding, malformed=malformed,
                          marks=marks if malformed is None else None)
            self._line = line + _count_newlines(raw)
            self._index += 1
            yield chunk

    # -- context manager -------------------------------------------------------------------

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_stream(source: str | os.PathLike | BinaryIO, *, keep_going: bool = False
                ) -> StreamReader:
    """Open a CrystFEL stream for chunk-by-chunk reading (see :class:`StreamReader`).

    ``source`` may be a path (``*.gz`` is decompressed), ``"-"`` for standard input, or a
    binary file object.  Use as ``with read_stream(p) as r: for chunk in r: ...``.
    """
    return StreamReader(source, keep_going=keep_going)


def stream_from_bytes(data: bytes, name: str = "<bytes>", **kw) -> StreamReader:
    """A reader over an in-memory stream (tests, workers)."""
    return StreamReader(io.BytesIO(data), name=name, **kw)


def is_same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if two paths name the same existing file (output must never overwrite input)."""
    if str(a) == "-" or str(b) == "-":
        return False
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False
