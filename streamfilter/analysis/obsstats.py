"""Observation-level figures of ``compare`` in constant memory.

Matched observation pairs (1/d, I_A, I_B, sigma_A, sigma_B) and the 1/d of the observations
found in one stream only are written, in matching order, to anonymous temporary files (40
and 8 bytes per row, under ``$TMPDIR``), never held in memory.  The figures are computed from
them block by block once the resolution shells are known (they span the range of every 1/d):

* Pearson CC with two passes per block sequence (means, then centred sums), which equals
  :func:`~streamfilter.analysis.statistics.pearson` on the whole arrays (bit for bit while
  everything fits in one block of :data:`BLOCK` rows);
* medians exactly, by radix selection on the order-preserving integer image of the float64
  values: each pass counts the next 12 bits of the candidates' images, and once a median's
  candidates are few (:data:`COLLECT`) they are read and sorted.  About three passes.

The plots get a bounded sample (every k-th row, at most :data:`PLOT_ROWS` pairs and
:data:`PLOT_ROWS` I/sigma values per stream).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from streamfilter.analysis.shells import Shells

#: Rows read from a spill file at once.
BLOCK = 1 << 16
#: A median's candidates are read and sorted once there are at most this many.
COLLECT = 1 << 16
#: Most rows handed to the plots (per array).
PLOT_ROWS = 50_000

#: One matched pair: 1/d (nm^-1, crystal A), I_A, I_B, sigma_A, sigma_B (ADU).
PAIR_DTYPE = np.dtype([("r", "f8"), ("ia", "f8"), ("ib", "f8"), ("sa", "f8"), ("sb", "f8")])
_BITS = 12
_EMPTY = np.zeros(0, np.uint64)


class Spill:
    """An append-only column of records in an anonymous temporary file."""

    def __init__(self, dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype)
        self.n = 0
        self._f = tempfile.TemporaryFile(prefix="streamfilter-compare-")  # noqa: SIM115

    def append(self, rows: np.ndarray) -> None:
        """Write ``rows`` (of :attr:`dtype`) at the end."""
        rows = np.ascontiguousarray(rows, self.dtype)
        if rows.size:
            self._f.seek(0, 2)
            self._f.write(rows.tobytes())
            self.n += rows.size

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """The records in order, ``size`` at a time."""
        self._f.seek(0)
        left = self.n
        while left > 0:
            block = np.fromfile(self._f, self.dtype, count=min(size, left))
            if block.size == 0:
                break
            left -= block.size
            yield block

    def sample(self, most: int = PLOT_ROWS) -> np.ndarray:
        """Every k-th record (k = ceil(n / most)); everything when n <= most."""
        step = max(1, math.ceil(self.n / most))
        parts, offset = [], 0
        for block in self.blocks():
            parts.append(block[(-offset) % step::step].copy())  # not a view: frees the block
            offset += block.size
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

    def close(self) -> None:
        self._f.close()


def _image(v: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 image of finite float64 values."""
    u = np.ascontiguousarray(v, np.float64).view(np.uint64)
    neg = (u >> np.uint64(63)).astype(bool)
    return np.where(neg, ~u, u | np.uint64(1 << 63))


def _from_image(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, np.uint64)
    pos = (u >> np.uint64(63)).astype(bool)
    return np.where(pos, u & ~np.uint64(1 << 63), ~u).view(np.float64)


class _Target:
    """One order statistic being selected: the ``rank``-th of the candidates, which are
    the values of ``group`` whose image starts with the ``bits`` known bits ``prefix``."""

    def __init__(self, group: int, rank: int) -> None:
        self.key = (group, rank)
        self.group, self.rank = group, rank
        self.prefix, self.bits = 0, 0
        self.left = COLLECT + 1  # candidates left (unknown at first)

    def candidates(self, groups: dict[int, np.ndarray]) -> np.ndarray:
        sel = groups.get(self.group, _EMPTY)
        if self.bits:
            sel = sel[(sel >> np.uint64(64 - self.bits)) == np.uint64(self.prefix)]
        return sel


def exact_order_statistics(
    values: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    ranks: dict[int, list[int]],
) -> dict[tuple[int, int], float]:
    """The value of 0-based rank k within group g, for each (g, k) asked, exactly.

    ``values()`` yields (group, value) array pairs over all the data (again on each call);
    values must be finite float64.  Memory: O(number of ranks x 4096 + :data:`COLLECT`).
    """
    todo = [_Target(g, k) for g, ks in ranks.items() for k in ks]
    done: dict[tuple[int, int], float] = {}
    while todo:
        hist = {t.key: np.zeros(1 << _BITS, np.int64) for t in todo if t.left > COLLECT}
        picked: dict[tuple[int, int], list[np.ndarray]] = {
            t.key: [] for t in todo if t.left <= COLLECT
        }
        for g, v in values():
            groups = dict(_by_group(g, _image(v)))
            for t in todo:
                sel = t.candidates(groups)
                if t.key in picked:
                    picked[t.key].append(sel)
                else:
                    width = min(_BITS, 64 - t.bits)
                    digit = (sel >> np.uint64(64 - t.bits - width)) & np.uint64((1 << width) - 1)
                    hist[t.key] += np.bincount(digit.astype(np.int64), minlength=1 << _BITS)
        for t in todo:
            if t.key in picked:
                cand = np.sort(np.concatenate(picked[t.key]))
                done[t.key] = float(_from_image(cand[t.rank : t.rank + 1])[0])
                continue
            width = min(_BITS, 64 - t.bits)
            cum = np.cumsum(hist[t.key])
            digit = int(np.searchsorted(cum, t.rank, side="right"))
            t.rank -= int(cum[digit - 1]) if digit else 0
            t.prefix = (t.prefix << width) | digit
            t.bits += width
            t.left = int(hist[t.key][digit])
            if t.bits == 64:  # every bit known: ties need not be read
                done[t.key] = float(_from_image(np.array([t.prefix], np.uint64))[0])
        todo = [t for t in todo if t.key not in done]
    return done


