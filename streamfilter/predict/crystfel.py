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

from streamfilter.crystal import centring_absent

__all__ = [
    "Predictions",
    "PredictionGeometry",
    "prediction_geometry",
    "predict_reflections",
    "positions_for",
    "photon_energy_to_wavelength",
    "reciprocal_matrix",
    "MIN_PARTIALITY",
]

# CrystFEL's constants (libcrystfel/src/utils.h), not CODATA 2018: the wavelength must be the
# one indexamajig used to the last bit.
PLANCK = 6.62606896e-34
C_VACUO = 299792458.0
ELECTRON_CHARGE = 1.6021773e-19
DBL_MIN = np.finfo(np.float64).tiny

#: ``check_reflection`` drops reflections whose Gaussian overlap is below this value.
MIN_PARTIALITY = math.exp(-0.5 * 1.7 * 1.7)

# Floating-point warnings are off in the entry points (_predict, positions_for,
# threshold_radius, ...): the corner cases of check_reflection divide by zero and overflow
# on purpose.  The helpers they call (_ewald, _excite, _overlap, _locate, ...) assume it,
# rather than each paying for its own np.errstate (~2 us a time).
_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}


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


@dataclass
class PredictionGeometry:
    """``create_detgeom`` of a detector for one frame's header values: the panels'
    :class:`_PanelGeom` and, for :func:`_locate`, the same numbers as arrays (one row per
    panel, geometry order).

    ``columns`` is ``[corner | fs | ss]`` per panel (P, 3, 3), pixels; ``pitch`` (P,) m;
    ``width``, ``height`` (P, 1) pixels; ``max_resolution`` memoises
    :func:`_max_resolution` by wavelength; ``inverse`` is the inverse of ``columns``.
    """

    panels: list[_PanelGeom]
    columns: np.ndarray
    pitch: np.ndarray
    width: np.ndarray
    height: np.ndarray
    max_resolution: dict[float, float]
    inverse: np.ndarray | None  # of ``columns`` (None: a panel's matrix is singular)

    def may_hit(
        self, x: np.ndarray, y: np.ndarray, zk: np.ndarray, det_shift_m: tuple[float, float]
    ) -> np.ndarray:
        """bool: the rays ``(x, y, zk)`` that may hit a panel; every other ray misses them
        all by a pixel or more.  A cheap pre-filter for :func:`_locate`, which decides.

        Solves with the panels' inverse matrices (the detector shift, which only moves
        the corner column, by Sherman-Morrison), rounding errors ~1e-12 relative.  A ray
        that meets a panel has ``v = (1/mu, fs/mu, ss/mu)`` with ``v0 >= |v| / (1 + w + h)``,
        so its fs and ss come out here within far less than the pixel of margin.
        """
        n = x.shape[0]
        inverse = self.inverse
        if inverse is None or n < 2:  # (a singular panel: left to _locate's solve)
            return np.ones(n, dtype=bool)
        v = inverse @ np.stack([x, y, zk])  # (P, 3, n)
        if det_shift_m[0] or det_shift_m[1]:
            shift = np.zeros((len(self.panels), 3))
            shift[:, 0] = det_shift_m[0] / self.pitch
            shift[:, 1] = det_shift_m[1] / self.pitch
            a = np.einsum("pij,pj->pi", inverse, shift)  # inverse @ shift, per panel
            if not np.all(np.abs(1.0 + a[:, 0]) > 1e-3):  # the shift nearly makes a panel
                return np.ones(n, dtype=bool)  # singular: everything to the exact solve
            v = v - (a / (1.0 + a[:, :1]))[:, :, None] * v[:, :1, :]
        v0 = v[:, 0]
        fs, ss = v[:, 1] / v0, v[:, 2] / v0
        near = (v0 > 0) & (fs > -1.0) & (fs < self.width + 1.0)
        near &= (ss > -1.0) & (ss < self.height + 1.0)
        near = near.any(axis=0)
        if np.count_nonzero(near) == 1:  # keep LAPACK on its path for several rays
            near[np.flatnonzero(~near)[0]] = True
        return near

    def locate_matrices(self, det_shift_m: tuple[float, float]) -> np.ndarray:
        """``[corner + det_shift | fs | ss]`` per panel, the shift in pixels (C's operations:
        ``cnx + det_shift_x / pixel_pitch``)."""
        mats = self.columns.copy()
        mats[:, 0, 0] += det_shift_m[0] / self.pitch
        mats[:, 1, 0] += det_shift_m[1] / self.pitch
        return mats


