"""Builders of stream text: the marker lines and the header, chunk and crystal blocks.

The layout is the one CrystFEL's stream writer produces (``libcrystfel/src/stream.c``:
``stream_write_target_cell``, ``stream_write_chunk`` and the crystal and peak-list writers it
calls).  Callers give the ``key = value`` lines; this module puts the markers and the tables
around them, so no marker line is typed anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import (
    BEGIN_CELL,
    BEGIN_CHUNK,
    BEGIN_CRYSTAL,
    BEGIN_GEOM,
    BEGIN_PEAKS,
    BEGIN_REFL,
    END_CELL,
    END_CHUNK,
    END_CRYSTAL,
    END_GEOM,
    END_PEAKS,
    END_REFL,
)
from .tables import (
    PEAK_HEADER_23,
    REFLECTION_HEADER_23,
    PeakTable,
    ReflectionTable,
    format_peaks,
    format_reflections,
)

FORMAT_LINE_23 = b"CrystFEL stream format 2.3\n"


def text_lines(lines: Iterable[str]) -> bytes:
    """``lines`` as bytes, each ended by a newline."""
    return "".join(line + "\n" for line in lines).encode()


def _block(begin: bytes, body: str | bytes, end: bytes) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    if not data.endswith(b"\n"):
        data += b"\n"
    return begin + b"\n" + data + end + b"\n"


def geometry_block(geometry: str | bytes) -> bytes:
    """The ``----- Begin geometry file -----`` block around ``geometry`` (a final newline
    is added when it has none)."""
    return _block(BEGIN_GEOM, geometry, END_GEOM)


def cell_block(cell: str | bytes) -> bytes:
    """The ``----- Begin unit cell -----`` block around ``cell``."""
    return _block(BEGIN_CELL, cell, END_CELL)


def peak_list_block(peaks: PeakTable) -> bytes:
    """A format-2.3 peak list: its marker, column header, rows and end line."""
    return BEGIN_PEAKS + b"\n" + PEAK_HEADER_23 + format_peaks(peaks) + END_PEAKS + b"\n"


def crystal_block(fields: Iterable[str], reflections: ReflectionTable) -> bytes:
    """A ``--- Begin crystal`` block: the ``fields`` lines, then the format-2.3 reflection
    table, then ``--- End crystal``."""
    return (BEGIN_CRYSTAL + b"\n" + text_lines(fields)
            + BEGIN_REFL + b"\n" + REFLECTION_HEADER_23 + format_reflections(reflections)
            + END_REFL + b"\n" + END_CRYSTAL + b"\n")


def chunk_block(fields: Iterable[str], peaks: PeakTable | None,
                crystals: Iterable[bytes] = ()) -> bytes:
    """A ``----- Begin chunk -----`` block: the ``fields`` lines, the peak list (if any),
    the crystal blocks (from :func:`crystal_block`) and ``----- End chunk -----``."""
    out = BEGIN_CHUNK + b"\n" + text_lines(fields)
    if peaks is not None:
        out += peak_list_block(peaks)
    return out + b"".join(crystals) + END_CHUNK + b"\n"
