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

class FixedLayout:
    """The fixed-width printf layout of a table row, parsed for a whole table at once.

    ``fields`` are (start, width, decimals) of the numeric fields (decimals None = integer);
    the name column starts at ``fixed``.  :meth:`parse` takes an (N, fixed) uint8 matrix (one
    row per line) and returns the columns, or None when any row deviates from what printf
    writes (the caller then falls back to the general parser).  Only elementwise comparisons
    and one matrix product: a table of a few hundred rows parses in tens of microseconds.
    """

    def __init__(self, fields: tuple[tuple[int, int, int | None], ...], fixed: int) -> None:
        self.fixed = fixed
        nf = len(fields)
        separator = np.ones(fixed, bool)
        point = np.zeros(fixed, bool)
        must_digit = np.zeros(fixed, bool)
        in_field_pair = np.zeros(fixed - 1, bool)  # columns j, j+1 in the same field
        weights = np.zeros((fixed, nf))
        member = np.zeros((fixed, nf))
        self.scales: list[float | None] = []
        for f, (start, width, decimals) in enumerate(fields):
            cols = np.arange(start, start + width)
            separator[cols] = False
            member[cols, f] = 1.0
            in_field_pair[start:start + width - 1] = True
            if decimals is None:
                digit_cols = cols
                must_digit[start + width - 1] = True
            else:
                p = start + width - decimals - 1
                digit_cols = cols[cols != p]
                point[p] = True
                must_digit[p - 1:start + width] = True
                must_digit[p] = False
            weights[digit_cols, f] = 10.0 ** np.arange(len(digit_cols) - 1, -1, -1)
            self.scales.append(None if decimals is None else float(10 ** decimals))
        self._separator = np.flatnonzero(separator)
        self._point = np.flatnonzero(point)
        self._point_mask = point
        self._must_digit = np.flatnonzero(must_digit)
        self._pair = in_field_pair
        self._weights = weights
        self._member = member
        self._n_int = sum(sc is None for sc in self.scales)
        assert all(sc is None for sc in self.scales[:self._n_int]), "integer fields first"
        self._divisors = np.array([sc for sc in self.scales if sc is not None])

    def parse(self, mat: np.ndarray) -> list[np.ndarray] | None:
        d = mat - np.uint8(48)  # digits become 0..9, everything else >= 10 (uint8 wraps)
        is_digit = d < 10
        is_space = mat == 32
        is_minus = mat == 45
        if not (is_space[:, self._separator].all() and (mat[:, self._point] == 46).all()
                and is_digit[:, self._must_digit].all()
                and (is_digit | is_space | is_minus | self._point_mask).all()):
            return None
        # Within a field: spaces, then at most one '-', then digits (and the point).
        nonspace = ~is_space
        bad = (nonspace[:, :-1] & is_space[:, 1:]) | (is_minus[:, :-1] & ~is_digit[:, 1:]) \
            | (nonspace[:, :-1] & is_minus[:, 1:])
        if (bad & self._pair).any():
            return None
        values = (d * is_digit).astype(np.float64) @ self._weights
        negative = is_minus.astype(np.float64) @ self._member
        values[negative > 0] *= -1.0
        # integer fields first, then fixed-point ones (CrystFEL's layouts are ordered so)
        n_int = self._n_int
        ints = values[:, :n_int].astype(np.int32).T if n_int else ()
        floats = (values[:, n_int:] / self._divisors).T
        return [*ints, *floats]


# h k l I sigma peak background fs ss: "%4i %4i %4i %10.2f %10.2f %10.2f %10.2f %6.1f %6.1f %s"
ROW23 = FixedLayout(((0, 4, None), (5, 4, None), (10, 4, None), (15, 10, 2), (26, 10, 2),
                     (37, 10, 2), (48, 10, 2), (59, 6, 1), (66, 6, 1)), fixed=73)
