"""Reflection prediction exactly as CrystFEL 0.12's indexamajig does it.

This re-implements, vectorised over all Miller indices of a crystal, the parts of
``libcrystfel/src/geometry.c`` that decide *which* reflections are predicted and *where*:

* ``predict_to_res``: the index box ``|h| <= int(mres * |a|)`` (``mres`` is the largest 1/d
  seen by any panel corner, capped by ``max_one_over_d``), centring absences
  (``forbidden_reflection``), and no 000;
* ``check_reflection``: the excitation-error test against the Gaussian spectrum that
  indexamajig builds from the photon energy and ``beam_bandwidth``
  (``spectrum_generate_gaussian``: one Gaussian at k = 1/lambda with sigma = bandwidth/lambda),
  the crystal's ``profile_radius`` R, the "partiality" cut at ``exp(-0.5 * 1.7**2)``, and the
  wavenumber ``kpred`` used to place the spot;
* ``locate_peak``/``locate_peak_on_panel``: the diffracted ray ``(x, y, z + kpred)`` meets the
  panel plane; the first panel (in geometry order) with ``0 <= fs < w`` and ``0 <= ss < h``
  takes the reflection.  ``predict_refine/det_shift`` moves every panel corner by
  ``det_shift / pixel_pitch`` pixels.

Units and conventions: reciprocal vectors ``astar, bstar, cstar`` are given in nm^-1 (as
printed in streams) in the lab frame (+z along the beam); internally everything is in m^-1
and metres as in CrystFEL.  Positions returned are **panel-relative** (``fs = FS - min_fs``),
pixel-corner convention (pixel i spans [i, i+1), centre i + 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Predictions",
    "predict_reflections",
    "positions_for",
    "photon_energy_to_wavelength",
    "reciprocal_matrix",
    "MIN_PARTIALITY",
    "threshold_radius",
    "threshold_radius_for",
]

# CrystFEL's constants (libcrystfel/src/utils.h), not CODATA 2018: the wavelength must be the
# one indexamajig used to the last bit.
PLANCK = 6.62606896e-34
C_VACUO = 299792458.0
ELECTRON_CHARGE = 1.6021773e-19
DBL_MIN = np.finfo(np.float64).tiny

#: ``check_reflection`` drops reflections whose Gaussian overlap is below this value.
MIN_PARTIALITY = math.exp(-0.5 * 1.7 * 1.7)


@dataclass
class Predictions:
    """Predicted reflections of one crystal that land on a panel.

    Attributes
    ----------
    h, k, l : np.ndarray
        int32 Miller indices, sorted by (h, k, l) like a CrystFEL ``RefList``.
    panel : np.ndarray
        int64 index into ``detector.panels``.
    fs, ss : np.ndarray
        float64 **panel-relative** positions in pixels (pixel-corner convention).
    one_over_d : np.ndarray
        float64 1/d in m^-1.
    partiality : np.ndarray
        float64 CrystFEL's Gaussian-overlap "partiality" used for the prediction cut.
    kpred : np.ndarray
        float64 wavenumber (m^-1) of the Ewald sphere the spot was placed with.
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - crystallographic name
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    one_over_d: np.ndarray
    partiality: np.ndarray
    kpred: np.ndarray

    def __len__(self) -> int:
        return int(self.h.shape[0])


def photon_energy_to_wavelength(photon_energy_eV: float) -> float:
    """Wavelength in metres with CrystFEL's constants (``ph_eV_to_lambda``)."""
    return PLANCK * C_VACUO / (photon_energy_eV * ELECTRON_CHARGE)


def reciprocal_matrix(astar: Any, bstar: Any, cstar: Any) -> np.ndarray:
    """Rows a*, b*, c* in m^-1 from stream values in nm^-1."""
    return np.array([astar, bstar, cstar], dtype=np.float64) * 1e9


# --------------------------------------------------------------------------------------------
# Detector access (duck-typed on streamfilter.geometry.Detector / Panel)
# --------------------------------------------------------------------------------------------


