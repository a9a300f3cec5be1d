"""Errors a user can act on: each names the file, the line and the chunk."""

from __future__ import annotations


class StreamfilterError(Exception):
    """Base class of every error streamfilter reports to a user (exit status 2)."""


class StreamFormatError(StreamfilterError):
    """A stream that does not follow the CrystFEL stream format.

    Parameters
    ----------
    path : str
        The stream's file name (``<stdin>`` for standard input).
    line_no : int or None
        1-based line number of the offending line, when known.
    chunk_no : int or None
        0-based number of the chunk in the stream, when inside a chunk.
    message : str
        What is wrong.
    text : str, optional
        The offending line (shortened for display).
    """

    def __init__(
        self,
        path: str,
        line_no: int | None,
        chunk_no: int | None,
        message: str,
        text: str | None = None,
    ) -> None:
        self.path = path
        self.line_no = line_no
        self.chunk_no = chunk_no
        self.message = message
        self.text = text
        super().__init__(str(self))

    def __reduce__(self):
        # picklable with its fields, so that an error raised in a worker process reaches
        # the parent intact (multiprocessing re-raises it there)
        return (type(self), (self.path, self.line_no, self.chunk_no, self.message, self.text))

    def __str__(self) -> str:
        where = self.path
        if self.line_no is not None:
            where += f", line {self.line_no}"
        if self.chunk_no is not None:
            where += f", chunk {self.chunk_no}"
        out = f"{where}: {self.message}"
        if self.text is not None:
            shown = self.text if len(self.text) <= 120 else self.text[:117] + "..."
            out += f": {shown!r}"
        return out
