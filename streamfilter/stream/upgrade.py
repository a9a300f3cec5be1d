"""Convert format 2.1 / 2.2 streams to 2.3, which current partialator (>= 0.10.2) requires.

2.3 added a panel column to reflection and peak rows.  Older streams give positions in the
data array only, so each row's panel is the one whose [min_fs, max_fs] x [min_ss, max_ss]
range holds its fs/ss (CrystFEL's own rule for "slabby" layouts; it is ambiguous, and refused,
when two panels share a data range, as in 3-D/4-D module stacks).  2.1 rows have no ``peak``
or ``background`` column: they are written as 0.00 (never NaN, which partialator would drop).
Everything else in the chunk is copied byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StreamfilterError
from ..geometry import GeometryError, parse_geometry
from .model import Chunk, StreamHeader, TableUpdate
from .tables import PEAK_HEADER_23, ReflectionTable, format_peaks
from .text import FORMAT_LINE_23, geometry_block


class Upgrader:
    """Rewrites the header and chunks of one 2.1/2.2 stream as 2.3."""

    def __init__(self, header: StreamHeader, geometry: str | None = None, *,
                 geometry_text: str | None = None) -> None:
        self._header = header
        if geometry_text is not None:
            self.geometry_text = geometry_text
            self._insert_geometry = header.geometry_text is None
        elif geometry is not None:
            self.geometry_text = Path(geometry).read_text()
            self._insert_geometry = header.geometry_text is None
        elif header.geometry_text is not None:
            self.geometry_text = header.geometry_text
            self._insert_geometry = False
        else:
            raise StreamfilterError("--upgrade: the stream has no embedded geometry; give the "
                                    "one it was made with (-g FILE) so panel names can be found")
        try:
            self.detector = parse_geometry(self.geometry_text, geometry or "<stream geometry>")
        except GeometryError as e:
            raise StreamfilterError(f"--upgrade: {e}") from e
        self.names = np.array([p.name for p in self.detector.panels])

    def header(self) -> bytes:
        """The header with line 1 set to format 2.3 (and the geometry block added if the
        stream had none, since readers >= 0.10 require one)."""
        raw = self._header.raw
        first = raw.find(b"\n") + 1
        out = FORMAT_LINE_23 + raw[first:]
        if self._insert_geometry:
            out += geometry_block(self.geometry_text)
        return out

    def _panels(self, chunk: Chunk, fs: np.ndarray, ss: np.ndarray, what: str) -> np.ndarray:
        try:
            idx = self.detector.panel_index_of(fs, ss)
        except GeometryError as e:
            raise chunk.error(f"--upgrade: {e}") from e
        if np.any(idx < 0):
            i = int(np.flatnonzero(idx < 0)[0])
            raise chunk.error(f"--upgrade: {what} at fs={fs[i]}, ss={ss[i]} lies on no panel "
                              "of the geometry")
        return self.names[idx]

    def chunk(self, chunk: Chunk) -> bytes:
        """The chunk's bytes with every table row in 2.3 layout (panel column added)."""
        edits = []
        for i, xtal in enumerate(chunk.crystals):
            t = xtal.reflections
            if t is None:
                continue
            panel = self._panels(chunk, t.fs, t.ss, "a reflection")
            zero = np.zeros(len(t))
            new = ReflectionTable(t.h, t.k, t.l, t.I, t.sigma,
                                  np.where(np.isnan(t.peak), zero, t.peak),
                                  np.where(np.isnan(t.background), zero, t.background),
                                  t.fs, t.ss, panel)
            upd = TableUpdate(new, xtal.num_saturated_reflections or 0,
                              xtal.num_implausible_reflections or 0)
            edits += chunk.table_edits(i, upd, header=True)
        span = chunk.peak_list_span
        peaks = chunk.peaks
        if span is not None and peaks is not None:
            peaks.panel = self._panels(chunk, peaks.fs, peaks.ss, "a peak")
            edits.append((span[0], span[1], PEAK_HEADER_23 + format_peaks(peaks)))
        return chunk.splice(edits)