@dataclass
class _PanelGeom:
    """CrystFEL's ``detgeom_panel`` numbers: corner in pixels, cnz in pixels."""

    cnx: float
    cny: float
    cnz: float
    fsv: np.ndarray
    ssv: np.ndarray
    w: int
    h: int
    pixel_pitch: float


def _panel_geoms(detector: Any, header_values: Mapping[str, float] | None) -> list[_PanelGeom]:
    """``create_detgeom``: corners in pixels, the whole-detector shift applied to them, and
    ``cnz = (clen + coffset) / pixel_pitch``."""
    shift = getattr(detector, "detector_shift_m", None)
    sx, sy = shift(header_values) if shift is not None else (0.0, 0.0)
    out = []
    for p in detector.panels:
        pitch = 1.0 / float(p.res)
        clen = float(detector.clen_m(header_values, panel=p))
        coffset = float(getattr(p, "coffset", 0.0) or 0.0)
        out.append(
            _PanelGeom(
                cnx=float(p.corner_x) + sx / pitch,
                cny=float(p.corner_y) + sy / pitch,
                cnz=(clen + coffset) / pitch,
                fsv=np.asarray(p.fs, dtype=np.float64),
                ssv=np.asarray(p.ss, dtype=np.float64),
                w=int(p.width),
                h=int(p.height),
                pixel_pitch=pitch,
            )
        )
    return out


def _max_resolution(geoms: list[_PanelGeom], wavelength: float) -> float:
    """``detgeom_max_resolution``: largest |q| (m^-1) over all panel corners."""
    best = 0.0
    for g in geoms:
        for fs, ss in ((0, 0), (0, g.h), (g.w, 0), (g.w, g.h)):
            xs = (g.cnx + fs * g.fsv[0] + ss * g.ssv[0]) * g.pixel_pitch
            ys = (g.cny + fs * g.fsv[1] + ss * g.ssv[1]) * g.pixel_pitch
            zs = (g.cnz + fs * g.fsv[2] + ss * g.ssv[2]) * g.pixel_pitch
            fac = wavelength * math.sqrt(xs * xs + ys * ys + zs * zs)
            r = (xs / fac, ys / fac, zs / fac - 1.0 / wavelength)
            best = max(best, math.sqrt(r[0] ** 2 + r[1] ** 2 + r[2] ** 2))
    return best


