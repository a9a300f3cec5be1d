"""Compare two streams: observation by observation, and merged, per resolution shell.

``streamfilter compare A B`` answers "what changed between these two integrations?".

Observation level (when A and B share frames, i.e. chunks with the same ``Image filename``
and ``Event``):

* crystals of a frame are matched by orientation.  Two indexing runs often pick different
  but equivalent settings of the same lattice (axes swapped or inverted), so for each pair of
  crystals the integer matrix R = A_a . A_b^-1 (A = the 3 x 3 matrix with rows a*, b*, c*) is
  computed, rounded and checked (every element within :data:`REINDEX_TOLERANCE` of an integer,
  determinant +-1); observations then match when h_b = h_a . R (row vectors).  The number of
  crystals with R != identity is reported;
* counts matched / only in A / only in B, and over matched pairs the Pearson CC and the
  median ratio B/A of I, of sigma(I) and of I/sigma(I) (ratios over pairs where both values
  are > 0), overall and per shell of 1/d (from crystal A's reciprocal vectors).

Merged level (always): both streams are merged like ``streamfilter merge`` (process_hkl's
plain mean, see :mod:`streamfilter.merge`) in the point group ``-y`` (default ``-1``), with
random half-sets of crystals (fixed seed), I and sigma rounded to the 0.01 a ``.hkl`` file
keeps (so the figures equal check_hkl/compare_hkl run on ``streamfilter merge`` output), and
per shell of equal reciprocal volume (as
check_hkl/compare_hkl make them) the report gives, for each stream, completeness,
multiplicity, <I/sigma(I)>, CC1/2 and CC*; between A and B, CC and R1(I); and with
``--reference FILE.hkl`` the CC and R1(I) of each against the reference.  CC and R1(I)
between two lists follow compare_hkl exactly (:func:`compare_lists`), including its Wilson
scaling of the second list to the first, so ``compare_lists(x, truth)`` reproduces
``compare_hkl --fom=CC x truth.hkl``.

Completeness needs a cell: ``--cell FILE`` if given, else the unit-cell block of stream A's (or
B's) header, else the median of the crystals' cells.  "Possible" reflections are counted like
check_hkl: unique reflections of the point group's asymmetric unit in the shell, leaving out
only lattice-centring absences (screw-axis absences count as possible).

Both streams' observations are held in memory (about 60 bytes per reflection row) to match
frames that appear in any order; merging itself needs memory only per unique reflection.

Units: 1/d in nm^-1 (CrystFEL's shells), d in Angstrom, intensities in ADU.

Two CrystFEL reflection lists may be given instead of two streams: then only the merged-level
tables are computed (the lists' own ``Symmetry:`` is used when ``-y`` is not given).

The keys of the JSON report (``--json``) are listed in :data:`JSON_KEYS`, appended below.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from streamfilter.errors import StreamfilterError
from streamfilter.merge import (
    HKL_MAGIC,
    CrystalObservations,
    Merger,
    ReflectionList,
    iter_crystals,
    read_hkl,
)
from streamfilter.symmetry import PointGroup, pack_hkl, point_group

#: Largest deviation of a reindexing matrix element from an integer that is still accepted.
REINDEX_TOLERANCE = 0.1


class CellFormatError(StreamfilterError):
    """A unit-cell file (CrystFEL ``.cell`` or PDB ``CRYST1``) that cannot be used.

    Parameters
    ----------
    source : str
        File name, or a description such as ``"unit-cell block of run.stream"``.
    line_no : int or None
        1-based line, when the problem is on one line.
    message : str
        What is wrong.
    """

    def __init__(self, source: str, line_no: int | None, message: str) -> None:
        super().__init__(message, path=source, line_no=line_no)

    @property
    def source(self) -> str:
        return str(self.path)


# --------------------------------------------------------------------------------------------
# Unit cell and resolution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A unit cell for resolution and completeness.

    Attributes
    ----------
    a, b, c : float
        Lengths in Angstrom.
    alpha, beta, gamma : float
        Angles in degrees.
    centering : str
        Lattice centring letter (P, A, B, C, I, F, R, H); decides the centring absences.
    source : str
        Where the cell came from (for the report).
    """

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    centering: str = "P"
    source: str = ""

    @property
    def parameters(self) -> tuple[float, float, float, float, float, float]:
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def _frac(self) -> np.ndarray:
        return np.array(gemmi.UnitCell(*self.parameters).frac.mat)

    def one_over_d(self, h, k, l) -> np.ndarray:  # noqa: E741
        """1/d in nm^-1 of Miller indices (arrays of any shape)."""
        hkl = np.stack([np.asarray(h), np.asarray(k), np.asarray(l)], -1).astype(np.float64)
        q = hkl @ self._frac()  # Angstrom^-1, Cartesian
        return 10.0 * np.sqrt(np.sum(q * q, axis=-1))

    def max_index(self, one_over_d_max: float) -> tuple[int, int, int]:
        """Largest |h|, |k|, |l| that can reach 1/d (nm^-1), as check_hkl bounds its search."""
        lengths = (self.a, self.b, self.c)
        return tuple(int(one_over_d_max * x / 10.0) for x in lengths)  # type: ignore[return-value]


