"""Figures of merit of merged reflection lists and of matched observations.

* :func:`list_statistics`: check_hkl's per-shell completeness, multiplicity, <I>, <I/sigma>
  (``src/check_hkl.c``, CrystFEL 0.12), with CC1/2 and CC* between half-sets;
* :func:`compare_lists`: compare_hkl's CC and R1(I) between two lists, with its Wilson
  scaling (``src/compare_hkl.c`` and ``libcrystfel/src/fom.c``);
* :func:`pair_statistics`: CC and median ratio of I, sigma and I/sigma over matched
  observation pairs (``streamfilter compare``'s observation level).

Units: 1/d in nm^-1, intensities in ADU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from streamfilter.analysis.hkl import ReflectionList
from streamfilter.analysis.shells import Shells
from streamfilter.analysis.symmetry import PointGroup, unpack_hkl
from streamfilter.crystal import Cell, centring_absent
from streamfilter.errors import StreamfilterError


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation coefficient; NaN with fewer than 2 pairs or no variance."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.size < 2:
        return math.nan
    dx = x - x.mean()
    dy = y - y.mean()
    den = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return float(np.dot(dx, dy) / den) if den > 0 else math.nan


def cc_star(cc_half: float) -> float:
    """CC* = sqrt(2 CC1/2 / (1 + CC1/2)) (Karplus & Diederichs 2012); NaN if CC1/2 <= 0."""
    if not (cc_half > 0):
        return math.nan
    return math.sqrt(2.0 * cc_half / (1.0 + cc_half))


def count_possible(cell: Cell, pg: PointGroup, shells: Shells) -> np.ndarray:
    """Unique reflections possible per shell (check_hkl's "Possible").

    Every (h, k, l) up to the highest shell edge is reduced to ``pg``'s asymmetric unit;
    centring absences of ``cell.centering`` are left out.
    """
    hmax, kmax, lmax = cell.max_index(float(shells.edges[-1]))
    kk, ll = np.meshgrid(np.arange(-kmax, kmax + 1), np.arange(-lmax, lmax + 1), indexing="ij")
    kk = kk.ravel()
    ll = ll.ravel()
    seen: list[np.ndarray] = []
    for h in range(-hmax, hmax + 1):
        hh = np.full(kk.shape, h)
        ok = ~centring_absent(hh, kk, ll, cell.centering)
        keys = np.unique(pg.asu_keys(hh[ok], kk[ok], ll[ok]))
        seen.append(keys)
    keys = np.unique(np.concatenate(seen)) if seen else np.zeros(0, np.int64)
    r = cell.one_over_d(*unpack_hkl(keys))
    j = np.searchsorted(shells.edges, r, side="left") - 1  # strict lower edge, as check_hkl
    j = j[(j >= 0) & (j < shells.n)]
    return np.bincount(j, minlength=shells.n)


@dataclass
class ListStatistics:
    """check_hkl's per-shell figures of one merged list (arrays indexed by shell).

    Attributes
    ----------
    n_unique, possible, n_measurements : int arrays
    completeness : float array, percent
    multiplicity : float array (mean nmeas)
    mean_I : float array, ADU
    mean_snr : float array (mean of I/sigma over reflections where it is finite)
    cc_half, cc_star, n_half_pairs : per shell CC1/2, CC* and the pairs they use
    overall : dict with the same keys for the whole range
    """

    n_unique: np.ndarray
    possible: np.ndarray
    completeness: np.ndarray
    n_measurements: np.ndarray
    multiplicity: np.ndarray
    mean_I: np.ndarray  # noqa: N815
    mean_snr: np.ndarray
    cc_half: np.ndarray | None = None
    cc_star: np.ndarray | None = None
    n_half_pairs: np.ndarray | None = None
    overall: dict = field(default_factory=dict)

    def shell_rows(self) -> list[dict]:
        rows = []
        for i in range(self.n_unique.size):
            row = {
                "n_unique": int(self.n_unique[i]),
                "possible": int(self.possible[i]),
                "completeness_percent": float(self.completeness[i]),
                "n_measurements": int(self.n_measurements[i]),
                "multiplicity": float(self.multiplicity[i]),
                "mean_I": float(self.mean_I[i]),
                "mean_I_over_sigma": float(self.mean_snr[i]),
            }
            if self.cc_half is not None:
                row.update(
                    cc_half=float(self.cc_half[i]),
                    cc_star=float(self.cc_star[i]),
                    n_half_pairs=int(self.n_half_pairs[i]),
                )
            rows.append(row)
        return rows


def _shell_mean(j: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    cnt = np.bincount(j, minlength=n)
    tot = np.bincount(j, values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tot / cnt


def list_statistics(
    refl: ReflectionList,
    cell: Cell,
    pg: PointGroup,
    shells: Shells,
    halves: tuple[ReflectionList, ReflectionList] | None = None,
    possible: np.ndarray | None = None,
) -> ListStatistics:
    """Per-shell completeness, multiplicity, <I>, <I/sigma> and (with halves) CC1/2, CC*.

    Reflections outside the shells are ignored.  Completeness, multiplicity ("Red"), <I>
    ("Mean I") and <I/sigma> ("SNR") are defined as in check_hkl.  CC1/2 is the Pearson CC
    between the two half-set lists over the reflections present in both (no scaling).
    """
    n = shells.n
    r = cell.one_over_d(refl.h, refl.k, refl.l)
    j = shells.assign(r)
    ok = j >= 0
    j = j[ok]
    n_unique = np.bincount(j, minlength=n)
    nmeas = refl.nmeas[ok].astype(np.float64)
    n_meas = np.bincount(j, nmeas, minlength=n).astype(np.int64)
    if possible is None:
        possible = count_possible(cell, pg, shells)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = refl.I[ok] / refl.sigma[ok]
        finite = np.isfinite(snr)
        stats = ListStatistics(
            n_unique=n_unique,
            possible=possible,
            completeness=100.0 * n_unique / possible,
            n_measurements=n_meas,
            multiplicity=n_meas / n_unique,
            mean_I=_shell_mean(j, refl.I[ok], n),
            mean_snr=_shell_mean(j[finite], snr[finite], n),
        )
        stats.overall = {
            "n_unique": int(n_unique.sum()),
            "possible": int(possible.sum()),
            "completeness_percent": float(100.0 * n_unique.sum() / possible.sum()),
            "n_measurements": int(n_meas.sum()),
            "multiplicity": float(n_meas.sum() / n_unique.sum()),
            "mean_I": float(np.mean(refl.I[ok])) if ok.any() else math.nan,
            "mean_I_over_sigma": float(np.mean(snr[finite])) if finite.any() else math.nan,
        }
    if halves is not None:
        k1, k2 = halves[0].keys(), halves[1].keys()
        common, i1, i2 = np.intersect1d(k1, k2, assume_unique=True, return_indices=True)
        x = halves[0].I[i1]
        y = halves[1].I[i2]
        jj = shells.assign(cell.one_over_d(halves[0].h[i1], halves[0].k[i1], halves[0].l[i1]))
        inside = jj >= 0
        stats.cc_half = np.array([pearson(x[jj == s], y[jj == s]) for s in range(n)])
        stats.cc_star = np.array([cc_star(c) for c in stats.cc_half])
        stats.n_half_pairs = np.bincount(jj[inside], minlength=n)
        cch = pearson(x[inside], y[inside])
        stats.overall.update(cc_half=cch, cc_star=cc_star(cch), n_half_pairs=int(inside.sum()))
    return stats


@dataclass
class ListComparison:
    """compare_hkl's CC and R1(I) between two reflection lists, per shell and overall.

    Attributes
    ----------
    shells : Shells
    n, cc, r1i : per-shell arrays (pairs, Pearson CC, R1(I) = sum|I1 - I2| / sum I1)
    n_overall, cc_overall, r1i_overall : over all pairs in the shells
    scale_G, scale_B : Wilson scaling applied to list 2 (I2 *= G exp(2 B s^2), s = 1/(2d));
        B in Angstrom^2; (1, 0) when scaling is off
    I1, I2 : the paired intensities (I2 after scaling), one_over_d their 1/d (nm^-1)
    rsplit, rsplit_overall : compare_hkl's Rsplit between the two lists (half-sets), per
        shell and overall: 2 sum|I1 - I2| / sum(I1 + I2) / sqrt(2), after the scaling
    """

    shells: Shells
    n: np.ndarray
    cc: np.ndarray
    r1i: np.ndarray
    n_overall: int
    cc_overall: float
    r1i_overall: float
    scale_G: float  # noqa: N815
    scale_B: float  # noqa: N815
    I1: np.ndarray  # noqa: N815
    I2: np.ndarray  # noqa: N815
    one_over_d: np.ndarray
    rsplit: np.ndarray | None = None
    rsplit_overall: float = math.nan

    def shell_rows(self) -> list[dict]:
        return [
            {
                "n_pairs": int(self.n[i]),
                "cc": float(self.cc[i]),
                "r1i_percent": 100.0 * float(self.r1i[i]),
            }
            for i in range(self.shells.n)
        ]

    def overall_dict(self) -> dict:
        return {
            "n_pairs": self.n_overall,
            "cc": self.cc_overall,
            "r1i_percent": 100.0 * self.r1i_overall,
            "scale_G": self.scale_G,
            "scale_B_A2": self.scale_B,
        }


def compare_lists(
    list1: ReflectionList,
    list2: ReflectionList,
    cell: Cell,
    pg: PointGroup,
    *,
    shells: Shells | None = None,
    nshells: int = 10,
    rmin: float | None = None,
    rmax: float | None = None,
    scale: bool = True,
) -> ListComparison:
    """CC and R1(I) between two reflection lists, as ``compare_hkl --fom=CC|R1I`` computes them.

    Steps (``src/compare_hkl.c`` and ``libcrystfel/src/fom.c``, CrystFEL 0.12): both lists
    are reduced to ``pg``'s asymmetric unit; reflections present in both with 1/d in
    [rmin, rmax] and finite I and sigma in both are paired; unless ``scale`` is False, list 2
    is scaled to list 1 by a straight-line fit of ln(I1/I2) against s^2 = (1/(2d))^2 over
    the pairs where both are positive (I2 *= G exp(2 B s^2)); then CC = Pearson(I1, I2),
    R1(I) = sum|I1 - I2| / sum I1 and (for half-sets) Rsplit, per shell and over all pairs.

    Parameters
    ----------
    list1, list2 : ReflectionList
    cell : Cell
    pg : PointGroup
        Symmetry of both lists.
    shells : Shells, optional
        Shells to use; otherwise ``nshells`` equal-volume shells from ``rmin`` (default: the
        lowest 1/d among the pairs, as compare_hkl) to ``rmax`` (default: the highest).
    rmin, rmax : float, optional
        Resolution range in 1/d, nm^-1 (compare_hkl's --lowres/--highres as 10/d_A).
    scale : bool
        Wilson-scale list 2 to list 1 (compare_hkl's default; its ``-u`` turns it off).
    """
    a = list1.to_asymmetric_unit(pg)
    b = list2.to_asymmetric_unit(pg)
    _, ia, ib = np.intersect1d(a.keys(), b.keys(), assume_unique=True, return_indices=True)
    order = np.argsort(a.keys()[ia], kind="stable")
    ia, ib = ia[order], ib[order]
    r = cell.one_over_d(a.h[ia], a.k[ia], a.l[ia])
    keep = np.isfinite(a.I[ia]) & np.isfinite(b.I[ib])
    keep &= np.isfinite(a.sigma[ia]) & np.isfinite(b.sigma[ib])
    lo = shells.edges[0] if shells is not None else rmin
    hi = shells.edges[-1] if shells is not None else rmax
    if lo is not None:
        keep &= r >= lo
    if hi is not None:
        keep &= r <= hi
    ia, ib, r = ia[keep], ib[keep], r[keep]
    i1 = a.I[ia].astype(np.float64)
    i2 = b.I[ib].astype(np.float64)
    if shells is None:
        if r.size == 0:
            raise StreamfilterError("the two reflection lists have no reflections in common")
        shells = Shells.equal_volume(
            float(r.min()) if lo is None else lo, float(r.max()) if hi is None else hi, nshells
        )
    g, bfac = 1.0, 0.0
    s2 = (r / 20.0) ** 2  # s = 1/(2d) in Angstrom^-1
    if scale:
        pos = (i1 > 0) & (i2 > 0)
        if np.count_nonzero(pos) < 2:
            raise StreamfilterError("not enough positive reflection pairs for Wilson scaling")
        c1, c0 = np.polyfit(s2[pos], np.log(i1[pos] / i2[pos]), 1)
        g, bfac = math.exp(c0), c1 / 2.0
        i2 = i2 * g * np.exp(2.0 * bfac * s2)
    j = shells.assign(r)
    n = np.bincount(j[j >= 0], minlength=shells.n)
    cc = np.array([pearson(i1[j == s], i2[j == s]) for s in range(shells.n)])
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.bincount(j[j >= 0], np.abs(i1 - i2)[j >= 0], minlength=shells.n)
        den = np.bincount(j[j >= 0], i1[j >= 0], minlength=shells.n)
        r1 = num / den
        inside = j >= 0
        r1_all = float(np.abs(i1 - i2)[inside].sum() / i1[inside].sum())
        both = np.bincount(j[inside], (i1 + i2)[inside], minlength=shells.n)
        rsplit = 2.0 * (num / both) / math.sqrt(2.0)
        rsplit_all = 2.0 * float(np.abs(i1 - i2)[inside].sum() / (i1 + i2)[inside].sum())
    return ListComparison(
        shells,
        n,
        cc,
        r1,
        int(inside.sum()),
        pearson(i1[inside], i2[inside]),
        r1_all,
        g,
        bfac,
        i1[inside],
        i2[inside],
        r[inside],
        rsplit,
        rsplit_all / math.sqrt(2.0),
    )


def _ratio_median(a: np.ndarray, b: np.ndarray) -> float:
    ok = (a > 0) & (b > 0)
    return float(np.median(b[ok] / a[ok])) if ok.any() else math.nan


def pair_statistics(ia: np.ndarray, ib: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> dict:
    """CC and median ratio B/A of I, sigma and I/sigma over matched pairs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ra = ia / sa
        rb = ib / sb
    fin = np.isfinite(ra) & np.isfinite(rb)
    return {
        "cc_I": pearson(ia, ib),
        "median_ratio_I": _ratio_median(ia, ib),
        "cc_sigma": pearson(sa, sb),
        "median_ratio_sigma": _ratio_median(sa, sb),
        "cc_I_over_sigma": pearson(ra[fin], rb[fin]),
        "median_ratio_I_over_sigma": _ratio_median(ra[fin], rb[fin]),
    }
