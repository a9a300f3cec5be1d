"""The one stream reader: chunk by chunk, in constant memory, from a file, a .gz or stdin.

The reader splits the byte stream at ``----- Begin chunk -----`` / ``----- End chunk -----``
lines and hands out :class:`~streamfilter.stream.model.Chunk` objects that parse themselves
lazily.  It never reads more than one block (4 MiB) beyond the current chunk.  Bytes between
chunks (the header of a second stream joined with ``cat``) travel with the next chunk as
``chunk.preceding``; bytes after the last chunk are ``reader.trailer``.  Nothing else is
dropped, so writing every chunk back gives the input byte for byte.

The one exception is an *incomplete tail*: a last chunk that the end of the file cuts off
before its ``----- End chunk -----`` line (a stream that indexamajig is still writing, or one
cut short by a full disk), or the start of a begin-marker line cut off at the end.  As
CrystFEL's process_hkl and partialator do, the reader then ends after the last complete
chunk: the tail is not yielded and not part of ``reader.trailer``, and
``reader.incomplete_tail`` (an :class:`IncompleteTail`) says where it began, for a warning.
With ``incomplete_tail_error=True`` it is an error instead.  A chunk without an end marker
that is followed by another chunk is not a tail: that is a malformed chunk (an error, or
``chunk.malformed`` with ``keep_going``).  A file that ends inside its header stays an error.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import StreamFormatError
from .follow import FileWatch, Follow
from .model import (
    BEGIN_CELL,
    BEGIN_CHUNK,
    BEGIN_GEOM,
    END_CELL,
    END_CHUNK,
    END_GEOM,
    Chunk,
    StreamHeader,
)

BLOCK_SIZE = 1 << 22
_CAPACITY = 2 * BLOCK_SIZE  # the reused read buffer: a block plus the rest of a chunk
STREAM_MAGIC = b"CrystFEL stream format "
# the letter of "Begin" / "End" that the chunk scan looks for sits 6 bytes into the chunk
# markers and 4 into the crystal markers
assert BEGIN_CHUNK.index(b"B") == END_CHUNK.index(b"E") == 6
# bytes a chunk marker reaches past the letter the scan finds: a candidate letter closer than
# that to the end of the input read so far may belong to a marker cut off there (read on);
# one farther away is decided at once (so a followed stream's last chunk is handed out as
# soon as its end line is there)
_REACH_B, _REACH_E = len(BEGIN_CHUNK) - 6, len(END_CHUNK) - 6


def _count_newlines(data: bytes | memoryview) -> int:
    """``data.count(b"\\n")``, three times faster on a chunk's tens of kilobytes."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 10))


class _LineCounter:
    """Line numbers of a regular file's byte offsets, counted only when somebody asks.

    Counting every chunk's newlines as it goes by costs a sixth of a passthrough (``cat``),
    and the numbers are only wanted for messages and diagnostics.  So a reader of a regular
    file hands each chunk a way to count later: from the last offset answered, in the
    reader's buffer while the bytes are still there, else by reading the file again (on a
    duplicate of its descriptor, so a closed reader or a renamed file still answers).
    Asked in order, as the pipelines do, each byte is counted once, as before.
    """

    def __init__(self, fd: int, reader: StreamReader, at: int, line: int) -> None:
        self._fd = os.dup(fd)
        weakref.finalize(self, os.close, self._fd)
        self._reader = weakref.ref(reader)
        self._at, self._line = at, line  # the last answer: ``at`` starts line ``line``

    def line_of(self, at: int) -> int:
        """1-based line number of the line that holds input offset ``at`` (a line start)."""
        lo, hi = sorted((self._at, at))
        n = self._count(lo, hi)
        self._line += n if at >= self._at else -n
        self._at = at
        return self._line

    def _count(self, lo: int, hi: int) -> int:
        n = 0
        reader = self._reader()
        start = reader._offset if reader is not None else hi
        while lo < min(hi, start):  # bytes no longer in the buffer: read them again
            data = os.pread(self._fd, min(BLOCK_SIZE, min(hi, start) - lo), lo)
            if not data:
                break
            n += _count_newlines(data)
            lo += len(data)
        if lo < hi:
            n += _count_newlines(reader._view[lo - start:hi - start])
        return n