def parse_cell(text: str, source: str = "<cell>") -> Cell:
    """Parse a CrystFEL unit-cell file (``a = 79.1 A`` ... ``centering = P``) or a PDB CRYST1.

    Lengths may be in ``A`` or ``nm``; angles in ``deg`` (or ``rad``).

    Raises
    ------
    CellFormatError
        If a length or an angle is missing or unreadable.
    """
    for line in text.splitlines():
        if line.startswith("CRYST1"):
            try:
                vals = [
                    float(line[i:j])
                    for i, j in ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))
                ]
            except ValueError:
                raise CellFormatError(source, None, "unreadable CRYST1 line") from None
            sg = line[55:66].strip()
            cen = sg[0] if sg[:1] in ("P", "A", "B", "C", "I", "F", "R", "H") else "P"
            return Cell(*vals, centering=cen, source=source)
    values: dict[str, float] = {}
    centering = "P"
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";")[0].strip()
        m = re.match(r"^(\w+)\s*=\s*(\S+)\s*(\S*)", line)
        if not m:
            continue
        key, value, unit = m.group(1), m.group(2), m.group(3).lower()
        if key == "centering":
            centering = value.upper()
            continue
        if key not in ("a", "b", "c", "al", "be", "ga"):
            continue
        try:
            v = float(value)
        except ValueError:
            raise CellFormatError(source, no, f"cannot read {key} = {value!r}") from None
        if key in ("a", "b", "c"):
            if unit == "nm":
                v *= 10.0
            elif unit not in ("a", "", "angstrom"):
                raise CellFormatError(source, no, f"unknown length unit {unit!r}")
        elif unit == "rad":
            v = math.degrees(v)
        values[key] = v
    missing = [k for k in ("a", "b", "c", "al", "be", "ga") if k not in values]
    if missing:
        raise CellFormatError(source, None, f"missing {', '.join(missing)}")
    return Cell(
        values["a"],
        values["b"],
        values["c"],
        values["al"],
        values["be"],
        values["ga"],
        centering=centering,
        source=source,
    )


def read_cell(path: str | os.PathLike) -> Cell:
    """Read a CrystFEL ``.cell`` file or a PDB file with a CRYST1 line (see :func:`parse_cell`)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise CellFormatError(str(path), None, e.strerror or "cannot read") from None
    return parse_cell(text, str(path))


def median_cell(crystals: list[CrystalObservations], source: str = "") -> Cell | None:
    """Median of the crystals' ``Cell parameters`` (nm converted to Angstrom), or None."""
    cells = np.array([x.cell for x in crystals if x.cell is not None], dtype=np.float64)
    if cells.size == 0:
        return None
    med = np.median(cells, axis=0)
    cen = Counter(x.centering or "P" for x in crystals).most_common(1)[0][0]
    return Cell(
        med[0] * 10,
        med[1] * 10,
        med[2] * 10,
        med[3],
        med[4],
        med[5],
        cen,
        source or f"median of {len(cells)} crystal cells",
    )


def _centring_absent(h: np.ndarray, k: np.ndarray, l: np.ndarray, cen: str) -> np.ndarray:  # noqa: E741
    """Reflections absent because of lattice centring (CrystFEL's forbidden_reflection)."""
    if cen == "A":
        return (k + l) % 2 != 0
    if cen == "B":
        return (h + l) % 2 != 0
    if cen == "C":
        return (h + k) % 2 != 0
    if cen == "I":
        return (h + k + l) % 2 != 0
    if cen == "F":
        return ((h + k) % 2 != 0) | ((h + l) % 2 != 0) | ((k + l) % 2 != 0)
    if cen == "H":  # rhombohedral lattice in hexagonal axes, obverse setting
        return (-h + k + l) % 3 != 0
    return np.zeros(np.shape(h), bool)


