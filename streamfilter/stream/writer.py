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
from .model import Chunk, StreamHeader


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing through a temporary file renamed at the end.

    ``"-"`` yields standard output.  On any exception (including KeyboardInterrupt) the
    temporary file is removed and the exception propagates; an existing file at ``path`` is
    left as it was.
    """
    if str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise StreamfilterError(f"{path}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise StreamfilterError(f"{path}: output directory {directory} is not writable")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        self._f.write(data)
        self.bytes_written += len(data)

    def write_header(self, header: StreamHeader | bytes) -> None:
        self.write(header.raw if isinstance(header, StreamHeader) else header)

    def write_chunk(self, chunk: Chunk, body: bytes | None = None, *,
                    keep_preceding: bool = True) -> None:
        """Write ``chunk`` (its original bytes, or ``body`` when it was rewritten).

        ``keep_preceding`` also writes the bytes that stood before the chunk in the input
        (the header of a joined stream); :func:`streamfilter.ops.cat` turns this off when it
        drops repeated identical headers.
        """
        if keep_preceding and chunk.preceding:
            self.write(chunk.preceding)
        self.write(chunk.raw if body is None else body)
