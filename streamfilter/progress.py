"""Progress on standard error, counted in frames (chunks): a bar on a terminal, else a line.

On a terminal a tqdm bar shows frames done, frames/s and the time left.  When standard
error is not a terminal (``| tee log``, a Slurm log) a plain line is printed every
:data:`every` seconds instead (``--progress-every``; 0 turns it off), and one at the end::

    reintegrate: 1200/5000 frames (24%), 35.2 frames/s, 1m48s left

Nothing is printed with ``--quiet``.  The total number of frames is exact when the caller
counts the chunk starts (``reintegrate`` does, with the chunk index of a regular file: one
memchr pass, cached); otherwise it is estimated from the bytes read so far (``cat``,
``info``, ``merge``: reading is their whole cost, a second pass would double it), and
without a file size (standard input, ``.gz``) only frames and frames/s are shown.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

DEFAULT_EVERY = 30.0
every = DEFAULT_EVERY  # seconds between progress lines off a terminal (0: none)


def set_every(seconds: float | None) -> None:
    """Seconds between progress lines when standard error is not a terminal (the command
    line's ``--progress-every``; None restores the default, 0 turns the lines off)."""
    global every
    every = DEFAULT_EVERY if seconds is None else max(0.0, float(seconds))


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Counts frames (one :meth:`update` per chunk) and the bytes they took.

    ``n`` is the bytes counted so far (callers pass increments: ``update(x - bar.n)``),
    ``frames`` the chunks.  The display is a tqdm bar, a line every ``interval`` seconds, or
    nothing (``mode`` ``"bar"``, ``"lines"``, ``"off"``).
    """

    def __init__(self, desc: str, *, size: int | None = None, frames: int | None = None,
                 mode: str = "off", interval: float = DEFAULT_EVERY,
                 file: TextIO | None = None) -> None:
        self.desc, self.size, self.total = desc, size, frames
        self.n = 0
        self.frames = 0
        self.mode = mode
        self.interval = interval
        self._file = file if file is not None else sys.stderr
        self._t0 = time.monotonic()
        self._next = self._t0 + interval
        self._lines = 0
        self._bar: Any = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=frames, desc=desc, unit=" frames", file=self._file,
                             leave=False, dynamic_ncols=True)

    def expected_frames(self) -> int | None:
        """All the frames of the input: counted, or estimated from the bytes read."""
        if self.total is not None:
            return self.total
        if self.size and self.n and self.frames:
            return max(self.frames, round(self.frames * self.size / self.n))
        return None

    def update(self, nbytes: int = 0, frames: int = 1) -> None:
        """One more chunk (``frames``) done, that took ``nbytes`` more input bytes."""
        self.n += nbytes
        self.frames += frames
        if self._bar is not None:
            if self.total is None:
                expected = self.expected_frames()
                if expected is not None and expected != self._bar.total:
                    self._bar.total = expected
            self._bar.update(frames)
        elif self.mode == "lines":
            now = time.monotonic()
            if now >= self._next:
                self._next = now + self.interval
                self._print(now)

    def status(self, now: float | None = None) -> str:
        """``desc: done/total frames (pct), rate frames/s, time left``."""
        elapsed = max((time.monotonic() if now is None else now) - self._t0, 1e-9)
        rate = self.frames / elapsed
        total = self.expected_frames()
        text = f"{self.desc}: {self.frames}"
        if total:
            estimated = "~" if self.total is None else ""
            text += f"/{estimated}{total} frames ({100.0 * self.frames / total:.0f}%)"
        else:
            text += " frames"
        text += f", {rate:.1f} frames/s"
        if total and rate > 0 and total > self.frames:
            text += f", {_duration((total - self.frames) / rate)} left"
        return text

    def _print(self, now: float) -> None:
        print(self.status(now), file=self._file, flush=True)
        self._lines += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self._lines:
            elapsed = time.monotonic() - self._t0
            print(f"{self.desc}: {self.frames} frames in {_duration(elapsed)} "
                  f"({self.frames / max(elapsed, 1e-9):.1f} frames/s)", file=self._file,
                  flush=True)
            self._lines = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def byte_progress(total: int | None, desc: str, quiet: bool = False, *,
                  count: str | None = None) -> Progress:
    """Progress of a pass over a stream: call ``update(bytes_increment)`` once per chunk.

    ``total`` is the input's size in bytes (None if unknown).  With ``count`` (the input's
    path) the chunks of a regular file are counted first for an exact total (only when
    progress is shown); else the total is estimated from the bytes.  With ``quiet`` nothing
    is shown; on a terminal a bar, else a line every :data:`every` seconds (tqdm is imported
    only for the bar).
    """
    if quiet:
        mode = "off"
    elif sys.stderr.isatty():
        mode = "bar"
    else:
        mode = "lines" if every > 0 else "off"
    frames = count_frames(count) if count is not None and mode != "off" else None
    return Progress(desc, size=total, frames=frames, mode=mode, interval=every)


def input_size(path: str) -> int | None:
    """Size in bytes of a regular input file (None for stdin or compressed input)."""
    if path == "-" or str(path).endswith(".gz"):
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def count_frames(path: str) -> int | None:
    """Number of chunks of a regular, uncompressed stream file, from its chunk index (one
    memchr pass over the file, cached), less an incomplete last chunk; None for standard
    input or ``.gz``."""
    if input_size(path) is None:
        return None
    from .errors import StreamfilterError
    from .stream.index import build_index

    try:
        n = len(build_index(path))
        with open(path, "rb") as f:  # a chunk still being written is not one to process
            f.seek(max(0, os.fstat(f.fileno()).st_size - 64))
            last = f.read().rstrip(b"\r\n")
    except (OSError, StreamfilterError):
        return None
    return n - 1 if n and not last.endswith(b"----- End chunk -----") else n
