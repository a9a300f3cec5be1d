"""Chunks a re-integration run could not re-integrate: their records, the marker line that
flags them in the output, the ``--failed`` file that lists them, and ``--allow-failed``.

A chunk with crystals whose frame cannot be read (or, with ``--keep-going``, whose text
cannot be used) is copied to the output with one extra line after its begin marker::

    streamfilter_passed_through = <reason>

CrystFEL's chunk reader (``stream_read_chunk`` in 0.10-0.12) compares each chunk-header line
against the prefixes it knows (``Image filename: ``, ``Event: ``, ``hdf5/``, ``header/int/``,
``header/float/``, ``indexed_by = ``, ``photon_energy_eV = ``, ...) and skips every other
line, so partialator and process_hkl read such a chunk exactly as the input's.  The line is
kept shorter than CrystFEL's 1023-byte line buffer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from streamfilter.errors import StreamfilterError

#: key of the chunk-header line that marks a chunk passed through unchanged
MARKER_KEY = "streamfilter_passed_through"

#: first line of a ``--failed`` file (also how a stale one from an earlier run is recognised)
FAILED_HEADER = "# streamfilter reintegrate: chunks with crystals that were not re-integrated"

FAILED_COLUMNS = ("chunk", "line", "filename", "event", "reason")

_MAX_MARKER = 900  # bytes of reason in the marker line (CrystFEL reads lines of <= 1023)


@dataclass(frozen=True)
class FailedChunk:
    """One chunk passed through unchanged: 0-based chunk index, 1-based line of its begin
    marker in the input, ``Image filename``, ``Event`` ('' if none) and the reason."""

    chunk: int
    line: int
    filename: str
    event: str
    reason: str

    def row(self) -> str:
        fields = (str(self.chunk), str(self.line), self.filename, self.event, self.reason)
        return "\t".join(_one_line(f) for f in fields)

    def as_list(self) -> list:
        return [self.chunk, self.line, self.filename, self.event, self.reason]


def _one_line(text: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", text)


def marker_line(reason: str) -> bytes:
    """The chunk-header line that marks a chunk passed through unchanged."""
    text = _one_line(reason).strip() or "not re-integrated"
    data = text.encode("utf-8", "replace")
    if len(data) > _MAX_MARKER:
        text = data[:_MAX_MARKER].decode("utf-8", "ignore") + " ..."
    return f"{MARKER_KEY} = {text}\n".encode()


_MARKER_RE = re.compile(rb"(?m)^" + MARKER_KEY.encode() + rb" = [^\n]*\n")


def unmark(raw: bytes) -> bytes:
    """``raw`` (a chunk's bytes) without marker lines in its header (an input written by an
    earlier run; a chunk re-integrated now must not keep one)."""
    if MARKER_KEY.encode() not in raw:
        return raw
    end = len(raw)
    for stop in (b"\nPeaks from peak search", b"\n--- Begin crystal"):
        i = raw.find(stop)
        if i >= 0:
            end = min(end, i + 1)
    return _MARKER_RE.sub(b"", raw[:end]) + raw[end:]


def mark(raw: bytes, reason: str) -> bytes:
    """``raw`` (a chunk's bytes) with the marker line after its begin-marker line (and no
    other one)."""
    raw = unmark(raw)
    at = raw.find(b"\n") + 1
    if at <= 0:
        return raw
    line = marker_line(reason)
    if raw[at - 2:at] == b"\r\n":
        line = line[:-1] + b"\r\n"
    return raw[:at] + line + raw[at:]


def header_value(raw: bytes, prefix: bytes) -> str:
    """The value of the first line of ``raw`` starting with ``prefix`` ('' if none); read
    without parsing the chunk, which may be malformed."""
    m = re.search(rb"(?m)^" + re.escape(prefix) + rb"([^\r\n]*)", raw)
    return m.group(1).decode("utf-8", "replace") if m else ""


# --------------------------------------------------------------------------------------------
# --allow-failed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """How many chunks with crystals may fail before the run's exit status says so: a count
    (``5``) or a fraction of the chunks with crystals (``5%``)."""

    count: int | None = 0
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> Allowance:
        s = text.strip()
        try:
            if s.endswith("%"):
                p = float(s[:-1])
                if not 0 <= p <= 100:
                    raise ValueError
                return cls(count=None, percent=p)
            n = int(s)
            if n < 0:
                raise ValueError
            return cls(count=n)
        except ValueError:
            raise ValueError(
                f"{text!r}: give a count (e.g. 5) or a percentage (e.g. 5%)"
            ) from None

    def admits(self, failed: int, with_crystals: int) -> bool:
        """Whether ``failed`` of ``with_crystals`` chunks with crystals is acceptable."""
        if failed == 0:
            return True
        if self.percent is not None:
            return with_crystals > 0 and 100.0 * failed / with_crystals <= self.percent
        return failed <= (self.count or 0)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


# --------------------------------------------------------------------------------------------
# the --failed file
# --------------------------------------------------------------------------------------------


def default_failed_path(output: str) -> str | None:
    """``OUT.failed`` next to a file output; None for standard output."""
    return None if output == "-" else f"{output}.failed"


def write_failed(path: str, failed: list[FailedChunk], input_path: str) -> None:
    """Write the list of chunks not re-integrated (tab-separated, see docs/formats.md), replacing
    the file atomically."""
    text = [
        FAILED_HEADER,
        f"# input: {input_path}",
        f"# {len(failed)} chunks; columns separated by tabs:",
        "#" + "\t".join(FAILED_COLUMNS),
    ]
    text += [f.row() for f in sorted(failed, key=lambda f: f.chunk)]
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        tmp.write_text("\n".join(text) + "\n", encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StreamfilterError(f"{path}: cannot write the list of failed chunks: {e}") from e


def remove_stale_failed(path: str) -> None:
    """Remove a ``--failed`` file an earlier run left at ``path`` (only one of ours)."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8", errors="replace") as f:
            first = f.readline().rstrip("\n")
    except OSError:
        return
    if first == FAILED_HEADER:
        p.unlink(missing_ok=True)


def read_failed(path: str) -> list[FailedChunk]:
    """The records of a ``--failed`` file."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        chunk, line_no, filename, event, reason = line.split("\t", 4)
        out.append(FailedChunk(int(chunk), int(line_no), filename, event, reason))
    return out