@dataclass(frozen=True)
class IncompleteTail:
    """Where a stream's incomplete last chunk begins (see the module docstring).

    ``line_no`` is the 1-based line of its begin marker, ``chunk_no`` the 0-based number it
    would have had (the number of complete chunks before it, in a whole-file read),
    ``offset`` its input byte offset and ``size`` the bytes left out.
    """

    path: str
    line_no: int
    chunk_no: int
    offset: int
    size: int

    @property
    def message(self) -> str:
        return ("incomplete last chunk: the file ends before its '----- End chunk -----' "
                f"line ({self.size} bytes left out; still being written, or cut short?); "
                "read up to the last complete chunk, as CrystFEL does")

    def __str__(self) -> str:
        return f"{self.path}, line {self.line_no}, chunk {self.chunk_no}: {self.message}"

    def error(self) -> StreamFormatError:
        """The same news as an error (``incomplete_tail_error=True``, ``cat --strict``)."""
        return StreamFormatError(self.path, self.line_no, self.chunk_no,
                                 self.message.replace("; read up to the last complete chunk, "
                                                      "as CrystFEL does", ""))


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
        If True, a chunk whose markers are broken (no end marker before the next begin
        marker) is yielded with ``chunk.malformed`` set instead of
        raising, so callers can copy it verbatim and count it.
    name : str, optional
        Name for messages when ``source`` is a file object.
    incomplete_tail_error : bool
        Raise :class:`StreamFormatError` at an incomplete tail instead of ending there.

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
    incomplete_tail : IncompleteTail or None
        After iteration: where the incomplete last chunk began, if the file ends inside one
        (it was not yielded).
    follow : Follow or None
        Follow a file that is still being written (:mod:`streamfilter.stream.follow`): at
        the end of the file, wait for more until it has not grown for ``follow.idle``
        seconds; then end as at the end of any file.  Needs a regular, uncompressed file.
    """

    def __init__(self, source: str | os.PathLike | BinaryIO, *, keep_going: bool = False,
                 name: str | None = None, incomplete_tail_error: bool = False,
                 follow: Follow | None = None) -> None:
        if isinstance(source, (str, os.PathLike)):
            self._f, self.path = open_binary(source)
            self._own = str(source) != "-"
        else:
            self._f, self.path, self._own = source, name or getattr(source, "name", "<stream>"), \
                False
        self._watch: FileWatch | None = None
        if follow is not None:
            self._watch = self._follow(source, follow)
        self.keep_going = keep_going
        self.incomplete_tail_error = incomplete_tail_error
        self.incomplete_tail: IncompleteTail | None = None
        self.trailer = b""
        self.bytes_read = 0
        self.headers: list[StreamHeader] = []
        self._buf = bytearray()
        self._view = memoryview(self._buf)
        self._offset = 0  # input offset of self._buf[0]
        self._pos = 0
        self._end = 0
        self._eof = False
        self._line = 1  # line number of self._buf[self._pos] (counted as we go), or:
        self._lines: _LineCounter | None = None  # for a regular file, counted when asked
        self._read_header()
        if self._own and isinstance(self._f, io.BufferedReader) and stat.S_ISREG(
                os.fstat(self._f.fileno()).st_mode):
            self._lines = _LineCounter(self._f.fileno(), self, self._offset + self._pos,
                                       self._line)

    def _follow(self, source: object, follow: Follow) -> FileWatch:
        """The watch over a followed stream: a regular, uncompressed file named by a path."""
        why = None
        if not isinstance(source, (str, os.PathLike)) or str(source) == "-":
            why = ("standard input is read until it ends anyway; follow a file that is "
                   "being written")
        elif not isinstance(self._f, io.BufferedReader):
            why = "a compressed stream cannot be followed while it is written"
        elif not stat.S_ISREG(os.fstat(self._f.fileno()).st_mode):
            why = "not a regular file"
        if why is not None:
            if self._own:
                self._f.close()
            raise StreamFormatError(self.path, None, None, f"cannot follow: {why}")
        return FileWatch(self._f.fileno(), self.path, follow)

    def continue_at(self, offset: int, chunk_no: int, line_no: int) -> None:
        """Read on from input byte ``offset``, the begin line of chunk ``chunk_no`` (0-based)
        at line ``line_no`` (1-based), instead of the first chunk: a resumed run.  Only for a
        regular, uncompressed file, before the iteration starts."""
        if self._lines is None:
            raise ValueError(f"{self.path}: can only continue in a regular, uncompressed file")
        self._f.seek(offset)
        self._offset, self._pos, self._end, self._eof = offset, 0, 0, False
        self.bytes_read = offset
        self._index = chunk_no
        self._lines = _LineCounter(self._f.fileno(), self, offset, line_no)

    # -- low level -----------------------------------------------------------------------
    # self._buf[self._pos:self._end] is unconsumed input (the buffer is reused: bytes past
    # self._end are stale, so every search is bounded by it); offsets passed around below
    # are relative to self._pos, so that _fill() may compact the buffer at any time.

    def _fill(self) -> bool:
        """Read up to one more block behind the unconsumed input; False at the end of input.

        The block is read straight into the reused buffer (``readinto``): no new 4 MiB
        object, no page faults, no copy of the block per read.
        """
        if self._eof:
            return False
        keep = self._end - self._pos
        need = keep + BLOCK_SIZE
        if need > len(self._buf) or len(self._buf) > _CAPACITY >= need:
            # grow for a chunk longer than a block; shrink back after it
            buf = bytearray(max(need, _CAPACITY))
            buf[:keep] = self._view[self._pos:self._end]
            self._buf, self._view = buf, memoryview(buf)
        elif keep:
            self._buf[:keep] = self._view[self._pos:self._end].tobytes()
        self._offset += self._pos
        self._pos, self._end = 0, keep
        while True:
            try:
                n = self._f.readinto(self._view[keep:keep + BLOCK_SIZE])
            except (OSError, EOFError) as e:  # truncated gzip etc.
                raise StreamFormatError(self.path, None, None, f"read error: {e}") from None
            if self._watch is None:
                break
            if n:
                self._watch.grew()
                break
            if not self._watch.wait_past(self.bytes_read):  # idle: the end of the stream
                break
        if not n:
            self._eof = True
            return False
        self.bytes_read += n
        self._end = keep + n
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
            i = self._buf.find(b"\n", self._pos + start, self._end)
            if i >= 0:
                return i - self._pos + 1
            if not self._fill():
                return self._end - self._pos

    def _find_chunk_end(self) -> tuple[int, int, list[int]]:
        """(end, next_begin, marks) for the chunk that begins at relative offset 0.

        ``end`` / ``next_begin`` are the relative offsets of the first line after the begin
        marker that starts with the end marker, or with a begin marker (the chunk then has
        no end), whichever comes first; the other is -1, both are -1 at the end of input.
        ``marks`` are the offsets of the lines before it that start with ``--- B`` or
        ``--- E`` (every ``--- Begin crystal`` / ``--- End crystal`` line).

        Every marker line holds "Begin" or "End", and capital B and E are rare elsewhere in
        a chunk (``Event:``, ``End of ...``, the odd panel or file name).  So the chunk is
        scanned with ``bytes.find`` of one byte (memchr, tens of GB/s) for both letters, and
        only the few hits are looked at: one scan, exact, about 20 x faster than searching
        for ``--- `` (whose space is everywhere in the tables).
        """
        marks: list[int] = []
        scanned = len(BEGIN_CHUNK)  # candidates before this relative offset are done
        while True:
            buf, base, stop = self._buf, self._pos, self._end
            # a candidate past these may be cut off: read on
            limit_b, limit_e = stop - _REACH_B, stop - _REACH_E
            find = buf.find
            e = find(b"E", base + scanned, stop)
            b = find(b"B", base + scanned, stop)
            while e >= 0 or b >= 0:
                q = e if b < 0 or 0 <= e < b else b
                if q > (limit_e if q == e else limit_b) and not self._eof:
                    break
                if buf.startswith(b"--- ", q - 4):
                    if buf[q - 5] == 10:
                        marks.append(q - 4 - base)
                    elif buf[q - 7] == 10 and buf.startswith(b"--", q - 6):
                        if buf.startswith(END_CHUNK, q - 6, stop):
                            return q - 6 - base, -1, marks
                        if buf.startswith(BEGIN_CHUNK, q - 6, stop):
                            return -1, q - 6 - base, marks
                if q == e:
                    e = find(b"E", q + 1, stop)
                else:
                    b = find(b"B", q + 1, stop)
            else:
                q = stop
            scanned = q - base
            if not self._fill():
                if q == stop:
                    return -1, -1, marks

    def _find(self, needle: bytes, start: int) -> int:
        """Relative offset of the next ``needle`` at or after ``start``, reading more input
        as needed; -1 at the end of input."""
        pos = start
        while True:
            i = self._buf.find(needle, self._pos + pos, self._end)
            if i >= 0:
                return i - self._pos
            pos = max(start, self._end - self._pos - len(needle) + 1)
            if not self._fill():
                return -1

    def _take(self, stop: int) -> bytes:
        if not stop:
            return b""
        out = self._view[self._pos:self._pos + stop].tobytes()
        self._pos += stop
        return out

    def _read_header(self) -> None:
        self._pos = 0
        while self._end < 64 and self._fill():
            pass
        if not self._end:
            raise StreamFormatError(self.path, 1, None, "empty file: not a CrystFEL stream")
        nl = self._buf.find(b"\n", 0, self._end)
        first = bytes(self._buf[:nl if nl >= 0 else self._end])
        if not first.startswith(STREAM_MAGIC):
            raise StreamFormatError(self.path, 1, None,
                                    "not a CrystFEL stream (line 1 should start with "
                                    "'CrystFEL stream format')",
                                    first[:80].decode("utf-8", "replace"))
        self.crlf = first.endswith(b"\r")
        begin = self._find_line(BEGIN_CHUNK, 0)
        self._index = 0
        if begin < 0:
            while self._fill():
                pass
            begin = self._end - self._pos
            cut = self._cut_begin_line()
            if cut >= 0:
                begin = cut
            raw = self._take(begin)
            self._check_whole_header(raw)
            if cut >= 0:
                self._end_at_tail(self._line + raw.count(b"\n"))
        else:
            raw = self._take(begin)
        self.header = StreamHeader(raw)
        self.headers.append(self.header)
        self.version = self.header.format_version or "2.3"
        self._line += raw.count(b"\n")

    def _check_whole_header(self, raw: bytes) -> None:
        """A file without chunks must hold a whole header: one that the end of the file
        cuts off (inside a line, the geometry or the unit cell) is an error, not a tail."""
        why = None
        if raw.rfind(BEGIN_GEOM) > raw.rfind(END_GEOM):
            why = "the geometry file"
        elif raw.rfind(BEGIN_CELL) > raw.rfind(END_CELL):
            why = "the unit cell"
        elif not raw.endswith(b"\n"):
            why = "a line"
        if why is not None:
            raise StreamFormatError(self.path, raw.count(b"\n") + 1, None,
                                    f"the file ends inside its header ({why} is cut off): "
                                    "no complete chunk to read")

    def _cut_begin_line(self) -> int:
        """Relative offset of the last line of the input if it is the start of a
        ``----- Begin chunk -----`` line cut off by the end of the file, else -1."""
        if self._end == self._pos:
            return -1
        at = self._buf.rfind(b"\n", self._pos, self._end) + 1
        at = max(at, self._pos)
        if BEGIN_CHUNK.startswith(self._view[at:self._end]) and at < self._end:
            return at - self._pos
        return -1

    def _end_at_tail(self, line: int) -> None:
        """Take the rest of the input as an incomplete tail beginning at line ``line``."""
        size = self._end - self._pos
        self.incomplete_tail = IncompleteTail(self.path, line, self._index,
                                              self._offset + self._pos, size)
        if self.incomplete_tail_error:
            raise self.incomplete_tail.error()
        self._take(size)

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            if self._buf.startswith(BEGIN_CHUNK, self._pos, self._end):
                begin = 0  # the usual case: the next chunk follows at once
            else:
                begin = self._find_line(BEGIN_CHUNK, 0)
            if begin < 0:
                cut = self._cut_begin_line()
                self.trailer = self._take(self._end - self._pos if cut < 0 else cut)
                if cut >= 0:
                    self._end_at_tail(self._tail_line(self.trailer))
                return
            preceding = self._take(begin)
            if preceding and STREAM_MAGIC in preceding:
                h = StreamHeader(preceding[preceding.find(STREAM_MAGIC):])
                self.headers.append(h)
                self.version = h.format_version or self.version
            if self._lines is None:
                line = self._line + preceding.count(b"\n") if preceding else self._line
            else:
                line = partial(self._lines.line_of, self._offset + self._pos)
            end, nxt, marks = self._find_chunk_end()
            malformed = None
            if end >= 0 and nxt < 0:
                stop = self._line_end(end)
            elif nxt < 0:  # the end of the file inside the last chunk
                self._end_at_tail(line if isinstance(line, int) else line())
                return
            else:
                stop = nxt
                why = "chunk has no '----- End chunk -----' before the next chunk begins"
                malformed = StreamFormatError(self.path, line if isinstance(line, int)
                                              else line(), self._index, why)
                if not self.keep_going:
                    raise malformed
            raw = self._take(stop)
            chunk = Chunk(raw, index=self._index, line_no=line, version=self.version,
                          path=self.path, preceding=preceding, malformed=malformed,
                          marks=marks if malformed is None else None)
            if self._lines is None:
                self._line = line + _count_newlines(raw)
            self._index += 1
            yield chunk

    def _tail_line(self, trailer: bytes) -> int:
        """Line number of the input offset just after ``trailer`` (just taken)."""
        if self._lines is None:
            return self._line + trailer.count(b"\n")
        return self._lines.line_of(self._offset + self._pos)

    # -- context manager -------------------------------------------------------------------

    def close(self) -> None:
        if self._own:
            self._f.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_stream(source: str | os.PathLike | BinaryIO, *, keep_going: bool = False,
                incomplete_tail_error: bool = False,
                follow: Follow | None = None) -> StreamReader:
    """Open a CrystFEL stream for chunk-by-chunk reading (see :class:`StreamReader`).

    ``source`` may be a path (``*.gz`` is decompressed), ``"-"`` for standard input, or a
    binary file object.  Use as ``with read_stream(p) as r: for chunk in r: ...``.
    ``follow`` reads a file that is still being written up to its end
    (:class:`~streamfilter.stream.follow.Follow`).
    """
    return StreamReader(source, keep_going=keep_going,
                        incomplete_tail_error=incomplete_tail_error, follow=follow)


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
