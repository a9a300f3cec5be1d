"""Following a stream that is still being written (``--follow``), for the one reader.

indexamajig appends chunks to its ``.stream`` as it indexes frames, a block at a time, so a
reader that reaches the end of the file may be looking at half a chunk (or half a line), and
the file may then pause for minutes between frames or runs.  With a :class:`Follow` the
reader (:class:`streamfilter.stream.reader.StreamReader`) does not take the end of the file
for the end of the stream: it sleeps ``poll`` seconds, looks again, and reads on as soon as
the file has grown.  Only when the file has not grown for ``idle`` seconds is its end the end
of the stream; what the reader then does is what it does at the end of any file (an
incomplete last chunk is an incomplete tail: left out and reported).  So following a stream
to its end yields exactly the chunks a plain read of the finished file yields.

While it waits the reader checks, each time it looks, that the file is still the one it
opened and has not shrunk: a stream that is truncated, replaced (a new file under the name)
or removed is an error naming the file, never silently read as a different stream.  Idle
time is measured on this machine's monotonic clock from the last time the file was seen to
grow (or from the start), never from the file's modification time, which another machine's
clock writes on a network file system.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import StreamFormatError
from ..interrupt import check_stop

#: Seconds without growth after which a followed stream is taken to be finished (``--idle``).
#: indexamajig writes a chunk per frame, many a second during a run; a minute covers a slow
#: frame, a pause of the file system or a busy node, not a pause between runs.
DEFAULT_IDLE = 60.0
#: Longest sleep between two looks at the file (shorter for a short ``idle``).
MAX_POLL = 1.0
#: Shortest sleep between two looks: the reader never polls hot.
MIN_POLL = 0.1


@dataclass(frozen=True)
class Follow:
    """How to follow a growing stream.

    Attributes
    ----------
    idle : float
        Seconds (>= 0) the file must stay the same size before its end counts as the end of
        the stream.
    poll : float or None
        Seconds to sleep between two looks at the file; None: ``idle / 4`` within
        [:data:`MIN_POLL`, :data:`MAX_POLL`].
    on_wait : callable or None
        Called (without arguments) each time the reader has read everything the file holds
        and is about to sleep: a live summary, or a progress line, can be printed then.
    """

    idle: float = DEFAULT_IDLE
    poll: float | None = None
    on_wait: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if not self.idle >= 0:
            raise ValueError(f"idle must be >= 0 seconds, not {self.idle}")

    @property
    def interval(self) -> float:
        """Seconds between two looks at the file."""
        if self.poll is not None:
            return max(MIN_POLL, self.poll)
        return min(MAX_POLL, max(MIN_POLL, self.idle / 4))


class FileWatch:
    """Waits for a regular file, open as ``fd`` under ``path``, to grow past an offset.

    The reader calls :meth:`wait_past` when a read returned nothing; it returns True as
    soon as the file holds more bytes, False once the file has been idle for
    ``follow.idle`` seconds, and raises :class:`StreamFormatError` when the file was
    truncated, replaced or removed.
    """

    def __init__(self, fd: int, path: str, follow: Follow) -> None:
        st = os.fstat(fd)
        self.fd, self.path, self.follow = fd, path, follow
        self._identity = (st.st_dev, st.st_ino)
        self._grown = time.monotonic()  # when the file was last seen to grow

    def grew(self) -> None:
        """A read returned bytes: the idle time starts again."""
        self._grown = time.monotonic()

    def wait_past(self, offset: int) -> bool:
        """Sleep until the file holds more than ``offset`` bytes (True) or has been idle
        for ``follow.idle`` seconds (False)."""
        while True:
            size = self._check()
            if size < offset:
                raise StreamFormatError(self.path, None, None,
                                        f"the stream was truncated while it was followed (it "
                                        f"holds {size} bytes, {offset} were read)")
            if size > offset:
                self.grew()
                return True
            if time.monotonic() - self._grown >= self.follow.idle:
                return False
            if self.follow.on_wait is not None:
                self.follow.on_wait()
            check_stop()
            left = self.follow.idle - (time.monotonic() - self._grown)
            time.sleep(max(0.0, min(self.follow.interval, left)))

    def _check(self) -> int:
        """The file's size; an error if it is no longer the file that was opened."""
        st = os.fstat(self.fd)
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            raise StreamFormatError(self.path, None, None,
                                    "the stream was removed or renamed while it was "
                                    "followed") from None
        if (named.st_dev, named.st_ino) != self._identity:
            raise StreamFormatError(self.path, None, None,
                                    "the stream was replaced by another file while it "
                                    "was followed")
        return st.st_size