# --------------------------------------------------------------------------------------------
# Shells
# --------------------------------------------------------------------------------------------


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

    def assign(self, one_over_d: np.ndarray) -> np.ndarray:
        """Shell index of each value; -1 outside [edges[0], edges[-1]] (or NaN)."""
        r = np.asarray(one_over_d, np.float64)
        j = np.searchsorted(self.edges, r, side="left") - 1
        j[r == self.edges[0]] = 0
        j[(j < 0) | (j >= self.n) | ~np.isfinite(r)] = -1
        return j

    def describe(self) -> list[dict]:
        return [
            {
                "shell": i,
                "one_over_d_min_nm": float(a),
                "one_over_d_max_nm": float(b),
                "d_max_A": 10.0 / a if a > 0 else None,
                "d_min_A": 10.0 / b,
                "d_centre_A": 10.0 / c,
            }
            for i, (a, b, c) in enumerate(zip(self.rmin, self.rmax, self.centres, strict=True))
        ]


# --------------------------------------------------------------------------------------------
# Statistics on reflection lists
# --------------------------------------------------------------------------------------------


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
        ok = ~_centring_absent(hh, kk, ll, cell.centering)
        keys = np.unique(pg.asu_keys(hh[ok], kk[ok], ll[ok]))
        seen.append(keys)
    keys = np.unique(np.concatenate(seen)) if seen else np.zeros(0, np.int64)
    from streamfilter.symmetry import unpack_hkl

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
    [rmin, rmax] are paired; unless ``scale`` is False, list 2 is scaled to list 1 by a
    straight-line fit of ln(I1/I2) against s^2 = (1/(2d))^2 over the pairs where both are
    positive (I2 *= G exp(2 B s^2)); then CC = Pearson(I1, I2) and
    R1(I) = sum|I1 - I2| / sum I1, per shell and over all pairs.

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
    )


# --------------------------------------------------------------------------------------------
# Observation level
# --------------------------------------------------------------------------------------------


def reindex_matrix(
    basis_a: np.ndarray, basis_b: np.ndarray, tolerance: float = REINDEX_TOLERANCE
) -> tuple[np.ndarray | None, float]:
    """The integer matrix R with h_b = h_a . R relating two settings of the same lattice.

    Parameters
    ----------
    basis_a, basis_b : numpy.ndarray
        3 x 3 matrices with rows a*, b*, c* (any common unit), lab frame.
    tolerance : float
        Largest accepted distance of an element of A_a . A_b^-1 from the nearest integer.

    Returns
    -------
    R : numpy.ndarray of int64 or None
        None when the crystals are not the same lattice in the same orientation (an element
        off-integer by more than ``tolerance``, or det(R) != +-1).
    deviation : float
        The largest distance of an element from its integer.
    """
    try:
        m = basis_a @ np.linalg.inv(basis_b)
    except np.linalg.LinAlgError:
        return None, math.inf
    rounded = np.rint(m)
    dev = float(np.max(np.abs(m - rounded)))
    if dev > tolerance or abs(round(float(np.linalg.det(rounded)))) != 1:
        return None, dev
    return rounded.astype(np.int64), dev


def match_crystals(
    xa: list[CrystalObservations],
    xb: list[CrystalObservations],
    tolerance: float = REINDEX_TOLERANCE,
) -> list[tuple[int, int, np.ndarray]]:
    """Pair the crystals of one frame by orientation: list of (i_a, i_b, R), best first."""
    cands = []
    for i, ca in enumerate(xa):
        ba = ca.reciprocal_basis
        if ba is None:
            continue
        for j, cb in enumerate(xb):
            bb = cb.reciprocal_basis
            if bb is None:
                continue
            rmat, dev = reindex_matrix(ba, bb, tolerance)
            if rmat is not None:
                cands.append((dev, i, j, rmat))
    cands.sort(key=lambda c: c[0])
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _, i, j, rmat in cands:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        pairs.append((i, j, rmat))
    return pairs


