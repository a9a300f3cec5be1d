"""Reflection and peak tables: numpy columns, a fast fixed-width parser and CrystFEL's formatting.

Coordinates in both tables are **data-array ("file") coordinates** exactly as printed in the
stream: the pixel with index i spans [i, i+1), its centre is at i + 0.5; fs is the fast-scan
(column) axis, ss the slow-scan (row) axis.  Intensities are in detector ADU.

CrystFEL writes rows with fixed printf widths (``%4i %4i %4i %10.2f %10.2f %10.2f %10.2f %6.1f
%6.1f %s``), so a whole table is parsed at once as a 2-D byte matrix when every row has that
layout; any table that does not (overflowing widths, ``nan``, 2.1/2.2 rows, tabs) falls back to
a general whitespace parser with the same results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REFLECTION_HEADER_23 = (
    b"   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel\n"
)
PEAK_HEADER_23 = b"  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel\n"


class RowError(ValueError):
    """A table row that cannot be parsed; ``row`` is its 0-based index in the table."""

    def __init__(self, row: int, message: str, text: str) -> None:
        self.row = row
        self.text = text
        super().__init__(message)


@dataclass
class ReflectionTable:
    """One crystal's reflections (one row per measured h, k, l).

    Attributes
    ----------
    h, k, l : int32 arrays
        Miller indices as indexed (not reduced to the asymmetric unit).
    I, sigma : float64 arrays
        Integrated intensity and its standard error, ADU.
    peak : float64 array
        Highest raw pixel value in the integration box (peak and background pixels), ADU.
    background : float64 array
        Mean background per pixel, ADU.
    fs, ss : float64 arrays
        Position in data-array coordinates (pixel corner convention), as printed.
    panel : array of str, or None
        Panel names (format 2.3); None for 2.1/2.2 tables, which have no panel column.
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - the Miller index has this name
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    peak: np.ndarray
    background: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    panel: np.ndarray | None

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @classmethod
    def empty(cls) -> ReflectionTable:
        i = np.zeros(0, np.int32)
        f = np.zeros(0, np.float64)
        return cls(i, i.copy(), i.copy(), f, f.copy(), f.copy(), f.copy(), f.copy(), f.copy(),
                   np.zeros(0, dtype=object))

    def take(self, index: np.ndarray) -> ReflectionTable:
        """Rows selected by a boolean mask or integer index array."""
        return ReflectionTable(
            self.h[index], self.k[index], self.l[index], self.I[index], self.sigma[index],
            self.peak[index], self.background[index], self.fs[index], self.ss[index],
            None if self.panel is None else self.panel[index],
        )


@dataclass
class PeakTable:
    """The peak-search list of a chunk.

    fs, ss are data-array coordinates (centroids, +0.5 already applied by the finders);
    ``one_over_d`` is 1/d in nm^-1; ``intensity`` in ADU; ``panel`` is None before format 2.3.
    """

    fs: np.ndarray
    ss: np.ndarray
    one_over_d: np.ndarray
    intensity: np.ndarray
    panel: np.ndarray | None

    def __len__(self) -> int:
        return int(self.fs.shape[0])


# --------------------------------------------------------------------------------------------
# Fast fixed-width parsing
# --------------------------------------------------------------------------------------------

