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

    ``fields`` are (start, width, decimals) of the numeric fields (decimals None = integer,
    integer fields first, at most 15 digits); the name column starts at ``fixed``.
    :meth:`parse` takes a C-contiguous (N, W) uint8 matrix, one row per line (W >= ``fixed``;
    columns from ``fixed`` on are not looked at), and returns the columns, or None when any
    row deviates from what printf writes (the caller then falls back to the general parser).

    Every check is one elementwise operation on the whole matrix seen as one flat array,
    against per-column masks tiled to the matrix and cached, and the numbers come from two
    matrix products (digits, exact in float64, and minus signs): a table of a few hundred
    rows parses
    in tens of microseconds.  A field is valid when it reads spaces, at most one ``-``, then
    digits (with the point where ``decimals`` puts it).
    """

    def __init__(self, fields: tuple[tuple[int, int, int | None], ...], fixed: int) -> None:
        self.fixed = fixed
        nf = len(fields)
        sep = np.ones(fixed, bool)
        check = np.zeros(fixed, bool)   # must be digit, space or minus
        must = np.zeros(fixed, bool)    # must be a digit
        pair = np.zeros(fixed, bool)    # (j, j + 1) lie in one field, neither is the point
        point = np.zeros(fixed, bool)
        weights = np.zeros((fixed, nf))
        member = np.zeros((fixed, nf), np.float32)
        self.scales: list[float | None] = []
        for f, (start, width, decimals) in enumerate(fields):
            assert width <= 16
            cols = np.arange(start, start + width)
            sep[cols] = False
            check[cols] = True
            member[cols, f] = 1.0
            pair[start:start + width - 1] = True
            if decimals is None:
                digit_cols = cols
                must[start + width - 1] = True
            else:
                p = start + width - decimals - 1
                point[p] = True
                check[p] = False
                pair[p - 1:p + 1] = False
                digit_cols = cols[cols != p]
                must[p - 1:start + width] = True
                must[p] = False
            weights[digit_cols, f] = 10.0 ** np.arange(len(digit_cols) - 1, -1, -1)
            self.scales.append(None if decimals is None else float(10 ** decimals))
        self._columns = {"not_sep": ~sep, "not_check": ~check, "not_must": ~must,
                         "not_point": ~point, "pair": pair}
        self._weights = weights
        self._member = member
        self._n_int = sum(sc is None for sc in self.scales)
        assert all(sc is None for sc in self.scales[:self._n_int]), "integer fields first"
        self._divisors = np.array([sc for sc in self.scales if sc is not None])
        self._tiled: dict[int, dict[str, np.ndarray]] = {}
        self._last: tuple[tuple[int, int], dict[str, np.ndarray]] | None = None
        self._pads: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    _CACHE_ROWS = 16384  # tiled masks are kept up to this many rows (5 x ~1.2 MB)

    def _masks(self, width: int, n: int) -> dict[str, np.ndarray]:
        """Column masks for rows of ``width`` bytes tiled over ``n`` rows (flat, cached
        for tables of up to ``_CACHE_ROWS`` rows)."""
        if self._last is not None and self._last[0] == (width, n):
            return self._last[1]
        have = self._tiled.get(width)
        if have is None or have["not_sep"].size < n * width:
            size = have["not_sep"].size // width if have else 0
            rows = n if n > self._CACHE_ROWS else min(max(n, 2 * size, 512), self._CACHE_ROWS)
            have = {}
            for name, col in self._columns.items():
                full = np.full(width, name.startswith("not"), dtype=bool)  # past `fixed`
                full[:self.fixed] = col
                if name == "pair":
                    full[self.fixed - 1:] = False
                have[name] = np.tile(full, rows)
            if rows <= self._CACHE_ROWS:
                self._tiled[width] = have
        masks = {k: v[:n * width] for k, v in have.items()}
        self._last = ((width, n), masks)
        return masks

    def _padded(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Digit weights and field membership with zero rows for columns past ``fixed``."""
        pads = self._pads.get(width)
        if pads is None:
            pads = tuple(np.concatenate([a, np.zeros((width - self.fixed, a.shape[1]), a.dtype)])
                         for a in (self._weights, self._member))
            self._pads[width] = pads
        return pads

    def parse(self, mat: np.ndarray) -> list[np.ndarray] | None:
        n, width = mat.shape
        flat = mat.reshape(-1)  # C-contiguous: a view
        m = self._masks(width, n)
        d = flat - np.uint8(48)  # digits become 0..9, everything else >= 10 (uint8 wraps)
        is_digit = d < 10
        is_space = flat == 32
        is_minus = flat == 45
        if not ((is_space | m["not_sep"]).all() and (is_digit | m["not_must"]).all()
                and ((flat == 46) | m["not_point"]).all()):
            return None
        ok = is_digit | is_space
        ok |= is_minus
        ok |= m["not_check"]
        if not ok.all():
            return None
        # within a field: spaces (rank 0), then '-' (1), then digits (2): never decreasing
        rank = is_digit.view(np.uint8) * np.uint8(2)
        rank |= is_minus.view(np.uint8)
        if ((rank[1:] < rank[:-1]) & m["pair"][:-1]).any():
            return None
        weights, member = self._padded(width)
        signs = is_minus.view(np.uint8).astype(np.float32).reshape(n, width) @ member
        if (signs > 1).any():
            return None
        values = (d * is_digit).astype(np.float64).reshape(n, width) @ weights
        values *= 1.0 - 2.0 * signs  # -0.00 stays negative zero, as in C
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
    """Numeric columns and names of a whole table in fixed layout, or None.

    When every line has the same length (CrystFEL's own output with panel names of one
    length), the block is viewed as an (N, width) matrix without locating newlines: a stray
    newline inside a row would put a byte below 33 into a checked column and send the table
    to the general parser.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    width = block.find(b"\n") + 1
    if width > layout.fixed + 1 and buf.size % width == 0:
        rows = buf.reshape(-1, width)
        if (rows[:, -1] == 10).all():
            cols = layout.parse(rows)
            if cols is None:
                return None
            names = _names_matrix(rows[:, layout.fixed:-1])
            return None if names is None else (cols, names)
    starts, lengths = _line_bounds(buf)
    if lengths.min() < layout.fixed + 1:
        return None
    cols = layout.parse(buf[starts[:, None] + np.arange(layout.fixed)])
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


def _names_matrix(names: np.ndarray) -> np.ndarray | None:
    """(N, L) uint8 matrix of panel names -> (N,) str array, or None unless every byte is
    printable ASCII other than space (33..126; the general parser handles the rest).

    ASCII bytes widened to uint32 are exactly numpy's UCS-4 ``str`` storage, so the
    conversion is one cast instead of a per-element decode.
    """
    if ((names - np.uint8(33)) >= 94).any():
        return None
    return np.ascontiguousarray(names, dtype=np.uint32).view(f"U{names.shape[1]}").ravel()


def _panel_names(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Panel-name column: the bytes from ``starts`` to the end of each line, as str.

    Returns None if a name holds anything but printable ASCII (CR, spaces, extra columns,
    non-ASCII names): the general parser then.
    """
    if lengths.min() < 1:
        return None
    if np.all(lengths == lengths[0]):
        return _names_matrix(buf[starts[:, None] + np.arange(lengths[0])])
    out = np.empty(starts.size, dtype=f"U{int(lengths.max())}")
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        names = _names_matrix(buf[starts[rows][:, None] + np.arange(length)])
        if names is None:
            return None
        out[rows] = names
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
    ``peak`` is refused: partialator would silently drop that reflection (the rule is
    checked by :mod:`streamfilter.stream.validate`).

    The bytes are those of ``ROW23_FORMAT % row`` for every row (C printf's rounding of the
    exact binary value, ``-0.00`` for small negatives); :func:`_format_rows_fast` makes all
    rows that fit their fields at once, the few others go through printf.
    """
    if table.panel is None:
        raise ValueError("a 2.3 reflection table needs panel names")
    if np.isnan(table.peak).any():
        raise ValueError("NaN in the peak column: partialator would silently drop these rows")
    fast = _format_rows_fast(table)
    if fast is not None:
        return fast
    return _format_rows_printf(table, np.arange(len(table))).encode()


def _format_rows_printf(table: ReflectionTable, rows: np.ndarray) -> str:
    """``ROW23_FORMAT % row`` for the rows ``rows`` (the reference path)."""
    cols = zip(
        *(
            getattr(table, c)[rows].tolist()
            for c in ("h", "k", "l", "I", "sigma", "peak", "background", "fs", "ss", "panel")
        )
    )
    fmt = ROW23_FORMAT
    return "".join([fmt % r for r in cols])


# The numeric fields of ROW23_FORMAT in row order: column, width, decimals (None: %i).
_ROW23_FIELDS = (
    ("h", 4, None),
    ("k", 4, None),
    ("l", 4, None),
    ("I", 10, 2),
    ("sigma", 10, 2),
    ("peak", 10, 2),
    ("background", 10, 2),
    ("fs", 6, 1),
    ("ss", 6, 1),
)
# |x * 10**decimals| < 1e9 (all that fits a %10.2f or %6.1f field) has a rounding error of at
# most 1.2e-7 (half an ulp), far inside this margin around the ties x.xx5.  A float64 is
# exactly such a tie only if 8 x is an integer (x.xx5 = odd / 200 is dyadic only as odd / 8,
# x.x5 only as odd / 4); then x * 10**decimals is exact and np.rint's half-to-even is
# printf's.  Other values within the margin of a tie go through printf.
_TIE_MARGIN = 1e-6


class _RowLayout:
    """ROW23_FORMAT's fixed part (the 73 bytes before the panel name) as lookup tables.

    Every field is written as 9 characters: the integer ``m = round(|x| * 10**decimals)``
    right-aligned, blank-padded, a ``-`` before its first digit for negative x.  These come
    in three groups of three characters (``m`` = high * 1e6 + mid * 1e3 + low), each taken
    from ``triples``: one little-endian uint32 per (shown digits 0-3, sign in front of them,
    0-999), the 4th byte unused.  ``take`` then picks every output column from those bytes
    (the last ``width`` characters of a field, the decimal point inserted) or from the two
    constants (space, point) appended after them.
    """

    def __init__(self) -> None:
        nf = len(_ROW23_FIELDS)
        space, point = nf * 12, nf * 12 + 1
        take: list[int] = []
        slots, scale, least = [], [], []
        for f, (_, width, decimals) in enumerate(_ROW23_FIELDS):
            s = width - (0 if decimals is None else 1)
            slots.append(s)
            scale.append(1.0 if decimals is None else 10.0**decimals)
            least.append(1 if decimals is None else decimals + 1)  # "0.05", not ".05"
            for j in range(9 - s, 9):
                if decimals is not None and j == 9 - decimals:
                    take.append(point)
                take.append(f * 12 + (j // 3) * 4 + j % 3)
            take.append(space)
        self.take = np.array(take)
        self.slots = np.array(slots)
        self.limit = 10.0**self.slots
        self.scale = np.array(scale)
        self.least = np.array(least)
        self.powers = 10.0 ** np.arange(1, 10)  # 10 .. 1e9
        # offsets[g][2 * n_digits + negative]: start of the table part group g uses
        self.offsets = np.zeros((3, 20))
        for nd in range(1, 10):
            for neg in range(2):
                for g, after in enumerate((6, 3, 0)):
                    shown = min(max(nd - after, 0), 3)
                    sign = neg and (8 - nd) // 3 == g  # the sign sits at 9 - nd - 1
                    self.offsets[g, 2 * nd + neg] = (shown * 2 + sign) * 1000
        v = np.arange(1000)
        digits = (np.stack([v // 100, v // 10 % 10, v % 10], axis=1) + 48).astype(np.uint8)
        table = np.full((4, 2, 1000, 4), 32, np.uint8)  # shown, sign, value, 4 characters
        for shown in range(1, 4):
            table[shown, :, :, 3 - shown : 3] = digits[:, 3 - shown :]
        for shown in range(3):  # a sign never shares a group with 3 digits
            table[shown, 1, :, 2 - shown] = 45
        self.triples = table.reshape(-1, 4).view("<u4").ravel()
        self.constants = np.array([32, 46], np.uint8)


_LAYOUT: _RowLayout | None = None


def _row_layout() -> _RowLayout:
    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = _RowLayout()
    return _LAYOUT


def _format_fixed_part(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first 73 bytes of every row (9 fields, each followed by a space) of an (N, 9)
    float64 array of h, k, l, I, sigma, peak, background, fs, ss.

    Returns the (N, 73) uint8 text and a bool array, True for the rows whose text is
    exact: every value is finite, fits its width, and is either an exact tie or not within
    ``_TIE_MARGIN`` of one.  The text of other rows is garbage.
    """
    lay = _row_layout()
    n = len(values)
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.abs(values * lay.scale)
        fits = a < lay.limit  # False for NaN and inf too
        a = np.where(fits, a, 0.0)
        frac = a - np.floor(a)
        eighths = values * 8.0
        fits &= (np.abs(frac - 0.5) > _TIE_MARGIN) | (eighths == np.floor(eighths))
    mag = np.rint(a)  # an integer below 1e9: exact in float64, so are the divisions below
    neg = np.signbit(values)  # printf writes -0.00 for -0.0 and for -0.004
    n_digits = np.maximum(np.searchsorted(lay.powers, mag, side="right") + 1, lay.least)
    fits &= n_digits + neg <= lay.slots
    high = np.floor(mag / 1e6)
    rest = mag - high * 1e6
    mid = np.floor(rest / 1e3)
    key = np.minimum(n_digits, 9) * 2 + neg  # which entries of the triples table to use
    index = np.stack(
        [
            high + lay.offsets[0].take(key),
            mid + lay.offsets[1].take(key),
            rest - mid * 1e3 + lay.offsets[2].take(key),
        ],
        axis=2,
    ).astype(np.intp)
    src = np.concatenate(
        [
            lay.triples.take(index).view(np.uint8).reshape(n, -1),
            np.broadcast_to(lay.constants, (n, 2)),
        ],
        axis=1,
    )
    return src[:, lay.take], fits.all(axis=1)


