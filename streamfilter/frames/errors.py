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
    hint : str
        What to do about it (depends on whether ``filename`` is absolute).
    """

    def __init__(self, filename: str, event: str | None, searched: Sequence[str],
                 hint: str | None = None):
        self.filename = filename
        self.event = event
        self.searched = list(searched)
        self.hint = not_found_hint(filename) if hint is None else hint
        tried = "\n  ".join(self.searched) or "(nothing)"
        super().__init__(
            f"image file '{filename}' (event {event}) not found; tried:\n  {tried}\n"
            + self.hint
        )

    @property
    def brief(self) -> str:
        """One line: what was not found, and the first place tried."""
        first = f"; tried {self.searched[0]}" if self.searched else ""
        more = f" and {len(self.searched) - 1} more" if len(self.searched) > 1 else ""
        return f"image file '{self.filename}' (event {self.event}) not found{first}{more}"


def not_found_hint(filename: str) -> str:
    """What to tell a user whose frame file was not found, by the kind of name."""
    if filename.startswith("/"):
        return (
            "The stream names the file by an absolute path: if the data moved, give "
            "--data-root NEWDIR (tried as NEWDIR/ plus the path's last 1, 2, ... components) "
            "or --data-root OLD=NEW (the path's prefix OLD replaced by NEW)."
        )
    return (
        "The stream names the file relative to the directory where indexamajig ran: give "
        "that directory with --data-root (the stream's own directory is tried first), or "
        "--data-root OLD=NEW to replace the name's prefix OLD by NEW."
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
