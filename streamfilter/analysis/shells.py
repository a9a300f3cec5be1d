"""Resolution shells: one system for every table streamfilter prints.

A :class:`Shells` is a list of edges in 1/d (nm^-1), low to high resolution.  A value r
belongs to shell j when ``edges[j] < r <= edges[j+1]``; r equal to the lowest edge belongs to
shell 0 (CrystFEL's rule in ``check_hkl``/``compare_hkl``) unless the caller says otherwise
(:meth:`Shells.assign`).  Shells come either as equal
reciprocal-space volumes between two limits (:meth:`Shells.equal_volume`, as check_hkl and
compare_hkl make them) or from fixed edges in d (:meth:`Shells.from_d`, Angstrom, e.g. the
accuracy tables' 6.0, 4.5, 3.5 ... A; infinity and 0 are allowed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamfilter.crystal import d_A
from streamfilter.errors import StreamfilterError


@dataclass(frozen=True)
class Shells:
    """Resolution shells given by their edges in 1/d (nm^-1), low to high resolution.

    A value r belongs to shell j when ``edges[j] < r <= edges[j+1]``; r equal to the lowest
    edge belongs to shell 0 (CrystFEL's rule).
    """

    edges: np.ndarray

    @classmethod
    def equal_volume(cls, rmin: float, rmax: float, n: int) -> Shells:
        """``n`` shells of equal reciprocal-space volume (as check_hkl/compare_hkl)."""
        if not (rmax > rmin >= 0) or n < 1:
            raise StreamfilterError(f"bad resolution range {rmin:g}..{rmax:g} nm^-1 / {n} shells")
        total = rmax**3 - rmin**3
        edges = [rmin]
        for _ in range(n - 1):
            edges.append((total / n + edges[-1] ** 3) ** (1.0 / 3.0))
        edges.append(rmax)
        return cls(np.array(edges))

    @classmethod
    def from_d(cls, d_edges: Sequence[float]) -> Shells:
        """Shells between edges given in d (Angstrom), decreasing (low to high resolution).

        ``inf`` stands for 1/d = 0 and ``0`` for 1/d = infinity: ``from_d((inf, 6, 0))`` is
        every d >= 6 A and every d < 6 A (a reflection exactly at 6 A is in the first).
        """
        d = np.asarray(d_edges, np.float64)
        if d.size < 2 or np.any(np.diff(d) >= 0):
            raise StreamfilterError(f"shell edges in d must decrease: {list(d_edges)}")
        with np.errstate(divide="ignore"):
            return cls(d_A(d))

    @property
    def n(self) -> int:
        return int(self.edges.size - 1)

    @property
    def rmin(self) -> np.ndarray:
        return self.edges[:-1]

    @property
    def rmax(self) -> np.ndarray:
        return self.edges[1:]

    @property
    def centres(self) -> np.ndarray:
        """Shell centres in 1/d (nm^-1), as CrystFEL labels them."""
        return self.rmin + (self.rmax - self.rmin) / 2.0

    @property
    def d_max(self) -> np.ndarray:
        """Low-resolution limit of each shell, d in Angstrom (inf for 1/d = 0)."""
        with np.errstate(divide="ignore"):
            return d_A(self.rmin)

    @property
    def d_min(self) -> np.ndarray:
        """High-resolution limit of each shell, d in Angstrom (0 for 1/d = inf)."""
        return d_A(self.rmax)

    def labels(self) -> list[str]:
        """``"inf-6.00"``-style d ranges (Angstrom, two decimals) of the shells."""
        return [
            f"{'inf' if math.isinf(hi) else f'{hi:.2f}'}-{lo:.2f}"
            for hi, lo in zip(self.d_max.tolist(), self.d_min.tolist(), strict=True)
        ]

    def assign(self, one_over_d: np.ndarray, *, lowest_edge_inside: bool = True) -> np.ndarray:
        """Shell index of each value (1/d, nm^-1); -1 outside the shells (or NaN).

        A value equal to the lowest edge is in shell 0 (CrystFEL's rule, whose lowest edge is
        the lowest 1/d of the data) unless ``lowest_edge_inside`` is False: then every shell
        is ``edges[j] < r <= edges[j+1]`` (d_min <= d < d_max), as the accuracy tables count.
        """
        r = np.asarray(one_over_d, np.float64)
        j = np.searchsorted(self.edges, r, side="left") - 1
        if lowest_edge_inside:
            j[r == self.edges[0]] = 0
        j[(j < 0) | (j >= self.n) | ~np.isfinite(r)] = -1
        return j

    def describe(self) -> list[dict]:
        return [
            {
                "shell": i,
                "one_over_d_min_nm": float(a),
                "one_over_d_max_nm": float(b),
                "d_max_A": d_A(a) if a > 0 else None,
                "d_min_A": d_A(b),
                "d_centre_A": d_A(c),
            }
            for i, (a, b, c) in enumerate(zip(self.rmin, self.rmax, self.centres, strict=True))
        ]


def crystfel_limit(d: float) -> float:
    """1/d in nm^-1 of a ``--highres``/``--lowres`` value d (Angstrom) as check_hkl and
    compare_hkl hold it: d read as a 32-bit float, 1/d computed in m^-1 and kept as a 32-bit
    float.  Shells built on these limits have CrystFEL's edges to the last bit."""
    d32 = float(np.float32(d))
    return float(np.float32(1.0 / (d32 / 1e10))) / 1e9