def _format_rows_fast(table: ReflectionTable) -> bytes | None:
    """All rows of ``table`` as ``ROW23_FORMAT`` prints them, built as one byte matrix; rows
    that do not fit the fixed layout are printed with printf.  None when the Miller indices
    are not integers (the caller then uses printf for everything)."""
    n = len(table)
    if n == 0:
        return b""
    if any(getattr(table, c).dtype.kind not in "iu" for c in ("h", "k", "l")):
        return None
    values = np.empty((n, len(_ROW23_FIELDS)))
    for j, (name, _, _) in enumerate(_ROW23_FIELDS):
        values[:, j] = getattr(table, name)
    fixed, good = _format_fixed_part(values)
    # the panel names, each followed by the newline
    panels = table.panel.tolist()
    codes = {name: i for i, name in enumerate(dict.fromkeys(panels))}  # first appearance
    inverse = np.fromiter(map(codes.__getitem__, panels), np.intp, n)
    encoded = [("%s" % (name,)).encode() + b"\n" for name in codes]
    lengths = np.array([len(e) for e in encoded])
    tails = np.zeros((len(encoded), lengths.max()), np.uint8)
    for i, e in enumerate(encoded):
        tails[i, : len(e)] = np.frombuffer(e, np.uint8)
    full = np.concatenate([fixed, tails[inverse]], axis=1)
    if (lengths == lengths[0]).all():
        blob = full.tobytes()
    else:
        used = np.ones(full.shape, bool)
        used[:, fixed.shape[1] :] = np.arange(tails.shape[1]) < lengths[inverse][:, None]
        blob = full[used].tobytes()
    if good.all():
        return blob
    # splice in the printf text of the rows that do not fit
    ends = np.cumsum(fixed.shape[1] + lengths[inverse])
    parts = []
    pos = 0
    for i in np.flatnonzero(~good).tolist():
        parts.append(blob[pos : int(ends[i - 1]) if i else 0])
        parts.append(_format_rows_printf(table, np.array([i])).encode())
        pos = int(ends[i])
    parts.append(blob[pos:])
    return b"".join(parts)


def format_peaks(table: PeakTable) -> bytes:
    """Rows of a 2.3 peak list (``%7.2f %7.2f %10.2f  %10.2f   %s``)."""
    if table.panel is None:
        raise ValueError("a 2.3 peak list needs panel names")
    rows = zip(table.fs.tolist(), table.ss.tolist(), table.one_over_d.tolist(),
               table.intensity.tolist(), table.panel.tolist())
    return "".join(["%7.2f %7.2f %10.2f  %10.2f   %s\n" % r for r in rows]).encode()
