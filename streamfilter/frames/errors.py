"""Errors of frame access (StreamfilterErrors: exit status 2 on the command line)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import StreamfilterError


class FrameError(StreamfilterError):
    """Base class of frame access errors (a StreamfilterError: exit status 2 in the CLI)."""


class FrameNotFoundError(FrameError):
    """The image file named by a chunk was not found.

    Attributes
    ----------
    filename : str
        ``Image filename`` as written in the stream.
    event : str or None
    searched : list of str
        Every path that was tried, in order.
    """

    def __init__(self, filename: str, event: str | None, searched: Sequence[str]):
        self.filename = filename
        self.event = event
        self.searched = list(searched)
        tried = "\n  ".join(self.searched) or "(nothing)"
        super().__init__(
            f"image file '{filename}' (event {event}) not found; tried:\n  {tried}\n"
            "Give the directory where indexamajig ran with --data-root."
        )


class FrameReadError(FrameError):
    """The image file exists but the frame cannot be read from it.

    Missing dataset, event out of range, array shape or rank that does not match the
    geometry, unreadable or truncated file, missing mask file ...

    Attributes
    ----------
    filename : str
        The file concerned (image or mask file).
    event : str or None
    reason : str
    """

    def __init__(self, filename: str, event: str | None, reason: str):
        self.filename = filename
        self.event = event
        self.reason = reason
        super().__init__(f"{filename} (event {event}): {reason}")
