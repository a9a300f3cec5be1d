"""The one stream writer: chunks go out byte for byte unless their tables were replaced.

Output is written to a temporary file in the target directory and renamed over the target
only when everything was written, so an interrupted run (Ctrl-C, SIGTERM, a full disk, a
crash) never leaves a partial stream at the output path, and the input is never touched.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import StreamfilterError
from ..interrupt import check_stop, signals_held
from .model import Chunk, StreamHeader


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, commit: bool = True) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing through a temporary file renamed at the end.

    ``"-"`` yields standard output.  On any exception (including KeyboardInterrupt) the
    temporary file is removed and the exception propagates; an existing file at ``path`` is
    left as it was.  A write error (full disk, file too large) is a StreamfilterError naming
    ``path``.  With ``commit=False`` the finished temporary file (``f.temp_name``) is left
    for the caller to rename with :func:`commit_temp` (several outputs, all or none).
    """
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    tmp = None
    try:
        with signals_held():  # a Ctrl-C must not fall between creating and owning the file
            fd, tmp = make_temp(path)
            f = _NamedWrites(os.fdopen(fd, "wb", buffering=1 << 20), str(path), tmp)
        with f:
            yield f
            f.flush()
        if commit:
            commit_temp(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def check_output_dir(path: str | os.PathLike) -> Path:
    """The directory of output ``path``; a clear error if it is missing or not writable."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise StreamfilterError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise StreamfilterError(f"{path}: output directory {directory} is not writable")
    if target.is_dir():
        raise StreamfilterError(f"{path}: is a directory")
    return directory


def make_temp(path: str | os.PathLike) -> tuple[int, str]:
    """A new temporary file (fd, name) beside output ``path``: ``.NAME.XXXXXX.partial``."""
    directory = check_output_dir(path)
    try:
        return tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".partial",
                                dir=directory)
    except OSError as e:  # read-only file system, quota, ...
        raise StreamfilterError(f"{path}: cannot create a file in {directory}: "
                                f"{e.strerror or e}") from None


def commit_temp(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Give a finished temporary file the usual permissions and rename it to ``target``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
    os.replace(tmp, target)


class _NamedWrites:
    """A binary file whose write errors (full disk, file too large, quota, I/O error) are
    StreamfilterErrors naming the output, so they are never taken for input errors."""

    def __init__(self, f: BinaryIO, name: str, temp_name: str) -> None:
        self._f = f
        self.name = name
        self.temp_name = temp_name

    def write(self, data: bytes) -> int:
        check_stop()
        try:
            return self._f.write(data)
        except OSError as e:
            raise self._error(e) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise self._error(e) from None

    def fileno(self) -> int:
        return self._f.fileno()

    def tell(self) -> int:
        return self._f.tell()

    def _error(self, e: OSError) -> StreamfilterError:
        return StreamfilterError(f"{self.name}: cannot write the output: "
                                 f"{e.strerror or e} (the partial output was removed)")

    def __enter__(self) -> _NamedWrites:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._f.close()
        except OSError as e:
            if exc[0] is None:
                raise self._error(e) from None


class StreamWriter:
    """Write a stream: a header, then chunks (original bytes or rewritten), then a trailer.

    Use as a context manager around :func:`atomic_output`, or give it an open binary file.
    ``bytes_written`` counts what was written.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO) -> None:
        self._ctx = None
        if isinstance(target, (str, os.PathLike)):
            self._ctx = atomic_output(target)
            self._f = None
        else:
            self._f = target
        self.bytes_written = 0

    def __enter__(self) -> StreamWriter:
        if self._ctx is not None:
            self._f = self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self._ctx is not None:
            return bool(self._ctx.__exit__(*exc))
        return False

    def write(self, data: bytes) -> None:
        check_stop()
        self._f.write(data)
        self.bytes_written += len(data)

    def write_header(self, header: StreamHeader | bytes) -> None:
        self.write(header.raw if isinstance(header, StreamHeader) else header)

    def write_chunk(self, chunk: Chunk, body: bytes | None = None, *,
                    keep_preceding: bool = True) -> None:
        """Write ``chunk`` (its original bytes, or ``body`` when it was rewritten).

        ``keep_preceding`` also writes the bytes that stood before the chunk in the input
        (the header of a joined stream); :func:`~streamfilter.stream.cat.cat_streams` turns
        this off when it drops repeated identical headers.
        """
        if keep_preceding and chunk.preceding:
            self.write(chunk.preceding)
        self.write(chunk.raw if body is None else body)
