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
from dataclasses import dataclass

import numpy as np

from streamfilter.analysis.observations import CrystalObservations
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


def match_frames(frames_a: dict, frames_b: dict) -> dict:
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
