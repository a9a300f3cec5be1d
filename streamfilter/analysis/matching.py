"""Matching the crystals and observations of two streams that share frames.

Two indexing runs often pick different but equivalent settings of the same lattice (axes
swapped or inverted).  For each pair of crystals of a frame the integer matrix
R = A_a . A_b^-1 (A = the 3 x 3 matrix with rows a*, b*, c*) is computed, rounded and checked
(every element within :data:`REINDEX_TOLERANCE` of an integer, determinant +-1); observations
then match when h_b = h_a . R (row vectors).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.analysis.observations import CrystalObservations
from streamfilter.analysis.obsstats import PAIR_DTYPE, Spill
from streamfilter.analysis.symmetry import pack_hkl

#: Largest deviation of a reindexing matrix element from an integer that is still accepted.
REINDEX_TOLERANCE = 0.1


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
    """Matched observations of two streams (one entry per matched pair), for the plots.

    At most :data:`~streamfilter.analysis.obsstats.PLOT_ROWS` entries per array: every k-th
    of the pairs (and of the I/sigma values) when there are more (``stride`` k).

    Attributes
    ----------
    I_a, I_b, sigma_a, sigma_b : float64 arrays, ADU
    one_over_d : float64 array, nm^-1 (from crystal A)
    I_over_sigma_a, I_over_sigma_b : I/sigma of the observations of each stream (histograms)
    stride, isig_stride : int
        1: every matched pair (every I/sigma value) is here; k: one in k.
    """

    I_a: np.ndarray  # noqa: N815
    I_b: np.ndarray  # noqa: N815
    sigma_a: np.ndarray
    sigma_b: np.ndarray
    one_over_d: np.ndarray
    I_over_sigma_a: np.ndarray  # noqa: N815
    I_over_sigma_b: np.ndarray  # noqa: N815
    stride: int = 1
    isig_stride: int = 1


class MatchedObservations:
    """What matching two streams found, on disk (:class:`~streamfilter.analysis.obsstats.
    Spill`): ``pairs`` (1/d, I_A, I_B, sigma_A, sigma_B per matched pair), ``only_a`` and
    ``only_b`` (1/d of the observations of one stream only), and the range of every 1/d."""

    def __init__(self) -> None:
        self.pairs = Spill(PAIR_DTYPE)
        self.only_a = Spill(np.float64)
        self.only_b = Spill(np.float64)
        self.r_min, self.r_max = math.inf, -math.inf

    def _range(self, r: np.ndarray) -> None:
        r = r[np.isfinite(r)]
        if r.size:
            self.r_min = min(self.r_min, float(r.min()))
            self.r_max = max(self.r_max, float(r.max()))

    def add_pairs(self, ca: CrystalObservations, cb: CrystalObservations,
                  ia: np.ndarray, ib: np.ndarray) -> None:  # fmt: skip
        rows = np.empty(ia.size, PAIR_DTYPE)
        rows["r"], rows["ia"], rows["ib"] = ca.one_over_d[ia], ca.I[ia], cb.I[ib]
        rows["sa"], rows["sb"] = ca.sigma[ia], cb.sigma[ib]
        self._range(rows["r"])
        self.pairs.append(rows)

    def add_only(self, side: str, r: np.ndarray) -> None:
        self._range(r)
        (self.only_a if side == "a" else self.only_b).append(r)

    def close(self) -> None:
        for s in (self.pairs, self.only_a, self.only_b):
            s.close()


def _match_frame(xa: list, xb: list, out: dict, found: MatchedObservations) -> None:
    """Match the crystals and observations of one frame (key) of A and B."""
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
        found.add_pairs(ca, cb, ia, ib)
        ma = np.ones(len(ca), bool)
        ma[ia] = False
        mb = np.ones(len(cb), bool)
        mb[ib] = False
        found.add_only("a", ca.one_over_d[ma])
        found.add_only("b", cb.one_over_d[mb])
    for i, ca in enumerate(xa):
        if i not in matched_a:
            found.add_only("a", ca.one_over_d)
    for j, cb in enumerate(xb):
        if j not in matched_b:
            found.add_only("b", cb.one_over_d)


def match_frames(keys_a: dict, keys_b: dict, crystals_a: Callable[[Any], list],
                 crystals_b: Callable[[Any], list], counts: dict) -> dict:  # fmt: skip
    """Match crystals and observations of the frames both streams contain.

    ``keys_a``/``keys_b`` map each pairing key to the numbers of its chunks (with
    crystals), in stream order; ``counts`` holds crystals_a, crystals_b, n_a, n_b (crystals
    and observations of each stream, counted while merging); ``crystals_a(key)`` and
    ``crystals_b(key)`` read the crystals of one key.  Frames are matched one key at a time,
    so memory holds one frame's crystals; the matched observations go to disk (``found``, a
    :class:`MatchedObservations`).
    """
    out = {
        "frames_a": len(keys_a),
        "frames_b": len(keys_b),
        "frames_common": sum(1 for f in keys_a if f in keys_b),
        "crystals_a": counts["crystals_a"], "crystals_b": counts["crystals_b"],
        "crystals_matched": 0,
        "crystals_reindexed": 0,
        "reindex_matrices": Counter(),
        "n_a": counts["n_a"], "n_b": counts["n_b"],
    }  # fmt: skip
    found = MatchedObservations()
    for frame in keys_a:
        xa = crystals_a(frame)
        xb = crystals_b(frame) if frame in keys_b else []
        _match_frame(xa, xb, out, found)
    for frame in keys_b:
        if frame not in keys_a:
            for cb in crystals_b(frame):
                found.add_only("b", cb.one_over_d)
    out["matched"] = found.pairs.n
    out["only_a"] = found.only_a.n
    out["only_b"] = found.only_b.n
    out["reindex_matrices"] = dict(out["reindex_matrices"].most_common())
    return {"summary": out, "found": found}
