"""The profile radius at which CrystFEL starts to predict a reflection.

A reflection enters indexamajig's prediction set when the crystal's ``profile_radius`` R
reaches its threshold r* (``check_reflection``'s partiality cut is monotonic in R).  The
stream prints R to 5 decimals only, so :mod:`streamfilter.predict.reconcile` needs r* of the
reflections near the cut: :func:`threshold_radius` bisects ``check_reflection`` with the same
IEEE operations as the prediction, :func:`_threshold_radius_of_predicted` does it from the
terms :func:`~streamfilter.predict.crystfel._predict` computed anyway.

Units: R and r* in m^-1 inside, nm^-1 at the public functions (as streams print them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from streamfilter.predict.crystfel import (
    _QUIET,
    DBL_MIN,
    MIN_PARTIALITY,
    _Ewald,
    _ewald,
    _excite,
    _overlap,
    lab_vectors,
    photon_energy_to_wavelength,
    reciprocal_matrix,
)

__all__ = ["threshold_radius", "threshold_radius_for"]


def threshold_radius(
    xl: np.ndarray,
    yl: np.ndarray,
    zl: np.ndarray,
    wavelength: float,
    bandwidth: float,
    r_lo: float,
    r_hi: float,
    iterations: int = 60,
) -> np.ndarray:
    """Smallest profile radius (m^-1) in [r_lo, r_hi] at which each point passes the cut.

    The partiality grows with R, so a bisection finds where it crosses
    :data:`MIN_PARTIALITY`.  Points already passing at ``r_lo`` get ``r_lo``; points failing
    at ``r_hi`` get +inf.  The result is exactly that of ``iterations`` halvings of
    [r_lo, r_hi] (``mid = 0.5 * (lo + hi)``, ``hi = mid`` where the point passes at mid),
    computed only for the points that fail at r_lo and pass at r_hi, and stopped once
    ``lo`` and ``hi`` are neighbouring doubles (further halvings cannot change them).
    """
    with np.errstate(**_QUIET):
        ew = _ewald(xl, yl, zl, wavelength, bandwidth)
        p_lo, _ = _excite(ew, float(r_lo), want_kpred=False)
        p_hi, _ = _excite(ew, float(r_hi), want_kpred=False)
        out = np.where(p_hi < MIN_PARTIALITY, np.inf, float(r_lo))
        todo = np.flatnonzero((p_lo < MIN_PARTIALITY) & ~(p_hi < MIN_PARTIALITY))
        if todo.size:
            out[todo] = _bisect(ew.take(todo), float(r_lo), float(r_hi), iterations)
    return out


def _threshold_radius_of_predicted(
    terms: _Ewald, r_lo: float, r_hi: float, iterations: int = 60
) -> np.ndarray:
    """:func:`threshold_radius` of reflections that :func:`_predict` predicted at R = r_hi.

    They all pass the cut at r_hi, so only the evaluation at r_lo and the bisection remain;
    the result is the same, bit for bit, as ``threshold_radius`` of their h, k, l.
    """
    with np.errstate(**_QUIET):
        p_lo, _ = _excite(terms, float(r_lo), want_kpred=False)
        out = np.full(p_lo.shape, float(r_lo))
        todo = np.flatnonzero(p_lo < MIN_PARTIALITY)
        if todo.size:
            out[todo] = _bisect(terms.take(todo), float(r_lo), float(r_hi), iterations)
    return out


#: Below this many points the bisection runs on Python floats (numpy's per-call overhead
#: would dominate); both paths perform the same IEEE operations.
_SCALAR_BISECTION = 8


def _bisect(ew: _Ewald, r_lo: float, r_hi: float, iterations: int) -> np.ndarray:
    """Bisection of :func:`threshold_radius` for points failing at r_lo, passing at r_hi."""
    hi = np.full(ew.e2.shape, r_hi)
    # Where the general case of check_reflection holds at both ends it holds in between
    # (1/R^2 is monotonic), and only the R-dependent tail has to be evaluated per step.
    w0_lo = 1.0 / (r_lo * r_lo) if r_lo * r_lo > 0 else math.inf
    w0_hi = 1.0 / (r_hi * r_hi) if r_hi * r_hi > 0 else math.inf
    general = (
        math.isfinite(w0_lo)
        & (w0_hi / ew.w1 > DBL_MIN)
        & (ew.w1 / w0_lo > DBL_MIN)
        & np.isfinite(ew.sp2)
    )
    fast = np.flatnonzero(general)
    if fast.size <= _SCALAR_BISECTION:
        hi[fast] = [
            _bisect_scalar(e2, sp2, ew.sigma, r_lo, r_hi, iterations)
            for e2, sp2 in zip(ew.e2[fast].tolist(), ew.sp2[fast].tolist(), strict=True)
        ]
    else:
        hi[fast] = _bisect_general(ew.e2[fast], ew.sp2[fast], ew.sigma, r_lo, r_hi, iterations)
    slow = np.flatnonzero(~general)
    if slow.size:
        sub = ew.take(slow)
        lo_s = np.full(slow.size, r_lo)
        hi_s = np.full(slow.size, r_hi)
        for _ in range(iterations):
            mid = 0.5 * (lo_s + hi_s)
            p, _ = _excite(sub, mid, want_kpred=False)
            passes = ~(p < MIN_PARTIALITY)
            hi_s = np.where(passes, mid, hi_s)
            lo_s = np.where(passes, lo_s, mid)
        hi[slow] = hi_s
    return hi


def _bisect_general(
    e2: np.ndarray, sp2: np.ndarray, sigma: float, r_lo: float, r_hi: float, iterations: int
) -> np.ndarray:
    """Vectorised bisection in the general case (see :func:`_bisect`)."""
    lo = np.full(e2.shape, r_lo)
    hi = np.full(e2.shape, r_hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if not np.any((mid != lo) & (mid != hi)):
            break  # neighbours everywhere: mid is lo (fails) or hi (passes) from now on
        p, _, _ = _overlap(e2, sp2, mid, sigma)
        passes = ~(p < MIN_PARTIALITY)
        hi = np.where(passes, mid, hi)
        lo = np.where(passes, lo, mid)
    return hi


def _bisect_scalar(
    e2: float, sp2: float, sigma: float, lo: float, hi: float, iterations: int
) -> float:
    """One point of :func:`_bisect_general` on Python floats.

    The same IEEE operations as :func:`_overlap` (``np.exp`` is kept: ``math.exp`` may
    differ from numpy's in the last bit).  R > 0 and sp2 finite here, so no division by
    zero can occur.
    """
    two_pi = 2 * math.pi
    sigma_sq = sigma * sigma
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if mid == lo or mid == hi:
            break
        rr = mid * mid
        sigma2 = rr + sp2
        exponent = -0.5 * e2 / sigma2
        overlap = 0.0
        if exponent > -700.0:
            overlap = (
                float(np.exp(exponent)) * math.sqrt(two_pi * mid * mid) / math.sqrt(two_pi * sigma2)
            )
        p = overlap if overlap >= DBL_MIN else 0.0
        p = p * math.sqrt((rr + sigma_sq) / rr)
        if p != p:  # NaN
            p = 0.0
        if p < MIN_PARTIALITY:
            lo = mid
        else:
            hi = mid
    return hi


def threshold_radius_for(
    h: Any,
    k: Any,
    l: Any,  # noqa: E741
    astar: Any,
    bstar: Any,
    cstar: Any,
    photon_energy_eV: float,
    bandwidth: float | None,
    r_lo: float,
    r_hi: float,
) -> np.ndarray:
    """:func:`threshold_radius` for Miller indices; radii in nm^-1 in and out."""
    xl, yl, zl = lab_vectors(h, k, l, reciprocal_matrix(astar, bstar, cstar))
    wavelength = photon_energy_to_wavelength(photon_energy_eV)
    out = threshold_radius(xl, yl, zl, wavelength, bandwidth or 0.0, r_lo * 1e9, r_hi * 1e9)
    return out * 1e-9