# fs ss 1/d intensity: "%7.2f %7.2f %10.2f  %10.2f   %s"
PEAK23 = FixedLayout(((0, 7, 2), (8, 7, 2), (16, 10, 2), (28, 10, 2)), fixed=41)


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths (without the newline) of the lines of ``buf``."""
    nl = np.flatnonzero(buf == 10)
    if nl.size == 0 or nl[-1] != buf.size - 1:
        nl = np.append(nl, buf.size)
    starts = np.empty_like(nl)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    return starts, nl - starts


def _fast_table(block: bytes, layout: FixedLayout) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Numeric columns and names of a whole table in fixed layout, or None."""
    buf = np.frombuffer(block, dtype=np.uint8)
    starts, lengths = _line_bounds(buf)
    if lengths.min() < layout.fixed + 1:
        return None
    if np.all(lengths == lengths[0]):
        width = int(lengths[0]) + 1
        if buf.size == width * starts.size:
            rows = buf.reshape(-1, width)
            mat = rows[:, :layout.fixed]
        else:
            mat = buf[starts[:, None] + np.arange(layout.fixed)]
    else:
        mat = buf[starts[:, None] + np.arange(layout.fixed)]
    cols = layout.parse(mat)
    if cols is None:
        return None
    names = _panel_names(buf, starts + layout.fixed, lengths - layout.fixed)
    if names is None:
        return None
    return cols, names


def _fast_reflections_23(block: bytes) -> ReflectionTable | None:
    parsed = _fast_table(block, ROW23)
    if parsed is None:
        return None
    cols, names = parsed
    return ReflectionTable(*cols, panel=names)


def _panel_names(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Panel-name column: the bytes from ``starts`` to the end of each line, as str.

    Returns None if a name holds whitespace (CR, spaces, extra columns): general parser then.
    """
    out = None
    groups = [lengths[0]] if np.all(lengths == lengths[0]) else np.unique(lengths)
    for length in groups:
        rows = np.flatnonzero(lengths == length) if out is not None or len(groups) > 1 else None
        idx = starts if rows is None else starts[rows]
        names = buf[idx[:, None] + np.arange(length)]
        if np.any((names == 32) | (names == 9) | (names == 13) | (names >= 128)):
            return None  # (non-ASCII names too: the general parser decodes them)
        as_str = np.ascontiguousarray(names).view(f"S{length}").ravel().astype(f"U{length}")
        if rows is None:
            return as_str
        if out is None:
            out = np.empty(starts.size, dtype=f"U{int(lengths.max())}")
        out[rows] = as_str
    return out


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
        except (ValueError, OverflowError) as e:
            why = "is out of range" if isinstance(e, OverflowError) else "is not a number"
            raise RowError(i, f"{what} {why}", b" ".join(r).decode("utf-8",
                                                                   "replace")) from None
    return out


def _int(tok: bytes) -> int:
    value = int(tok)
    if not -(2**31) <= value < 2**31:  # the columns are int32, as CrystFEL's C int
        raise OverflowError(value)
    return value


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
    if version not in ("2.1", "2.2"):
        fast = _fast_table(block, PEAK23)
        if fast is not None:
            (fs, ss, d, inten), names = fast
            return PeakTable(fs, ss, d, inten, names)
    tokens = block.split()
    ncol = 5 if version not in ("2.1", "2.2") else 4
    nlines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    if len(tokens) == ncol * nlines:
        arr = np.array(tokens, dtype=object).reshape(-1, ncol)
        try:
            nums = arr[:, :4].astype(np.float64)
            panel = arr[:, 4].astype(str) if ncol == 5 else None
        except (ValueError, UnicodeDecodeError):
            nums = None  # the general parser names the row (and decodes any bytes)
        if nums is not None:
            return PeakTable(nums[:, 0], nums[:, 1], nums[:, 2], nums[:, 3], panel)
    rows, width = _general_rows(block, (ncol,))
    cols = [np.array(_column(rows, j, float, n), np.float64)
            for j, n in enumerate(("fs", "ss", "1/d", "intensity"))]
    panel = np.array([r[4].decode("utf-8", "replace") for r in rows], dtype=str) \
        if width >= 5 else None
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