# (start, width, decimals) of the numeric fields of a 2.3 row; decimals None = integer.
_ROW23_FIELDS = (
    (0, 4, None), (5, 4, None), (10, 4, None),
    (15, 10, 2), (26, 10, 2), (37, 10, 2), (48, 10, 2),
    (59, 6, 1), (66, 6, 1),
)
_ROW23_SEPARATORS = np.array([4, 9, 14, 25, 36, 47, 58, 65, 72])
_ROW23_FIXED = 73  # the panel name starts here


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths (without the newline) of the lines of ``buf``."""
    nl = np.flatnonzero(buf == 10)
    if nl.size == 0 or nl[-1] != buf.size - 1:
        nl = np.append(nl, buf.size)
    starts = np.empty_like(nl)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    return starts, nl - starts


def _parse_fixed_field(chars: np.ndarray, decimals: int | None) -> np.ndarray | None:
    """Parse right-aligned printf fields given as an (N, width) uint8 matrix.

    Returns None when any row does not look exactly like printf output of that field
    (the caller then falls back to the general parser).
    """
    width = chars.shape[1]
    is_digit = (chars >= 48) & (chars <= 57)
    is_space = chars == 32
    is_minus = chars == 45
    if decimals is not None:
        point = width - decimals - 1
        if not np.all(chars[:, point] == 46):
            return None
        digit_cols = np.r_[0:point, point + 1:width]
        if not np.all(is_digit[:, point + 1:]) or not np.all(is_digit[:, point - 1]):
            return None
    else:
        digit_cols = np.arange(width)
        if not np.all(is_digit[:, -1]):
            return None
    # Left of the digits: spaces, then at most one '-' immediately before the first digit.
    ok = is_digit | is_space | is_minus
    if decimals is not None:
        ok[:, width - decimals - 1] = True
    if not ok.all():
        return None
    nonspace = ~is_space
    if np.any(nonspace[:, :-1] & ~nonspace[:, 1:]):  # a space after a non-space
        return None
    if np.any(is_minus[:, 1:] & ~is_space[:, :-1] & ~is_digit[:, :-1]) or np.any(
        is_minus[:, 1:] & is_digit[:, :-1]
    ):
        return None
    digits = np.where(is_digit, chars - 48, 0).astype(np.int64)[:, digit_cols]
    weights = 10 ** np.arange(digits.shape[1] - 1, -1, -1, dtype=np.int64)
    value = digits @ weights
    negative = is_minus.any(axis=1)
    value = np.where(negative, -value, value)
    if decimals is None:
        return value.astype(np.int32)
    return value / float(10**decimals)


def _fast_reflections_23(block: bytes) -> ReflectionTable | None:
    buf = np.frombuffer(block, dtype=np.uint8)
    starts, lengths = _line_bounds(buf)
    if lengths.min() < _ROW23_FIXED + 1:
        return None
    mat = buf[starts[:, None] + np.arange(_ROW23_FIXED)]
    if not np.all(mat[:, _ROW23_SEPARATORS] == 32):
        return None
    cols = []
    for start, width, decimals in _ROW23_FIELDS:
        v = _parse_fixed_field(mat[:, start:start + width], decimals)
        if v is None:
            return None
        cols.append(v)
    panel = _panel_names(buf, starts + _ROW23_FIXED, lengths - _ROW23_FIXED)
    if panel is None:
        return None
    return ReflectionTable(*cols, panel=panel)


def _panel_names(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Panel-name column: the bytes from ``starts`` to the end of each line, as str.

    Returns None if a name holds whitespace (CR, spaces, extra columns): general parser then.
    """
    out = np.empty(starts.size, dtype=object)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        names = buf[starts[rows, None] + np.arange(length)]
        if np.any((names == 32) | (names == 9) | (names == 13)):
            return None
        as_bytes = np.ascontiguousarray(names).view(f"S{length}").ravel()
        out[rows] = as_bytes.astype(f"U{length}")
    return out.astype(str) if out.size else np.zeros(0, dtype="U1")


# --------------------------------------------------------------------------------------------
# General parsing (any whitespace, 2.1 / 2.2 / 2.3 layouts, nan, overflow)
# --------------------------------------------------------------------------------------------

def _general_rows(block: bytes, ncols: tuple[int, ...]) -> tuple[list[list[bytes]], int]:
    rows = []
    width = None
    for i, line in enumerate(block.split(b"\n")):
        if not line and i == block.count(b"\n"):
            continue  # after the final newline
        fields = line.split()
        if width is None:
            width = next((n for n in ncols if len(fields) >= n), None)
            if width is None:
                raise RowError(i, f"expected {ncols[-1]} fields, found {len(fields)}",
                               line.decode("utf-8", "replace"))
        if len(fields) < width:
            raise RowError(i, f"expected {width} fields, found {len(fields)}",
                           line.decode("utf-8", "replace"))
        rows.append(fields)
    return rows, width or ncols[0]


def _column(rows: list[list[bytes]], j: int, convert: Callable, what: str) -> np.ndarray:
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(convert(r[j]))
        except ValueError:
            raise RowError(i, f"{what} is not a number", b" ".join(r).decode("utf-8",
                                                                             "replace")) from None
    return out


def _int(tok: bytes) -> int:
    return int(tok)