def prediction_geometry(
    detector: Any, header_values: Mapping[str, float] | None = None
) -> PredictionGeometry:
    """``create_detgeom``: corners in pixels, the whole-detector shift applied to them, and
    ``cnz = (clen + coffset) / pixel_pitch``.

    The same for every crystal of a frame (and of a run, unless ``clen`` or the detector
    shift come from per-frame header values): build it once and pass it to
    :func:`predict_reflections` / :func:`positions_for` as ``geometry``.
    """
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
    columns = np.array(
        [[[g.cnx, g.fsv[0], g.ssv[0]], [g.cny, g.fsv[1], g.ssv[1]], [g.cnz, g.fsv[2], g.ssv[2]]]
         for g in out], dtype=np.float64,
    ).reshape(len(out), 3, 3)  # fmt: skip
    geometry = PredictionGeometry(
        panels=out,
        columns=columns,
        pitch=np.array([g.pixel_pitch for g in out], dtype=np.float64),
        width=np.array([g.w for g in out], dtype=np.int64)[:, None],
        height=np.array([g.h for g in out], dtype=np.int64)[:, None],
        max_resolution={},
        inverse=None,
    )
    try:
        geometry.inverse = np.linalg.inv(columns)
    except np.linalg.LinAlgError:
        pass
    for a in (geometry.columns, geometry.pitch, geometry.width, geometry.height, geometry.inverse):
        if a is not None:
            a.flags.writeable = False  # shared by every crystal
    return geometry


def _max_resolution(geoms: PredictionGeometry | list[_PanelGeom], wavelength: float) -> float:
    """``detgeom_max_resolution``: largest |q| (m^-1) over all panel corners."""
    memo = geoms.max_resolution if isinstance(geoms, PredictionGeometry) else {}
    best = memo.get(wavelength)
    if best is not None:
        return best
    best = 0.0
    for g in geoms.panels if isinstance(geoms, PredictionGeometry) else geoms:
        f0, f1, f2 = (float(v) for v in g.fsv)
        s0, s1, s2 = (float(v) for v in g.ssv)
        for fs, ss in ((0, 0), (0, g.h), (g.w, 0), (g.w, g.h)):
            xs = (g.cnx + fs * f0 + ss * s0) * g.pixel_pitch
            ys = (g.cny + fs * f1 + ss * s1) * g.pixel_pitch
            zs = (g.cnz + fs * f2 + ss * s2) * g.pixel_pitch
            fac = wavelength * math.sqrt(xs * xs + ys * ys + zs * zs)
            r = (xs / fac, ys / fac, zs / fac - 1.0 / wavelength)
            best = max(best, math.sqrt(r[0] ** 2 + r[1] ** 2 + r[2] ** 2))
    if len(memo) >= 64:
        memo.clear()
    memo[wavelength] = best
    return best