def _by_group(g: np.ndarray, *columns: np.ndarray) -> Iterator[tuple[int, ...]]:
    """(group, column slices...) for each group present in ``g`` (values >= 0), the rows of
    each group in their original order (a stable sort: same sums as boolean selection)."""
    order = np.argsort(g, kind="stable")
    gs = g[order]
    cols = [c[order] for c in columns]
    present = np.unique(gs[gs >= 0])
    starts = np.searchsorted(gs, present, side="left")
    stops = np.searchsorted(gs, present, side="right")
    for grp, a, b in zip(present.tolist(), starts.tolist(), stops.tolist(), strict=True):
        yield (grp, *(c[a:b] for c in cols))


def _median_ranks(n: int) -> list[int]:
    return [] if n == 0 else sorted({(n - 1) // 2, n // 2})


def _blocks(pairs: Spill, stat: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(1/d, A, B) of one statistic per block of pairs; I/sigma over pairs where both are
    finite (as :func:`~streamfilter.analysis.statistics.pair_statistics`)."""
    for b in pairs.blocks():
        if stat == "I":
            yield b["r"], b["ia"], b["ib"]
        elif stat == "sigma":
            yield b["r"], b["sa"], b["sb"]
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                ra, rb = b["ia"] / b["sa"], b["ib"] / b["sb"]
            fin = np.isfinite(ra) & np.isfinite(rb)
            yield b["r"][fin], ra[fin], rb[fin]


def _ratio_values(pairs: Spill, shells: Shells, stat: str):
    """(group, B/A) blocks over pairs with both > 0: group = shell, and every value again
    as group ``shells.n`` (overall)."""

    def values():
        for r, a, c in _blocks(pairs, stat):
            ok = (a > 0) & (c > 0)
            v = c[ok] / a[ok]
            g = shells.assign(r[ok])
            yield np.concatenate([g, np.full(v.size, shells.n)]), np.concatenate([v, v])

    return values


def _per_shell(shells: Shells, r: np.ndarray, a: np.ndarray, c: np.ndarray):
    """(shell, A, B) per shell present, then (``shells.n``, every A, every B)."""
    yield from _by_group(shells.assign(r), a, c)
    yield shells.n, a, c


def _pearson(pairs: Spill, shells: Shells, stat: str) -> list[float]:
    """Pearson CC per shell and overall (last), as :func:`statistics.pearson` computes it."""
    m = shells.n + 1
    n, sx, sy = np.zeros(m, np.int64), np.zeros(m), np.zeros(m)
    for block in _blocks(pairs, stat):
        for s, x, y in _per_shell(shells, *block):
            n[s] += x.size
            sx[s] += float(np.add.reduce(x))
            sy[s] += float(np.add.reduce(y))
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sx / n, sy / n
    sxx, syy, sxy = np.zeros(m), np.zeros(m), np.zeros(m)
    for block in _blocks(pairs, stat):
        for s, x, y in _per_shell(shells, *block):
            dx, dy = x - mx[s], y - my[s]
            sxx[s] += float(np.dot(dx, dx))
            syy[s] += float(np.dot(dy, dy))
            sxy[s] += float(np.dot(dx, dy))
    out = []
    for s in range(m):
        den = math.sqrt(sxx[s] * syy[s]) if n[s] >= 2 else 0.0
        out.append(float(sxy[s] / den) if den > 0 else math.nan)
    return out


def pair_figures(pairs: Spill, shells: Shells) -> list[dict]:
    """:func:`~streamfilter.analysis.statistics.pair_statistics` per shell and overall
    (last entry), from the pairs on disk."""
    out: list[dict] = [{} for _ in range(shells.n + 1)]
    for stat in ("I", "sigma", "I_over_sigma"):
        cc = _pearson(pairs, shells, stat)
        values = _ratio_values(pairs, shells, stat)
        counts = np.zeros(shells.n + 1, np.int64)
        for g, _ in values():
            counts += np.bincount(g[g >= 0], minlength=shells.n + 1)
        ranks = {s: _median_ranks(int(c)) for s, c in enumerate(counts) if c}
        got = exact_order_statistics(values, ranks)
        for s in range(shells.n + 1):
            ks = ranks.get(s)
            med = (got[(s, ks[0])] + got[(s, ks[-1])]) / 2 if ks else math.nan
            out[s][f"cc_{stat}"] = cc[s]
            out[s][f"median_ratio_{stat}"] = float(med)
    return out