def match_observations(
    xa: CrystalObservations, xb: CrystalObservations, rmat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (in A, in B) of the observations with h_b = h_a . R."""
    hkl_a = np.stack([xa.h, xa.k, xa.l], 1).astype(np.int64) @ rmat
    ka = pack_hkl(hkl_a[:, 0], hkl_a[:, 1], hkl_a[:, 2])
    kb = pack_hkl(xb.h, xb.k, xb.l)
    _, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    return ia, ib


@dataclass
class ObservationPairs:
    """Matched observations of two streams (one entry per matched pair).

    Attributes
    ----------
    I_a, I_b, sigma_a, sigma_b : float64 arrays, ADU
    one_over_d : float64 array, nm^-1 (from crystal A)
    one_over_d_only_a, one_over_d_only_b : 1/d of the unmatched observations
    I_over_sigma_a, I_over_sigma_b : I/sigma of *all* observations of each stream (histograms)
    """

    I_a: np.ndarray  # noqa: N815
    I_b: np.ndarray  # noqa: N815
    sigma_a: np.ndarray
    sigma_b: np.ndarray
    one_over_d: np.ndarray
    one_over_d_only_a: np.ndarray
    one_over_d_only_b: np.ndarray
    I_over_sigma_a: np.ndarray  # noqa: N815
    I_over_sigma_b: np.ndarray  # noqa: N815


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


# --------------------------------------------------------------------------------------------
# The whole comparison
# --------------------------------------------------------------------------------------------


@dataclass
class CompareOptions:
    """Options of :func:`compare_streams` (see ``streamfilter compare --help``)."""

    symmetry: str = "-1"
    nshells: int = 10
    reference: str | None = None
    cell: str | None = None
    highres: float | None = None  # Angstrom
    lowres: float | None = None  # Angstrom
    min_measurements: int = 2
    seed: int = 1
    quiet: bool = True


@dataclass
class CompareResult:
    """What :func:`compare_streams` found: ``report`` (JSON-ready) and arrays for the plots."""

    report: dict
    pairs: ObservationPairs | None
    merged_a_vs_b: ListComparison | None
    obs_shells: Shells | None
    merged_shells: Shells | None
    merged_a: ReflectionList | None = None
    merged_b: ReflectionList | None = None


def as_written(refl: ReflectionList) -> ReflectionList:
    """``refl`` with I and sigma rounded as a ``.hkl`` file stores them (``%10.2f``).

    The merged-level figures of :func:`compare_streams` use these values, so they equal
    check_hkl's and compare_hkl's figures for the lists ``streamfilter merge`` writes (mean
    I/sigma in particular is sensitive to sigmas that round to 0.00 or 0.01).
    """

    def rounded(x: np.ndarray) -> np.ndarray:
        return np.array([float(v) for v in np.char.mod("%.2f", x)]) if x.size else x

    out = refl.take(np.arange(len(refl)))
    out.I = rounded(refl.I)
    out.sigma = rounded(refl.sigma)
    return out


def _is_hkl(path: str) -> bool:
    if path == "-":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip() == HKL_MAGIC
    except OSError:
        return False


def _read_side(path: str, pg: PointGroup, opts: CompareOptions, label: str) -> dict:
    """Merge one stream (with half-sets) and keep its crystals grouped by frame."""
    merger = Merger(pg, halves=True, seed=opts.seed)
    headers: list = []
    frames: dict = defaultdict(list)
    isig = []
    for xtal in iter_crystals(path, quiet=opts.quiet, desc=label, header_out=headers):
        merger.add_crystal(xtal)
        with np.errstate(invalid="ignore", divide="ignore"):
            isig.append((xtal.I / xtal.sigma).astype(np.float32))
        frames[xtal.frame].append(xtal)
    return {
        "merger": merger,
        "header": headers[0] if headers else None,
        "frames": frames,
        "crystals": [x for v in frames.values() for x in v],
        "isig": np.concatenate(isig) if isig else np.zeros(0, np.float32),
    }


def _observation_level(frames_a: dict, frames_b: dict) -> dict:
    """Match crystals and observations of the frames both streams contain."""
    common = [f for f in frames_a if f in frames_b]
    out = {
        "frames_a": len(frames_a),
        "frames_b": len(frames_b),
        "frames_common": len(common),
        "crystals_a": sum(len(v) for v in frames_a.values()),
        "crystals_b": sum(len(v) for v in frames_b.values()),
        "crystals_matched": 0,
        "crystals_reindexed": 0,
        "reindex_matrices": Counter(),
        "n_a": sum(len(x) for v in frames_a.values() for x in v),
        "n_b": sum(len(x) for v in frames_b.values() for x in v),
    }
    ia_all, ib_all, sa_all, sb_all, r_all = [], [], [], [], []
    only_a_r, only_b_r = [], []
    for frame in frames_a:
        xa = frames_a[frame]
        xb = frames_b.get(frame, [])
        pairs = match_crystals(xa, xb) if xb else []
        matched_a = {i for i, _, _ in pairs}
        matched_b = {j for _, j, _ in pairs}
        for i, j, rmat in pairs:
            out["crystals_matched"] += 1
            if not np.array_equal(rmat, np.eye(3, dtype=np.int64)):
                out["crystals_reindexed"] += 1
            out["reindex_matrices"][json.dumps(rmat.tolist())] += 1
            ca, cb = xa[i], xb[j]
            ia, ib = match_observations(ca, cb, rmat)
            ia_all.append(ca.I[ia])
            ib_all.append(cb.I[ib])
            sa_all.append(ca.sigma[ia])
            sb_all.append(cb.sigma[ib])
            r_all.append(ca.one_over_d[ia])
            ma = np.ones(len(ca), bool)
            ma[ia] = False
            mb = np.ones(len(cb), bool)
            mb[ib] = False
            only_a_r.append(ca.one_over_d[ma])
            only_b_r.append(cb.one_over_d[mb])
        for i, ca in enumerate(xa):
            if i not in matched_a:
                only_a_r.append(ca.one_over_d)
        for j, cb in enumerate(xb):
            if j not in matched_b:
                only_b_r.append(cb.one_over_d)
    for frame, xb in frames_b.items():
        if frame not in frames_a:
            only_b_r.extend(cb.one_over_d for cb in xb)

    def cat(parts):
        return np.concatenate(parts) if parts else np.zeros(0)

    pairs = ObservationPairs(
        cat(ia_all),
        cat(ib_all),
        cat(sa_all),
        cat(sb_all),
        cat(r_all),
        cat(only_a_r),
        cat(only_b_r),
        np.zeros(0),
        np.zeros(0),
    )
    out["matched"] = int(pairs.I_a.size)
    out["only_a"] = int(pairs.one_over_d_only_a.size)
    out["only_b"] = int(pairs.one_over_d_only_b.size)
    out["reindex_matrices"] = dict(out["reindex_matrices"].most_common())
    return {"summary": out, "pairs": pairs}


def compare_streams(path_a: str, path_b: str, opts: CompareOptions) -> CompareResult:
    """Compare two streams (or two reflection lists: merged level only).

    See the module docstring for what is computed and for the keys of ``CompareResult.report``
    (also in :data:`JSON_KEYS`).
    """
    pg = point_group(opts.symmetry)
    hkl_mode = _is_hkl(path_a)
    if hkl_mode != _is_hkl(path_b):
        raise StreamfilterError(
            f"{path_a if hkl_mode else path_b} is a reflection list and the other input is not: "
            "give two streams or two reflection lists"
        )
    report: dict = {
        "inputs": {
            "a": path_a,
            "b": path_b,
            "reference": opts.reference,
            "point_group": pg.symbol,
            "min_measurements": opts.min_measurements,
            "half_set_seed": opts.seed,
        },
    }
    pairs = None
    obs_shells = None
    if hkl_mode:
        merged = {"a": read_hkl(path_a), "b": read_hkl(path_b)}
        halves = {"a": None, "b": None}
        side = {"a": {"header": None, "crystals": []}, "b": {"header": None, "crystals": []}}
        report["observations"] = None
    else:
        side_a = _read_side(path_a, pg, opts, "A")
        side_b = _read_side(path_b, pg, opts, "B")
        side = {"a": side_a, "b": side_b}
        merged = {}
        halves = {}
        for name, s in side.items():
            merged[name] = as_written(s["merger"].result(opts.min_measurements))
            halves[name] = tuple(
                as_written(x) for x in s["merger"].half_results(opts.min_measurements)
            )
        obs = _observation_level(side_a["frames"], side_b["frames"])
        pairs = obs["pairs"]
        pairs.I_over_sigma_a = side_a["isig"]
        pairs.I_over_sigma_b = side_b["isig"]
        if obs["summary"]["frames_common"] == 0:
            report["observations"] = None
            pairs = None
        else:
            summary = obs["summary"]
            all_r = np.concatenate(
                [pairs.one_over_d, pairs.one_over_d_only_a, pairs.one_over_d_only_b]
            )
            all_r = all_r[np.isfinite(all_r)]
            lo = 10.0 / opts.lowres if opts.lowres else float(all_r.min())
            hi = 10.0 / opts.highres if opts.highres else float(all_r.max())
            obs_shells = Shells.equal_volume(lo, hi, opts.nshells)
            summary["overall"] = {
                "n_matched": summary["matched"],
                **pair_statistics(pairs.I_a, pairs.I_b, pairs.sigma_a, pairs.sigma_b),
            }
            j = obs_shells.assign(pairs.one_over_d)
            ja = obs_shells.assign(pairs.one_over_d_only_a)
            jb = obs_shells.assign(pairs.one_over_d_only_b)
            rows = []
            for s, shell in enumerate(obs_shells.describe()):
                sel = j == s
                rows.append(
                    {
                        **shell,
                        "matched": int(sel.sum()),
                        "only_a": int((ja == s).sum()),
                        "only_b": int((jb == s).sum()),
                        **pair_statistics(
                            pairs.I_a[sel], pairs.I_b[sel], pairs.sigma_a[sel], pairs.sigma_b[sel]
                        ),
                    }
                )
            summary["shells"] = rows
            report["observations"] = summary
    # ---- merged level
    cell, cell_source = _choose_cell(opts, side, path_a, path_b)
    reference = read_hkl(opts.reference).to_asymmetric_unit(pg) if opts.reference else None
    r_a = cell.one_over_d(merged["a"].h, merged["a"].k, merged["a"].l)
    r_b = cell.one_over_d(merged["b"].h, merged["b"].k, merged["b"].l)
    r_all = np.concatenate([r_a, r_b])
    if r_all.size == 0:
        raise StreamfilterError("no merged reflections (too few measurements?)")
    lo = 10.0 / opts.lowres if opts.lowres else float(r_all.min())
    hi = 10.0 / opts.highres if opts.highres else float(r_all.max())
    shells = Shells.equal_volume(lo, hi, opts.nshells)
    possible = count_possible(cell, pg, shells)
    mrep: dict = {
        "cell": {
            "a_A": cell.a,
            "b_A": cell.b,
            "c_A": cell.c,
            "alpha_deg": cell.alpha,
            "beta_deg": cell.beta,
            "gamma_deg": cell.gamma,
            "centering": cell.centering,
            "source": cell_source,
        },
        "shells": shells.describe(),
    }
    for name in ("a", "b"):
        h = halves[name]
        st = list_statistics(merged[name], cell, pg, shells, h, possible)
        mrep[name] = {"overall": st.overall, "shells": st.shell_rows()}
        merger = side[name].get("merger")
        if merger is not None:
            mrep[name]["overall"].update(
                n_crystals=merger.stats.n_crystals, n_observations=merger.stats.n_observations
            )
    a_vs_b = None
    try:
        a_vs_b = compare_lists(merged["a"], merged["b"], cell, pg, shells=shells)
        mrep["a_vs_b"] = {"overall": a_vs_b.overall_dict(), "shells": a_vs_b.shell_rows()}
    except StreamfilterError as e:
        mrep["a_vs_b"] = {"error": str(e)}
    if reference is not None:
        for name in ("a", "b"):
            try:
                c = compare_lists(merged[name], reference, cell, pg, shells=shells)
                mrep[f"{name}_vs_reference"] = {
                    "overall": c.overall_dict(),
                    "shells": c.shell_rows(),
                }
            except StreamfilterError as e:
                mrep[f"{name}_vs_reference"] = {"error": str(e)}
    report["merged"] = mrep
    return CompareResult(report, pairs, a_vs_b, obs_shells, shells, merged["a"], merged["b"])


def _choose_cell(opts: CompareOptions, side: dict, path_a: str, path_b: str) -> tuple[Cell, str]:
    if opts.cell:
        return read_cell(opts.cell), f"file {opts.cell}"
    for name, path in (("a", path_a), ("b", path_b)):
        header = side[name].get("header")
        text = header.cell_text if header is not None else None
        if text:
            src = f"unit-cell block of {path}"
            return parse_cell(text, src), src
    for name, path in (("a", path_a), ("b", path_b)):
        cell = median_cell(side[name].get("crystals", []))
        if cell is not None:
            return cell, f"{cell.source} of {path}"
    raise StreamfilterError("no unit cell: give --cell FILE (CrystFEL .cell or PDB)")


JSON_KEYS = """\
JSON report of ``streamfilter compare`` (NaN is written as null):

inputs: a, b, reference (paths), point_group, min_measurements, half_set_seed
observations: null when A and B share no frame (same Image filename and Event); else
  frames_a, frames_b, frames_common   chunks with crystals in A, in B, in both
  crystals_a, crystals_b              crystals with a reflection table
  crystals_matched                    crystal pairs matched by orientation
  crystals_reindexed                  matched pairs whose reindexing matrix R is not identity
  reindex_matrices                    {"[[r11,r12,r13],...]": count}, h_b = h_a . R
  n_a, n_b                            observations (reflection rows) in A, in B
  matched, only_a, only_b             observations matched / unmatched
  overall: n_matched, cc_I, median_ratio_I, cc_sigma, median_ratio_sigma,
           cc_I_over_sigma, median_ratio_I_over_sigma
           (CC: Pearson over matched pairs; median_ratio: median of B/A over pairs where
            both values are > 0)
  shells: list, one per resolution shell of 1/d from crystal A's reciprocal vectors
          (equal volume between --lowres and --highres, default all observations; overall
          figures use every matched pair, also those outside the shells):
          shell, one_over_d_min_nm, one_over_d_max_nm, d_max_A, d_min_A, d_centre_A,
          matched, only_a, only_b, and the statistics of "overall"
merged:
  cell: a_A, b_A, c_A, alpha_deg, beta_deg, gamma_deg, centering, source
  shells: list of shell, one_over_d_min_nm, one_over_d_max_nm, d_max_A, d_min_A, d_centre_A
          (equal reciprocal volume, like check_hkl)
  a, b: merge of each stream (process_hkl-style plain mean, >= min_measurements):
    overall and each of shells: n_unique, possible, completeness_percent, n_measurements,
      multiplicity, mean_I, mean_I_over_sigma (check_hkl's SNR), cc_half, cc_star,
      n_half_pairs (CC1/2 between random half-sets of crystals, no scaling);
      overall also n_crystals, n_observations
  a_vs_b, a_vs_reference, b_vs_reference (the last two with --reference):
    overall: n_pairs, cc, r1i_percent, scale_G, scale_B_A2
    shells: n_pairs, cc, r1i_percent
    (as compare_hkl: second list Wilson-scaled to the first, I2 *= G exp(2 B s^2),
     s = 1/(2d); CC = Pearson; R1(I) = sum|I1 - I2| / sum I1)
"""


# --------------------------------------------------------------------------------------------
# Text report
# --------------------------------------------------------------------------------------------


def _f(x, fmt: str) -> str:
    """Format a number, or '-' (right-aligned to the field width) for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        m = re.match(r"\d+", fmt)
        return "-".rjust(int(m.group(0)) if m else 1)
    return format(x, fmt)


def format_report(report: dict) -> str:
    """The terminal tables of a compare report."""
    out: list[str] = []
    inp = report["inputs"]
    out.append(f"A: {inp['a']}")
    out.append(f"B: {inp['b']}")
    obs = report.get("observations")
    if obs is None:
        out.append("\nObservations: the streams share no frames (or reflection lists were given)")
    else:
        pa = 100.0 * obs["matched"] / obs["n_a"] if obs["n_a"] else math.nan
        pb = 100.0 * obs["matched"] / obs["n_b"] if obs["n_b"] else math.nan
        out.append(
            f"\nObservations: {obs['frames_common']} frames in both; crystals matched "
            f"{obs['crystals_matched']} (A {obs['crystals_a']}, B {obs['crystals_b']}), "
            f"{obs['crystals_reindexed']} needed reindexing"
        )
        out.append(
            f"  rows A {obs['n_a']}, B {obs['n_b']}; matched {obs['matched']} "
            f"({_f(pa, '.2f')}% of A, {_f(pb, '.2f')}% of B); only A {obs['only_a']}, "
            f"only B {obs['only_b']}"
        )
        hdr = (
            f"  {'d/A':>13} {'matched':>8} {'onlyA':>6} {'onlyB':>6} {'CC(I)':>7} "
            f"{'B/A I':>7} {'CC(sig)':>7} {'B/A sig':>7} {'CC(I/s)':>7} {'B/A I/s':>7}"
        )
        out.append(hdr)
        for row in obs["shells"] + [
            dict(
                obs["overall"],
                d_max_A=None,
                d_min_A=None,
                matched=obs["matched"],
                only_a=obs["only_a"],
                only_b=obs["only_b"],
            )
        ]:
            rng = (
                "overall"
                if row.get("d_min_A") is None
                else f"{_f(row['d_max_A'], '.2f')}-{row['d_min_A']:.2f}"
            )
            out.append(
                f"  {rng:>13} {row['matched']:>8} {row['only_a']:>6} {row['only_b']:>6} "
                f"{_f(row['cc_I'], '7.4f')} {_f(row['median_ratio_I'], '7.3f')} "
                f"{_f(row['cc_sigma'], '7.4f')} {_f(row['median_ratio_sigma'], '7.3f')} "
                f"{_f(row['cc_I_over_sigma'], '7.4f')} "
                f"{_f(row['median_ratio_I_over_sigma'], '7.3f')}"
            )
    m = report["merged"]
    c = m["cell"]
    out.append(
        f"\nMerged in {inp['point_group']} (>= {inp['min_measurements']} measurements); cell "
        f"{c['a_A']:.2f} {c['b_A']:.2f} {c['c_A']:.2f} A {c['alpha_deg']:.2f} "
        f"{c['beta_deg']:.2f} {c['gamma_deg']:.2f} deg {c['centering']} ({c['source']})"
    )
    shells = m["shells"] + [{"d_max_A": None, "d_min_A": None}]
    for name in ("a", "b"):
        st = m[name]
        out.append(
            f"  {name.upper()}: {'d/A':>13} {'uniq':>6} {'compl%':>7} {'mult':>5} "
            f"{'<I/s>':>7} {'CC1/2':>7} {'CC*':>7} {'npair':>6}"
        )
        for shell, row in zip(shells, st["shells"] + [st["overall"]], strict=True):
            rng = (
                "overall"
                if shell["d_min_A"] is None
                else f"{_f(shell['d_max_A'], '.2f')}-{shell['d_min_A']:.2f}"
            )
            out.append(
                f"     {rng:>13} {row['n_unique']:>6} {_f(row['completeness_percent'], '7.2f')} "
                f"{_f(row['multiplicity'], '5.2f')} {_f(row['mean_I_over_sigma'], '7.2f')} "
                f"{_f(row.get('cc_half'), '7.4f')} {_f(row.get('cc_star'), '7.4f')} "
                f"{row.get('n_half_pairs', 0):>6}"
            )
    tables = [("A vs B", m.get("a_vs_b"))]
    if "a_vs_reference" in m:
        tables += [("A vs ref", m["a_vs_reference"]), ("B vs ref", m["b_vs_reference"])]
    for title, t in tables:
        if t is None:
            continue
        if "error" in t:
            out.append(f"  {title}: {t['error']}")
            continue
        ov = t["overall"]
        out.append(
            f"  {title}: {'d/A':>13} {'pairs':>6} {'CC':>9} {'R1(I)%':>7}   "
            f"(scale G {ov['scale_G']:.4g}, B {ov['scale_B_A2']:.3g} A^2)"
        )
        for shell, row in zip(shells, t["shells"] + [ov], strict=True):
            rng = (
                "overall"
                if shell["d_min_A"] is None
                else f"{_f(shell['d_max_A'], '.2f')}-{shell['d_min_A']:.2f}"
            )
            out.append(
                f"     {rng:>13} {row['n_pairs']:>6} {_f(row['cc'], '9.7f')} "
                f"{_f(row['r1i_percent'], '7.2f')}"
            )
    return "\n".join(out) + "\n"


def _json_clean(obj):
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def write_json(report: dict, path: str) -> None:
    """Write the report as JSON (``"-"`` = stdout); NaN and infinities become null."""
    text = json.dumps(_json_clean(report), indent=1)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    Path(path).write_text(text + "\n")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_compare_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``streamfilter compare`` (call with the object from ``add_subparsers()``)."""
    p = subparsers.add_parser(
        "compare",
        help="compare two streams per observation and merged, per resolution shell",
        description=(
            "Compare two streams: matched observations (frames in both, crystals matched by "
            "orientation with reindexing) and merged data (completeness, multiplicity, "
            "<I/sigma>, CC1/2, CC*, CC and R1(I) between A and B and against a reference).  "
            "Two CrystFEL reflection lists may be given instead of streams (merged level only)."
        ),
        epilog=JSON_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", help="first stream (or .hkl)")
    p.add_argument("b", metavar="B", help="second stream (or .hkl)")
    p.add_argument(
        "-y",
        "--symmetry",
        default=None,
        metavar="POINTGROUP",
        help="merging point group (CrystFEL symbol; default -1, or the lists' own)",
    )
    p.add_argument(
        "--shells",
        type=int,
        default=10,
        metavar="N",
        help="number of resolution shells (default 10)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="write all numbers as JSON")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG figures to DIR")
    p.add_argument(
        "--reference",
        default=None,
        metavar="FILE.hkl",
        help="reference reflection list (e.g. the truth) for CC and R1(I)",
    )
    p.add_argument(
        "-p",
        "--cell",
        default=None,
        metavar="FILE",
        help="unit cell (CrystFEL .cell or PDB); default: stream header or median",
    )
    p.add_argument(
        "--highres",
        type=float,
        default=None,
        metavar="D",
        help="high-resolution limit of the shells, Angstrom",
    )
    p.add_argument(
        "--lowres",
        type=float,
        default=None,
        metavar="D",
        help="low-resolution limit of the shells, Angstrom",
    )
    p.add_argument(
        "--min-measurements",
        type=int,
        default=2,
        metavar="N",
        help="merged reflections need N observations (default 2, as process_hkl)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the half-set split (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """Run ``streamfilter compare``; returns the exit status."""
    symmetry = args.symmetry
    if symmetry is None:
        symmetry = "-1"
        if _is_hkl(args.a):
            symmetry = read_hkl(args.a).symmetry or "-1"
    opts = CompareOptions(
        symmetry=symmetry,
        nshells=args.shells,
        reference=args.reference,
        cell=args.cell,
        highres=args.highres,
        lowres=args.lowres,
        min_measurements=args.min_measurements,
        seed=args.seed,
        quiet=bool(getattr(args, "quiet", False)),
    )
    result = compare_streams(args.a, args.b, opts)
    sys.stdout.write(format_report(result.report))
    if args.json:
        write_json(result.report, args.json)
    if args.plots:
        from streamfilter.plots import write_compare_plots

        files = write_compare_plots(result, args.plots)
        if not opts.quiet:
            print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0


__doc__ = (__doc__ or "") + "\n" + JSON_KEYS