def _locate(
    x: np.ndarray,
    y: np.ndarray,
    zk: np.ndarray,
    geoms: list[_PanelGeom],
    det_shift_m: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``locate_peak``: first panel hit by the rays ``(x, y, zk)``; -1 where none.

    Solves ``[corner | fs | ss] . (1/mu, fs/mu, ss/mu) = ray`` for every panel, as CrystFEL
    does with ``gsl_linalg_HH_solve``.
    """
    n = x.shape[0]
    panel = np.full(n, -1, dtype=np.int64)
    fs_out = np.full(n, -1.0)
    ss_out = np.full(n, -1.0)
    if n == 0:
        return panel, fs_out, ss_out
    rays = np.stack([x, y, zk])
    for i, g in enumerate(geoms):
        m = np.array(
            [
                [g.cnx + det_shift_m[0] / g.pixel_pitch, g.fsv[0], g.ssv[0]],
                [g.cny + det_shift_m[1] / g.pixel_pitch, g.fsv[1], g.ssv[1]],
                [g.cnz, g.fsv[2], g.ssv[2]],
            ]
        )
        v = np.linalg.solve(m, rays)
        one_over_mu = v[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            fs = v[1] / one_over_mu
            ss = v[2] / one_over_mu
        ok = (one_over_mu >= 0.0) & (fs >= 0.0) & (fs < g.w) & (ss >= 0.0) & (ss < g.h)
        take = ok & (panel < 0)
        panel[take] = i
        fs_out[take] = fs[take]
        ss_out[take] = ss[take]
    return panel, fs_out, ss_out


# --------------------------------------------------------------------------------------------
# check_reflection, vectorised for CrystFEL's one-Gaussian spectrum
# --------------------------------------------------------------------------------------------


def _safe_khalf(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -(x * x + y * y + z * z) / (2.0 * z)
    return np.where(z > 0.0, np.nan, out)


def _excitation(
    xl: np.ndarray,
    yl: np.ndarray,
    zl: np.ndarray,
    wavelength: float,
    bandwidth: float,
    profile_radius: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Partiality and kpred of ``check_reflection`` for the Gaussian spectrum.

    Parameters
    ----------
    xl, yl, zl : np.ndarray
        Reciprocal-lattice points in m^-1.
    wavelength : float
        m.
    bandwidth : float
        Fractional sigma of the Gaussian spectrum.
    profile_radius : float or np.ndarray
        R in m^-1 (broadcast against the points).

    Returns
    -------
    partiality, kpred : np.ndarray
        ``partiality`` is 0 where CrystFEL's weight underflows; ``kpred`` (m^-1) is the
        wavenumber the spot is placed with (``mean_kpred`` of the single Gaussian).
    """
    kcen = 1.0 / wavelength
    sigma = bandwidth / wavelength
    r = np.abs(np.asarray(profile_radius, dtype=np.float64))

    x = xl
    y = yl
    z = zl + kcen
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norm = 1.0 / np.sqrt(x * x + y * y + z * z)
        x = x * norm
        y = y * norm
        z = z * norm
        sigma_proj = (1 - z) * sigma
        w0 = np.where(r > 0, 1.0 / (r * r), np.inf)
        w1 = 1.0 / (sigma_proj * sigma_proj)
        x = x * kcen
        y = y * kcen
        z = z * kcen
        z = z - kcen

        laue = np.isinf(w0) | (w0 / w1 <= DBL_MIN)
        mono = ~laue & (w1 / w0 <= DBL_MIN)

        khalf_l = _safe_khalf(xl, yl, zl)
        zlp0 = np.where(zl < 0, zl, 0.0)
        e2 = (x - xl) * (x - xl) + (y - yl) * (y - yl) + (z - zl) * (z - zl)
        ws = w0 + w1
        xw = (xl * w0 + x * w1) / ws
        yw = (yl * w0 + y * w1) / ws
        zw = (zlp0 * w0 + z * w1) / ws
        kpred = np.where(laue, kcen, np.where(mono, khalf_l, _safe_khalf(xw, yw, zw)))
        exerr2 = np.where(laue | mono, (kcen - khalf_l) ** 2, e2)

        sigma2 = r * r + sigma_proj * sigma_proj
        exponent = -0.5 * exerr2 / sigma2
        overlap = np.where(
            exponent > -700.0,
            np.exp(exponent) * np.sqrt(2 * math.pi * r * r) / np.sqrt(2 * math.pi * sigma2),
            0.0,
        )
        # mean_variance() with one sample of weight `overlap` (the Gaussian's area is 1):
        # skipped below DBL_MIN, and the mean is computed as (x*w)/w, like the C code.
        used = overlap >= DBL_MIN
        partiality = np.where(used, overlap, 0.0)
        kpred = np.where(used, (kpred * overlap) / overlap, 0.0)
        # Revert the 'Lorentz' factor: M2_k / sumw_k = sigma^2 for one Gaussian of area 1.
        partiality = partiality * np.sqrt((r * r + sigma * sigma) / (r * r))
    partiality = np.where(np.isnan(partiality), 0.0, partiality)
    return partiality, kpred


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
    at ``r_hi`` get +inf.
    """
    p_lo, _ = _excitation(xl, yl, zl, wavelength, bandwidth, float(r_lo))
    p_hi, _ = _excitation(xl, yl, zl, wavelength, bandwidth, float(r_hi))
    out = np.where(p_hi < MIN_PARTIALITY, np.inf, float(r_lo))
    todo = np.flatnonzero((p_lo < MIN_PARTIALITY) & ~(p_hi < MIN_PARTIALITY))
    if todo.size:
        x, y, z = xl[todo], yl[todo], zl[todo]
        lo = np.full(todo.size, float(r_lo))
        hi = np.full(todo.size, float(r_hi))
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            p, _ = _excitation(x, y, z, wavelength, bandwidth, mid)
            passes = ~(p < MIN_PARTIALITY)
            hi = np.where(passes, mid, hi)
            lo = np.where(passes, lo, mid)
        out[todo] = hi
    return out


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
    recip = reciprocal_matrix(astar, bstar, cstar)
    h = np.asarray(h, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)  # noqa: E741
    xl = h * recip[0, 0] + k * recip[1, 0] + l * recip[2, 0]
    yl = h * recip[0, 1] + k * recip[1, 1] + l * recip[2, 1]
    zl = h * recip[0, 2] + k * recip[1, 2] + l * recip[2, 2]
    wavelength = photon_energy_to_wavelength(photon_energy_eV)
    out = threshold_radius(xl, yl, zl, wavelength, bandwidth or 0.0, r_lo * 1e9, r_hi * 1e9)
    return out * 1e-9


def _excitation_bound(wavelength: float, bandwidth: float, profile_radius: float) -> float | None:
    """Distance from the Ewald sphere (m^-1) beyond which no reflection can pass the cut.

    In the general case of ``check_reflection`` the excitation error is the radial distance
    ``|q + k z| - k`` and the weight is at most
    ``exp(-0.5 e^2 / (R^2 + 4 sigma^2)) * sqrt(1 + sigma^2 / R^2)``; solving for the cut
    gives a safe pre-filter (with 5 % margin).  None when the corner cases could apply.
    """
    sigma = bandwidth / wavelength
    r = abs(profile_radius)
    if not (r > 0.0 and math.isfinite(sigma)) or sigma > 1e3 * r:
        return None
    fac = 1.0 + sigma * sigma / (r * r)
    e2 = 2.0 * (r * r + 4.0 * sigma * sigma) * (-math.log(MIN_PARTIALITY) + 0.5 * math.log(fac))
    return 1.05 * math.sqrt(e2)


def _candidate_indices(
    recip: np.ndarray, limits: tuple[int, int, int], kcen: float, bound: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miller indices within ``limits`` that may lie within ``bound`` of the Ewald sphere.

    Same result as scanning the whole box (the exact distance test is applied afterwards),
    but for each (h, k) only the l values near the sphere are generated: with
    ``u = h a* + k b* + kcen z``, ``|u + l c*|^2`` is a quadratic in l, and the shell
    ``(kcen - bound)^2 <= |u + l c*|^2 <= (kcen + bound)^2`` gives at most two l intervals
    (widened by one for rounding).  Order: h, then k, then l ascending.
    """
    hmax, kmax, lmax = limits
    if bound is None:
        hh, kk, ll = np.meshgrid(
            np.arange(-hmax, hmax + 1),
            np.arange(-kmax, kmax + 1),
            np.arange(-lmax, lmax + 1),
            indexing="ij",
        )
        return hh.ravel(), kk.ravel(), ll.ravel()
    hh, kk = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), indexing="ij")
    hh = hh.ravel()
    kk = kk.ravel()
    u = hh[:, None] * recip[0] + kk[:, None] * recip[1]
    u[:, 2] += kcen
    c = recip[2]
    qa = float(c @ c)
    qb = 2.0 * (u @ c)
    qc = np.einsum("ij,ij->i", u, u)

    def roots(target: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        disc = qb * qb - 4.0 * qa * (qc - target)
        sq = np.sqrt(np.maximum(disc, 0.0))
        return disc > 0, (-qb - sq) / (2.0 * qa), (-qb + sq) / (2.0 * qa)

    has_o, lo_o, hi_o = roots((kcen + bound) ** 2)
    has_i, lo_i, hi_i = roots(max(kcen - bound, 0.0) ** 2)
    a0 = np.clip(np.ceil(lo_o) - 1, -lmax, lmax + 1)
    b1 = np.clip(np.floor(hi_o) + 1, -lmax - 1, lmax)
    a1 = np.where(has_i, np.clip(np.floor(lo_i) + 1, -lmax - 1, lmax), b1)
    b0 = np.where(has_i, np.clip(np.ceil(hi_i) - 1, -lmax, lmax + 1), b1 + 1)
    # Two intervals per (h, k): [a0, a1] and [b0, b1] (the second empty without an inner hit).
    starts = np.stack([a0, np.maximum(b0, a1 + 1)], axis=1).astype(np.int64)
    ends = np.stack([a1, b1], axis=1).astype(np.int64)
    counts = np.where(has_o[:, None], np.maximum(ends - starts + 1, 0), 0)
    total = int(counts.sum())
    seg = np.repeat(np.arange(counts.size), counts.ravel())
    first = np.cumsum(counts.ravel()) - counts.ravel()
    l_out = starts.ravel()[seg] + (np.arange(total) - first[seg])
    pair = seg // 2
    return hh[pair], kk[pair], l_out


def _forbidden(h: np.ndarray, k: np.ndarray, l: np.ndarray, centering: str) -> np.ndarray:  # noqa: E741
    """``forbidden_reflection``: systematic absences of the lattice centring."""
    c = (centering or "P").upper()
    if c == "A":
        return (k + l) % 2 != 0
    if c == "B":
        return (h + l) % 2 != 0
    if c == "C":
        return (h + k) % 2 != 0
    if c == "I":
        return (h + k + l) % 2 != 0
    if c == "F":
        return ((h + k) % 2 != 0) | ((h + l) % 2 != 0) | ((k + l) % 2 != 0)
    if c == "H":
        return (-h + k + l) % 3 != 0
    return np.zeros(h.shape, dtype=bool)


def predict_reflections(
    astar: Any,
    bstar: Any,
    cstar: Any,
    photon_energy_eV: float,
    detector: Any,
    *,
    profile_radius: float | None,
    bandwidth: float | None,
    det_shift_mm: tuple[float, float] = (0.0, 0.0),
    max_one_over_d: float = math.inf,
    centering: str = "P",
    header_values: Mapping[str, float] | None = None,
) -> Predictions:
    """Predict one crystal's reflections like indexamajig's ``predict_to_res``.

    Parameters
    ----------
    astar, bstar, cstar : array_like
        (3,) reciprocal basis vectors in nm^-1, lab frame (stream ``astar = ...`` lines).
    photon_energy_eV : float
        Photon energy of the frame in eV (stream ``photon_energy_eV``).
    detector : streamfilter.geometry.Detector
        Panels with ``corner_x, corner_y`` (px), ``fs, ss`` (lab vectors), ``res`` (px/m),
        ``coffset`` (m), ``width, height``; ``detector.clen_m()`` in m.
    profile_radius : float or None
        Crystal's ``profile_radius`` in nm^-1 (None: 0).
    bandwidth : float or None
        ``beam_bandwidth`` (fraction, the sigma of CrystFEL's Gaussian spectrum in units of
        k).  None: 0.
    det_shift_mm : (float, float)
        ``predict_refine/det_shift`` x, y in mm.
    max_one_over_d : float
        Cut in m^-1 (indexamajig: diffraction_resolution_limit + ``--push-res``; the default
        push-res is infinite).
    centering : str
        Lattice centring letter for the systematic absences.
    header_values : mapping, optional
        The frame's HDF5 header values, when ``clen`` or ``detector_shift_x/y`` name one.

    Returns
    -------
    Predictions
        Sorted by (h, k, l).
    """
    recip = reciprocal_matrix(astar, bstar, cstar)
    wavelength = photon_energy_to_wavelength(photon_energy_eV)
    r = (profile_radius or 0.0) * 1e9
    bw = bandwidth or 0.0
    shift_m = (det_shift_mm[0] * 1e-3, det_shift_mm[1] * 1e-3)
    geoms = _panel_geoms(detector, header_values)

    real = np.linalg.inv(recip).T  # rows a, b, c in m
    mres = min(_max_resolution(geoms, wavelength), max_one_over_d)
    hmax, kmax, lmax = (min(int(mres * np.linalg.norm(v)), 511) for v in real)

    bound = _excitation_bound(wavelength, bw, r)
    h, k, l = _candidate_indices(recip, (hmax, kmax, lmax), 1.0 / wavelength, bound)  # noqa: E741
    keep = ~((h == 0) & (k == 0) & (l == 0)) & ~_forbidden(h, k, l, centering)
    h, k, l = h[keep], k[keep], l[keep]  # noqa: E741

    xl = h * recip[0, 0] + k * recip[1, 0] + l * recip[2, 0]
    yl = h * recip[0, 1] + k * recip[1, 1] + l * recip[2, 1]
    zl = h * recip[0, 2] + k * recip[1, 2] + l * recip[2, 2]
    one_over_d = np.sqrt(xl * xl + yl * yl + zl * zl)
    keep = ~(one_over_d > max_one_over_d)
    if bound is not None:
        kcen = 1.0 / wavelength
        dist = np.sqrt(xl * xl + yl * yl + (zl + kcen) ** 2) - kcen
        keep &= np.abs(dist) <= bound

    part, kpred = _excitation(xl[keep], yl[keep], zl[keep], wavelength, bw, r)
    excited = ~(part < MIN_PARTIALITY)
    sel = np.flatnonzero(keep)[excited]
    part, kpred = part[excited], kpred[excited]

    panel, fs, ss = _locate(xl[sel], yl[sel], zl[sel] + kpred, geoms, shift_m)
    on = panel >= 0
    sel, part, kpred = sel[on], part[on], kpred[on]
    # candidates come in h, then k, then l ascending order: CrystFEL's RefList order.
    return Predictions(
        h=h[sel].astype(np.int32),
        k=k[sel].astype(np.int32),
        l=l[sel].astype(np.int32),
        panel=panel[on],
        fs=fs[on],
        ss=ss[on],
        one_over_d=one_over_d[sel],
        partiality=part,
        kpred=kpred,
    )


def positions_for(
    h: Any,
    k: Any,
    l: Any,  # noqa: E741
    astar: Any,
    bstar: Any,
    cstar: Any,
    photon_energy_eV: float,
    detector: Any,
    det_shift_mm: tuple[float, float] = (0.0, 0.0),
    *,
    profile_radius: float | None = None,
    bandwidth: float | None = None,
    header_values: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted position of given Miller indices (no excitation-error cut).

    With ``profile_radius`` (nm^-1) and ``bandwidth`` the spot is placed with CrystFEL's
    ``kpred`` exactly as :func:`predict_reflections` does; without them with k = 1/lambda
    (the plain Ewald-sphere construction, the same to ~1e-6 px for narrow bandwidths).

    Returns
    -------
    panel, fs, ss : np.ndarray
        Panel index (-1 where the ray misses every panel) and panel-relative position.
    """
    recip = reciprocal_matrix(astar, bstar, cstar)
    wavelength = photon_energy_to_wavelength(photon_energy_eV)
    h = np.asarray(h, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)  # noqa: E741
    xl = h * recip[0, 0] + k * recip[1, 0] + l * recip[2, 0]
    yl = h * recip[0, 1] + k * recip[1, 1] + l * recip[2, 1]
    zl = h * recip[0, 2] + k * recip[1, 2] + l * recip[2, 2]
    if profile_radius is not None and bandwidth is not None:
        _, kpred = _excitation(xl, yl, zl, wavelength, bandwidth, profile_radius * 1e9)
    else:
        kpred = np.full(xl.shape, 1.0 / wavelength)
    shift_m = (det_shift_mm[0] * 1e-3, det_shift_mm[1] * 1e-3)
    return _locate(xl, yl, zl + kpred, _panel_geoms(detector, header_values), shift_m)
