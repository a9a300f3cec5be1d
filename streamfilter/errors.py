"""Errors a user can act on: each names the file, and where known the line and the chunk.

Every error streamfilter reports to a user is a :class:`StreamfilterError` (exit status 2 in
the command line).  It carries the place (``path``, ``line_no``, ``chunk_no``, ``key``), the
``message`` and the offending ``text``, and prints them in one form::

    run.stream, line 812, chunk 3: what is wrong: 'the offending line'

The subclasses keep the constructor each domain finds natural and hand the fields to
:meth:`StreamfilterError.__init__`; they survive pickling intact (an error raised in a
worker process reaches the parent with its fields).
"""

from __future__ import annotations

from typing import Any


class StreamfilterError(Exception):
    """Base class of every error streamfilter reports to a user (exit status 2).

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        The file concerned (``<stdin>`` for standard input, ``<string>`` for text).
    line_no : int, optional
        1-based line number in ``path``.
    chunk_no : int, optional
        0-based number of the chunk in a stream.
    key : str, optional
        The key concerned (a geometry key such as ``p0/corner_x``).
    text : str, optional
        The offending line (shortened for display).
    """

    def __init__(
        self,
        message: str = "",
        *,
        path: str | None = None,
        line_no: int | None = None,
        chunk_no: int | None = None,
        key: str | None = None,
        text: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line_no = line_no
        self.chunk_no = chunk_no
        self.key = key
        self.text = text
        super().__init__(str(self))

    def where(self) -> str:
        """``path, line N, chunk M, key 'K'`` (the parts that are known)."""
        parts = [] if self.path is None else [str(self.path)]
        if self.line_no is not None:
            parts.append(f"line {self.line_no}")
        if self.chunk_no is not None:
            parts.append(f"chunk {self.chunk_no}")
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        out = f"{where}: {self.message}" if where else self.message
        if self.text is not None:
            shown = self.text if len(self.text) <= 120 else self.text[:117] + "..."
            out += f": {shown!r}"
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), dict(self.__dict__)))


def _restore(cls: type[StreamfilterError], state: dict[str, Any]) -> StreamfilterError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


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
        super().__init__(message, path=path, line_no=line_no, chunk_no=chunk_no, text=text)