def parse_reflections(block: bytes, version: str) -> ReflectionTable:
    """Parse the rows of a reflection table (the bytes between its header line and
    ``End of reflections``).

    ``version`` is the stream format ("2.1", "2.2" or "2.3"): 2.3 rows carry a panel name,
    2.2 rows do not, and 2.1 rows are ``h k l I phase sigma counts fs ss`` (peak and
    background are then NaN).  Raises :class:`RowError` naming the row.
    """
    if not block:
        return ReflectionTable.empty()
    if version == "2.3" or version not in ("2.1", "2.2"):
        fast = _fast_reflections_23(block)
        if fast is not None:
            return fast
    ncols = {"2.1": (9,), "2.2": (9,)}.get(version, (10,))
    rows, width = _general_rows(block, ncols)
    h = np.array(_column(rows, 0, _int, "h"), np.int32)
    k = np.array(_column(rows, 1, _int, "k"), np.int32)
    ll = np.array(_column(rows, 2, _int, "l"), np.int32)
    if version == "2.1":
        intensity = np.array(_column(rows, 3, float, "I"), np.float64)
        sigma = np.array(_column(rows, 5, float, "sigma(I)"), np.float64)
        nan = np.full(len(rows), np.nan)
        fs = np.array(_column(rows, 7, float, "fs"), np.float64)
        ss = np.array(_column(rows, 8, float, "ss"), np.float64)
        return ReflectionTable(h, k, ll, intensity, sigma, nan, nan.copy(), fs, ss, None)
    vals = [np.array(_column(rows, j, float, name), np.float64)
            for j, name in zip(range(3, 9), ("I", "sigma(I)", "peak", "background", "fs", "ss"))]
    panel = None
    if width >= 10:
        panel = np.array([r[9].decode("utf-8", "replace") for r in rows], dtype=str)
    return ReflectionTable(h, k, ll, *vals, panel=panel)


def parse_peaks(block: bytes, version: str) -> PeakTable:
    """Parse the rows of a peak list (between its header line and ``End of peak list``)."""
    if not block:
        z = np.zeros(0)
        return PeakTable(z, z.copy(), z.copy(), z.copy(), np.zeros(0, dtype=str))
    tokens = block.split()
    ncol = 5 if version not in ("2.1", "2.2") else 4
    nlines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    if len(tokens) == ncol * nlines:
        arr = np.array(tokens, dtype=object).reshape(-1, ncol)
        try:
            nums = arr[:, :4].astype(np.float64)
        except ValueError:
            nums = None
        if nums is not None:
            panel = arr[:, 4].astype(str) if ncol == 5 else None
            return PeakTable(nums[:, 0], nums[:, 1], nums[:, 2], nums[:, 3], panel)
    rows, width = _general_rows(block, (ncol,))
    cols = [np.array(_column(rows, j, float, n), np.float64)
            for j, n in enumerate(("fs", "ss", "1/d", "intensity"))]
    panel = np.array([r[4].decode() for r in rows], dtype=str) if width >= 5 else None
    return PeakTable(*cols, panel=panel)


# --------------------------------------------------------------------------------------------
# Formatting, exactly as CrystFEL's printf
# --------------------------------------------------------------------------------------------

ROW23_FORMAT = "%4i %4i %4i %10.2f %10.2f %10.2f %10.2f %6.1f %6.1f %s\n"


def format_reflections(table: ReflectionTable) -> bytes:
    """Rows of a 2.3 reflection table, formatted as CrystFEL's ``write_stream_reflections``.

    Miller indices are never zero-padded; a value wider than its field simply widens the row
    (the fields stay whitespace-separated, which is all CrystFEL's reader needs).  A NaN in
    ``peak`` is refused: partialator would silently drop that reflection (spec §5.4).
    """
    if table.panel is None:
        raise ValueError("a 2.3 reflection table needs panel names")
    if np.isnan(table.peak).any():
        raise ValueError("NaN in the peak column: partialator would silently drop these rows")
    rows = zip(table.h.tolist(), table.k.tolist(), table.l.tolist(), table.I.tolist(),
               table.sigma.tolist(), table.peak.tolist(), table.background.tolist(),
               table.fs.tolist(), table.ss.tolist(), table.panel.tolist())
    fmt = ROW23_FORMAT
    return "".join([fmt % r for r in rows]).encode()


def format_peaks(table: PeakTable) -> bytes:
    """Rows of a 2.3 peak list (``%7.2f %7.2f %10.2f  %10.2f   %s``)."""
    if table.panel is None:
        raise ValueError("a 2.3 peak list needs panel names")
    rows = zip(table.fs.tolist(), table.ss.tolist(), table.one_over_d.tolist(),
               table.intensity.tolist(), table.panel.tolist())
    return "".join(["%7.2f %7.2f %10.2f  %10.2f   %s\n" % r for r in rows]).encode()