def _locate(
    x: np.ndarray,
    y: np.ndarray,
    zk: np.ndarray,
    geometry: PredictionGeometry,
    det_shift_m: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``locate_peak``: first panel hit by the rays ``(x, y, zk)``; -1 where none.

    Solves ``[corner | fs | ss] . (1/mu, fs/mu, ss/mu) = ray`` for every panel, as CrystFEL
    does with ``gsl_linalg_HH_solve``.
    """
    n = x.shape[0]
    if n == 0 or not geometry.panels:
        return np.full(n, -1, dtype=np.int64), np.full(n, -1.0), np.full(n, -1.0)
    # one LAPACK solve per panel (batched), each with all the rays as right-hand sides
    v = np.linalg.solve(geometry.locate_matrices(det_shift_m), np.stack([x, y, zk]))
    one_over_mu = v[:, 0]
    fs = v[:, 1] / one_over_mu
    ss = v[:, 2] / one_over_mu
    ok = (one_over_mu >= 0.0) & (fs >= 0.0) & (fs < geometry.width)
    ok &= (ss >= 0.0) & (ss < geometry.height)
    first = ok.argmax(axis=0)  # the first panel in geometry order takes the reflection
    rays = np.arange(n)
    hit = ok[first, rays]
    panel = np.where(hit, first, -1)
    fs_out = np.where(hit, fs[first, rays], -1.0)
    ss_out = np.where(hit, ss[first, rays], -1.0)
    return panel, fs_out, ss_out


# --------------------------------------------------------------------------------------------
# check_reflection, vectorised for CrystFEL's one-Gaussian spectrum
# --------------------------------------------------------------------------------------------


def _safe_khalf(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    out = -(x * x + y * y + z * z) / (2.0 * z)
    return np.where(z > 0.0, np.nan, out)


@dataclass
class _Ewald:
    """The part of ``check_reflection`` that does not depend on the profile radius R.

    ``x, y, z`` are the points projected onto the Ewald sphere of the central wavenumber
    (m^-1, ``z`` already shifted by ``-kcen``), ``sigma_proj`` the projected bandwidth (m^-1),
    ``sp2 = sigma_proj**2``, ``w1 = 1 / sp2`` and ``e2`` the squared distance from the point
    to its projection (the general case's excitation error squared).
    """

    xl: np.ndarray
    yl: np.ndarray
    zl: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    sp2: np.ndarray
    w1: np.ndarray
    e2: np.ndarray
    kcen: float
    sigma: float

    def take(self, index: np.ndarray) -> _Ewald:
        arrays = (self.xl, self.yl, self.zl, self.x, self.y, self.z, self.sp2, self.w1, self.e2)
        return _Ewald(*(a[index] for a in arrays), kcen=self.kcen, sigma=self.sigma)


def _ewald(
    xl: np.ndarray, yl: np.ndarray, zl: np.ndarray, wavelength: float, bandwidth: float
) -> _Ewald:
    """R-independent terms of ``check_reflection`` (the C code's operations, in its order)."""
    kcen = 1.0 / wavelength
    sigma = bandwidth / wavelength
    z = zl + kcen
    norm = 1.0 / np.sqrt(xl * xl + yl * yl + z * z)
    x = xl * norm
    y = yl * norm
    z = z * norm
    sigma_proj = (1 - z) * sigma
    sp2 = sigma_proj * sigma_proj
    w1 = 1.0 / sp2
    x = x * kcen
    y = y * kcen
    z = z * kcen
    z = z - kcen
    e2 = (x - xl) * (x - xl) + (y - yl) * (y - yl) + (z - zl) * (z - zl)
    return _Ewald(xl, yl, zl, x, y, z, sp2, w1, e2, kcen, sigma)


def _overlap(
    exerr2: np.ndarray, sp2: np.ndarray, r: np.ndarray | float, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R-dependent tail of ``check_reflection`` for excitation errors ``exerr2`` (m^-2).

    Returns the partiality (0 where the weight underflows or is NaN), the Gaussian overlap
    and the bool "used" mask (``overlap >= DBL_MIN``).
    """
    rr = r * r
    sigma2 = rr + sp2
    exponent = -0.5 * exerr2 / sigma2
    overlap = np.where(
        exponent > -700.0,
        np.exp(exponent) * np.sqrt(2 * math.pi * r * r) / np.sqrt(2 * math.pi * sigma2),
        0.0,
    )
    # mean_variance() with one sample of weight `overlap` (the Gaussian's area is 1):
    # skipped below DBL_MIN.
    used = overlap >= DBL_MIN
    partiality = np.where(used, overlap, 0.0)
    # Revert the 'Lorentz' factor: M2_k / sumw_k = sigma^2 for one Gaussian of area 1.
    partiality = partiality * np.sqrt((rr + sigma * sigma) / rr)
    partiality = np.where(np.isnan(partiality), 0.0, partiality)
    return partiality, overlap, used


def _excite(
    ew: _Ewald, profile_radius: float | np.ndarray, want_kpred: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Partiality and kpred of ``check_reflection`` at profile radius R (m^-1).

    The Laue (R -> infinity relative to the bandwidth) and monochromatic corner cases of
    the C code are evaluated only when some point is in them; otherwise the general case
    gives the same numbers with fewer operations.
    """
    r = np.abs(np.asarray(profile_radius, dtype=np.float64))
    kcen = ew.kcen
    w1 = ew.w1
    w0 = np.where(r > 0, 1.0 / (r * r), np.inf)
    laue = np.isinf(w0) | (w0 / w1 <= DBL_MIN)
    mono = ~laue & (w1 / w0 <= DBL_MIN)
    special = laue | mono
    corner = bool(np.any(special))
    if corner:
        khalf_l = _safe_khalf(ew.xl, ew.yl, ew.zl)
        exerr2 = np.where(special, (kcen - khalf_l) ** 2, ew.e2)
    else:
        exerr2 = ew.e2
    partiality, overlap, used = _overlap(exerr2, ew.sp2, r, ew.sigma)
    if not want_kpred:
        return partiality, None
    zlp0 = np.where(ew.zl < 0, ew.zl, 0.0)
    ws = w0 + w1
    xw = (ew.xl * w0 + ew.x * w1) / ws
    yw = (ew.yl * w0 + ew.y * w1) / ws
    zw = (zlp0 * w0 + ew.z * w1) / ws
    kpred = _safe_khalf(xw, yw, zw)
    if corner:
        kpred = np.where(laue, kcen, np.where(mono, khalf_l, kpred))
    # the mean is computed as (x*w)/w, like the C code
    kpred = np.where(used, (kpred * overlap) / overlap, 0.0)
    return partiality, kpred


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
    with np.errstate(**_QUIET):
        partiality, kpred = _excite(_ewald(xl, yl, zl, wavelength, bandwidth), profile_radius)
    assert kpred is not None
    return partiality, kpred


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

    A superset of the points of the index box that pass the exact distance test (applied
    afterwards), generated without scanning the box.  One index (the one with the largest
    limit, ``s``) is solved for: along each line ``u + t s*`` of the other two indices,
    ``|u + t s* + kcen z|^2`` is a quadratic in t, and the shell
    ``(kcen - bound)^2 <= |.|^2 <= (kcen + bound)^2`` gives at most two t intervals.  They
    are widened by ``1e-3 + 1e-5 max|t_centre|`` index units, far more than the rounding of
    the roots (relative error ~1e-8 at tangency) and of the exact test.  About 1 line in 2
    meets the shell inside the box, and a few thousand candidates come out instead of the
    ~500 000 points of the box CrystFEL scans.

    Returns
    -------
    h, k, l : np.ndarray
        int64, in no particular order (the full box, in h, k, l order, if ``bound`` is None).
    """
    if bound is None:
        hmax, kmax, lmax = limits
        hh, kk, ll = np.meshgrid(
            np.arange(-hmax, hmax + 1),
            np.arange(-kmax, kmax + 1),
            np.arange(-lmax, lmax + 1),
            indexing="ij",
        )
        return hh.ravel(), kk.ravel(), ll.ravel()
    s = 2 if limits[2] >= max(limits) else limits.index(max(limits))  # the first largest
    i, j = (a for a in range(3) if a != s)
    ni = np.arange(-limits[i], limits[i] + 1, dtype=np.float64)
    nj = np.arange(-limits[j], limits[j] + 1, dtype=np.float64)
    rows = recip.tolist()  # Python floats: the scalar arithmetic below is plain IEEE
    c = rows[s]
    qa = _dot(c, c)
    # w = ni a_i + nj a_j + kcen z (from the sphere's centre): the line w + t c is closest to
    # the centre at t = -(w . c) / |c|^2, at squared distance |w x c|^2 / |c|^2; in index
    # units d2 = |w x c|^2 / |c|^4 is a quadratic form in (ni, nj).
    ci, cj, c0 = _cross(rows[i], c), _cross(rows[j], c), _cross((0.0, 0.0, kcen), c)
    q2 = qa * qa
    f_i = (ni * ((_dot(ci, ci) * ni + 2.0 * _dot(ci, c0)) / q2) + _dot(c0, c0) / q2)[:, None]
    g_j = nj * ((_dot(cj, cj) * nj + 2.0 * _dot(cj, c0)) / q2)
    d2 = (f_i + (ni * (2.0 * _dot(ci, cj) / q2))[:, None] * nj + g_j).ravel()
    ci_c, cj_c, c0_c = -_dot(rows[i], c) / qa, -_dot(rows[j], c) / qa, -kcen * c[2] / qa
    centre = ((ni * ci_c)[:, None] + (nj * cj_c + c0_c)).ravel()
    margin = 1e-3 + 1e-5 * (abs(ci_c) * limits[i] + abs(cj_c) * limits[j] + abs(c0_c))
    lim = limits[s]
    # squared half-widths of the outer and inner root intervals, in index units
    hw2_out = (kcen + bound) ** 2 / qa - d2
    hw_out = np.sqrt(np.maximum(hw2_out, 0.0))
    # lines whose outer interval (widened) meets [-lim, lim]
    hit = np.flatnonzero((np.abs(centre) - hw_out <= lim + margin) & (hw2_out > -margin * margin))
    centre, hw_out = centre[hit], hw_out[hit]
    lo = np.maximum(np.ceil(centre - hw_out - margin), -lim)
    hi = np.minimum(np.floor(centre + hw_out + margin), lim)
    hw_in = np.sqrt(np.maximum(max(kcen - bound, 0.0) ** 2 / qa - d2[hit], 0.0))
    # [lo, a1] and [b0, hi]: the outer interval minus the inner one (no index twice)
    a1 = np.minimum(np.floor(centre - hw_in + margin), hi)
    b0 = np.maximum(np.ceil(centre + hw_in - margin), np.maximum(a1 + 1, lo))
    starts = np.concatenate([lo, b0]).astype(np.int64)
    counts = np.concatenate([a1 - lo, hi - b0]).astype(np.int64) + 1
    used = np.flatnonzero(counts > 0)
    starts, counts = starts[used], counts[used]
    seg = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    t_out = starts[seg] + (np.arange(seg.size) - first[seg])
    pair = np.concatenate([hit, hit])[used][seg]
    out = [np.empty(0, np.int64)] * 3
    out[s] = t_out
    out[i] = pair // nj.size - limits[i]
    out[j] = pair % nj.size - limits[j]
    return out[0], out[1], out[2]


def _cross(a: Any, b: Any) -> tuple[float, float, float]:
    """a x b of 3-sequences of Python floats."""
    a0, a1, a2 = a
    b0, b1, b2 = b
    return (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0)


def _dot(a: Any, b: Any) -> float:
    """a . b of 3-sequences of Python floats."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


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
    geometry: PredictionGeometry | None = None,
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
    geometry : PredictionGeometry, optional
        :func:`prediction_geometry` of ``detector`` and ``header_values``, when the caller
        keeps one (otherwise it is built here).

    Returns
    -------
    Predictions
        Sorted by (h, k, l).
    """
    geometry = geometry or prediction_geometry(detector, header_values)
    return _predict(
        astar, bstar, cstar, photon_energy_eV, geometry, profile_radius, bandwidth, det_shift_mm,
        max_one_over_d, centering,
    )[0]  # fmt: skip


def _predict(
    astar: Any,
    bstar: Any,
    cstar: Any,
    photon_energy_eV: float,
    geoms: PredictionGeometry,
    profile_radius: float | None,
    bandwidth: float | None,
    det_shift_mm: tuple[float, float],
    max_one_over_d: float,
    centering: str,
) -> tuple[Predictions, _Ewald]:
    """:func:`predict_reflections`, plus the R-independent ``check_reflection`` terms of the
    predicted reflections (in the same order), for
    :func:`streamfilter.predict.threshold._threshold_radius_of_predicted`."""
    with np.errstate(**_QUIET):
        recip = reciprocal_matrix(astar, bstar, cstar)
        wavelength = photon_energy_to_wavelength(photon_energy_eV)
        r = (profile_radius or 0.0) * 1e9
        bw = bandwidth or 0.0
        shift_m = (det_shift_mm[0] * 1e-3, det_shift_mm[1] * 1e-3)

        real = np.ascontiguousarray(np.linalg.inv(recip).T)  # rows a, b, c in m
        mres = min(_max_resolution(geoms, wavelength), max_one_over_d)
        # |a| as np.linalg.norm computes it (sqrt of the dot product), without its overhead
        hmax, kmax, lmax = (min(int(mres * math.sqrt(v.dot(v))), 511) for v in real)

        bound = _excitation_bound(wavelength, bw, r)
        h, k, l = _candidate_indices(recip, (hmax, kmax, lmax), 1.0 / wavelength, bound)  # noqa: E741
        keep = (h != 0) | (k != 0) | (l != 0)
        if (centering or "P").upper() != "P":
            keep &= ~centring_absent(h, k, l, centering)
        h, k, l = h[keep], k[keep], l[keep]  # noqa: E741

        # h * recip[0, 0] converts h to float64 first: done once here, the same numbers
        hf, kf, lf = h.astype(np.float64), k.astype(np.float64), l.astype(np.float64)
        xl = hf * recip[0, 0] + kf * recip[1, 0] + lf * recip[2, 0]
        yl = hf * recip[0, 1] + kf * recip[1, 1] + lf * recip[2, 1]
        zl = hf * recip[0, 2] + kf * recip[1, 2] + lf * recip[2, 2]
        one_over_d = np.sqrt(xl * xl + yl * yl + zl * zl)
        keep = ~(one_over_d > max_one_over_d)
        if bound is not None:
            kcen = 1.0 / wavelength
            dist = np.sqrt(xl * xl + yl * yl + (zl + kcen) ** 2) - kcen
            keep &= np.abs(dist) <= bound

        ew = _ewald(xl[keep], yl[keep], zl[keep], wavelength, bw)
        part, kpred = _excite(ew, r)
        assert kpred is not None
        in_ew = np.flatnonzero(~(part < MIN_PARTIALITY))  # excited: index into ew
        sel = np.flatnonzero(keep)[in_ew]  # the same reflections: index into h, k, l
        zk = zl[sel] + kpred[in_ew]
        # About half the excited reflections miss the detector: left out of the exact solve.
        # LAPACK's solve (OpenBLAS) gives each ray the same bits whichever other rays are
        # solved with it, as long as there are at least two (one takes another code path;
        # may_hit never leaves just one of several): tests/test_predict_fast.py checks it.
        near = geoms.may_hit(xl[sel], yl[sel], zk, shift_m)
        in_ew, sel, zk = in_ew[near], sel[near], zk[near]
        # CrystFEL's RefList order: h, then k, then l ascending, also for _locate, as the
        # whole-box scan of tests/test_predict.py (the plain algorithm) orders the rays.
        order = np.argsort((h[sel] * 1024 + k[sel]) * 1024 + l[sel])  # unique keys: |index| <= 511
        in_ew, sel, zk = in_ew[order], sel[order], zk[order]

        panel, fs, ss = _locate(xl[sel], yl[sel], zk, geoms, shift_m)
        on = panel >= 0
        sel, in_ew = sel[on], in_ew[on]
        pred = Predictions(
            h=h[sel].astype(np.int32),
            k=k[sel].astype(np.int32),
            l=l[sel].astype(np.int32),
            panel=panel[on],
            fs=fs[on],
            ss=ss[on],
            one_over_d=one_over_d[sel],
            partiality=part[in_ew],
            kpred=kpred[in_ew],
        )
        return pred, ew.take(in_ew)


def lab_vectors(h: Any, k: Any, l: Any, recip: np.ndarray) -> tuple[np.ndarray, ...]:  # noqa: E741
    """Scattering vectors (x, y, z) in m^-1, lab frame, of Miller indices: h a* + k b* + l c*
    with ``recip`` from :func:`reciprocal_matrix` (in CrystFEL's order of operations)."""
    h = np.asarray(h, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    l = np.asarray(l, dtype=np.float64)  # noqa: E741
    xl = h * recip[0, 0] + k * recip[1, 0] + l * recip[2, 0]
    yl = h * recip[0, 1] + k * recip[1, 1] + l * recip[2, 1]
    zl = h * recip[0, 2] + k * recip[1, 2] + l * recip[2, 2]
    return xl, yl, zl


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
    geometry: PredictionGeometry | None = None,
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
    xl, yl, zl = lab_vectors(h, k, l, reciprocal_matrix(astar, bstar, cstar))
    wavelength = photon_energy_to_wavelength(photon_energy_eV)
    if profile_radius is not None and bandwidth is not None:
        _, kpred = _excitation(xl, yl, zl, wavelength, bandwidth, profile_radius * 1e9)
    else:
        kpred = np.full(xl.shape, 1.0 / wavelength)
    shift_m = (det_shift_mm[0] * 1e-3, det_shift_mm[1] * 1e-3)
    with np.errstate(**_QUIET):
        geometry = geometry or prediction_geometry(detector, header_values)
        return _locate(xl, yl, zl + kpred, geometry, shift_m)
