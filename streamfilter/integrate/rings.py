"""CrystFEL-identical three-ring summation integration (``--integration=rings[-grad][-sat]``).

Reproduces ``integrate_rings_once``/``check_box``/``fit_bg``/``mean_var_area`` of CrystFEL
0.12's ``libcrystfel/src/integration.c`` number for number, vectorised over reflections:

* ring classes from integer pixel distances around the central pixel (:func:`ring_classes`);
* the whole square box must lie on the panel; a bad pixel in the peak disc rejects the
  reflection (0.12 rule); other bad pixels are excluded;
* the overlap mask (``make_BgMask``): background/ignored pixels inside any predicted peak
  disc and peak pixels shared with another disc are excluded;
* saturation (``max_adu`` or a per-pixel map) over the remaining peak and background pixels;
* fewer than 4 peak or 4 background pixels: rejected;
* flat mean background, or a least-squares plane (``-grad``) with CrystFEL's ``bg_ok``
  gradient check;
* ``I = sum_pk v - (a sum p + b sum q + c m)``;
  ``sigma = sqrt(sigma2_poisson + m * var_bg)`` with ``var_bg`` the population variance of
  the background pixels about their plain mean, and the Poisson term of CrystFEL >= 0.11.1;
* ``I < -5 sigma``: implausible, not written.

The arithmetic follows the C code: pixel values are float32 promoted to double, sums run in
CrystFEL's loop order (fs outer, ss inner) as sequential double additions, and the mean is
``sum / n`` then ``c * m``, so every printed ``%10.2f`` digit matches.  Reflections are
vectorised as ``(pixel, reflection)`` arrays: one row per peak or background pixel of the
box, in that loop order, one column per reflection (:func:`_rings_kernel`); a frame's boxes
are gathered straight from the panel arrays into that layout.

All radii are in pixels; the ring masks use ``int(r)`` as CrystFEL >= 0.10 does.  Intensities
are in ADU (no gain division).
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import (
    BACKGROUND,
    PEAK,
    Boxes,
    _disc_offsets,
    central_pixels,
    disc_cover,
    gather_boxes,
    gather_window,
    overlap_map,
    ring_classes,
)

__all__ = [
    "Status",
    "RingsResult",
    "CrystalResult",
    "integrate_rings",
    "integrate_frame_crystfel",
    "poisson_variance",
]


class Status(IntEnum):
    """Why a predicted reflection was (not) written."""

    OK = 0
    OFF_PANEL = 1  #: part of the square box is off the panel
    BAD_PEAK_PIXEL = 2  #: a bad pixel inside the peak disc (CrystFEL >= 0.12 rejects)
    TOO_FEW_PIXELS = 3  #: fewer than 4 peak or 4 background pixels remain
    SATURATED = 4  #: saturated and ``keep_saturated`` is off
    IMPLAUSIBLE = 5  #: I < -5 sigma(I)
    BG_GRADIENT = 6  #: ``-grad`` background steeper than CrystFEL's ``bg_ok`` allows


# plain ints for array comparisons (an IntEnum member goes through a slow path in numpy)
_OK = int(Status.OK)
_OFF_PANEL = int(Status.OFF_PANEL)
_BAD_PEAK_PIXEL = int(Status.BAD_PEAK_PIXEL)
_TOO_FEW_PIXELS = int(Status.TOO_FEW_PIXELS)
_SATURATED = int(Status.SATURATED)
_IMPLAUSIBLE = int(Status.IMPLAUSIBLE)
_BG_GRADIENT = int(Status.BG_GRADIENT)
#: a float64 zero that makes np.where's result float64 whatever the pixel type (NEP 50)
_ZERO = np.float64(0.0)


@dataclass
class RingsResult:
    """Per-reflection output of :func:`integrate_rings` (all N boxes, written or not).

    Attributes
    ----------
    I, sigma : np.ndarray
        float64 intensity and sigma(I) in ADU (NaN where not integrated).
    peak : np.ndarray
        float64 maximum raw value over the remaining peak and background pixels (ADU).
    background : np.ndarray
        float64 plain mean of the remaining background pixels (ADU).
    status : np.ndarray
        int8 :class:`Status` codes; ``Status.OK`` rows are the ones CrystFEL writes.
    saturated : np.ndarray
        bool, the reflection had a saturated pixel (counted in
        ``num_saturated_reflections`` whether or not it is kept).
    n_peak, n_background : np.ndarray
        int64 numbers of peak (m) and background (n) pixels used.
    """

    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    peak: np.ndarray
    background: np.ndarray
    status: np.ndarray
    saturated: np.ndarray
    n_peak: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_background: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def written(self) -> np.ndarray:
        """bool: rows CrystFEL writes (status OK)."""
        return self.status == _OK

    @property
    def n_saturated(self) -> int:
        """``num_saturated_reflections``: saturated boxes that passed the box checks."""
        return int(np.count_nonzero(self.saturated))

    @property
    def n_implausible(self) -> int:
        """``num_implausible_reflections``."""
        return int(np.count_nonzero(self.status == _IMPLAUSIBLE))


def poisson_variance(intensity: np.ndarray, adu_per_photon: np.ndarray | float) -> np.ndarray:
    """CrystFEL (>= 0.11.1) Poisson variance of a net intensity, in ADU^2.

    ``g * I``; ``g**2`` when ``|I / g| < 1``; ``-g * I`` when ``I < -g``.  At ``I == -g``
    exactly neither branch applies and the result is ``-g**2`` (negative), as in CrystFEL; we
    keep that quirk in this CrystFEL-identical mode (sigma may then be NaN, and a NaN sigma
    row is written because ``I < -5 sigma`` is false).
    """
    g = np.asarray(adu_per_photon, dtype=np.float64)
    i = np.asarray(intensity, dtype=np.float64)
    var = g * i
    var = np.where(np.abs(i / g) < 1.0, g * g, var)
    var = np.where(i < -g, -g * i, var)
    return var


def finish_result(
    intensity: np.ndarray,
    sigma: np.ndarray,
    peak: np.ndarray,
    background: np.ndarray,
    status: np.ndarray,
    saturated: np.ndarray,
    done: np.ndarray,
    n_peak: np.ndarray,
    n_background: np.ndarray,
) -> RingsResult:
    """A :class:`RingsResult` with NaN numbers wherever ``done`` is False (every mode)."""
    nan = np.full(status.shape, np.nan)
    return RingsResult(
        I=np.where(done, intensity, nan),
        sigma=np.where(done, sigma, nan),
        peak=np.where(done, peak, nan),
        background=np.where(done, background, nan),
        status=status,
        saturated=saturated,
        n_peak=np.asarray(n_peak).astype(np.int64),
        n_background=np.asarray(n_background).astype(np.int64),
    )


def _seq_sum(x: np.ndarray) -> np.ndarray:
    """Sequential double sums of the columns of a ``(K, N)`` array, in row order, from +0.0.

    This is C's ``double s = 0; for (...) s += x;`` (not numpy's pairwise summation):
    ``np.add.reduce`` along the first, non-contiguous axis of a C-ordered array with at least
    two columns accumulates row after row (checked in the tests); a single column would be
    reduced pairwise, so it is summed on Python floats instead.
    """
    k, n = x.shape
    if n >= 2:
        return np.add.reduce(np.ascontiguousarray(x), axis=0, initial=0.0)
    out = np.zeros(n)
    if n == 1:
        acc = 0.0
        for v in x[:, 0].tolist():
            acc += v
        out[0] = acc
    return out


def _solve_svd(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """CrystFEL's ``solve_svd`` for a batch of 3x3 systems: Bricogne rescaling, SVD, and
    singular values below max/1e6 dropped."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.diagonal(m, axis1=1, axis2=2) ** -0.5  # (N, 3)
        sas = m * s[:, :, None] * s[:, None, :]
        sb = s * v
        bad = ~np.isfinite(sas).all(axis=(1, 2))
        sas[bad] = np.eye(3)
        u, sv, vt = np.linalg.svd(sas)
        keep = sv >= sv[:, :1] / 1e6
        inv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
        ut_b = np.einsum("nji,nj->ni", u, sb)
        x = np.einsum("nji,nj->ni", vt, inv * ut_b)
        out = s * x
    out[bad] = np.nan
    return out


@dataclass(frozen=True)
class _RingPixels:
    """The peak and background pixels of a box, each in CrystFEL's loop order (p = fs
    outer, q = ss inner), as offsets from the central pixel and as box coordinates."""

    half_width: int
    pk_dfs: np.ndarray  # int64 (Kp,) fs offset of each peak pixel (p - W)
    pk_dss: np.ndarray  # int64 (Kp,) ss offset (q - W)
    bg_dfs: np.ndarray
    bg_dss: np.ndarray

    @property
    def pk_p(self) -> np.ndarray:
        """float64 (Kp, 1) box column p of the peak pixels (plane fit coordinates)."""
        return (self.pk_dfs + self.half_width).astype(np.float64)[:, None]

    @property
    def pk_q(self) -> np.ndarray:
        return (self.pk_dss + self.half_width).astype(np.float64)[:, None]

    @property
    def bg_p(self) -> np.ndarray:
        return (self.bg_dfs + self.half_width).astype(np.float64)[:, None]

    @property
    def bg_q(self) -> np.ndarray:
        return (self.bg_dss + self.half_width).astype(np.float64)[:, None]


@functools.lru_cache(maxsize=32)
def _ring_offsets(r1: int, r2: int, r3: int, width: int) -> np.ndarray:
    """Flat-index offsets from the central pixel of the peak pixels, then the background
    pixels (:func:`_ring_pixels` order), in a panel ``width`` pixels wide (read-only)."""
    rp = _ring_pixels(r1, r2, r3, r3)
    out = np.concatenate([rp.pk_dss * width + rp.pk_dfs, rp.bg_dss * width + rp.bg_dfs])
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=32)
def _ring_pixels(r1: int, r2: int, r3: int, half_width: int) -> _RingPixels:
    cls_pq = ring_classes(r1, r2, r3, half_width).T  # [p, q]: C order is CrystFEL's
    pk_p, pk_q = np.nonzero(cls_pq == PEAK)
    bg_p, bg_q = np.nonzero(cls_pq == BACKGROUND)
    w = half_width
    offsets = (pk_p - w, pk_q - w, bg_p - w, bg_q - w)
    for a in offsets:
        a.flags.writeable = False  # shared by every call (lru_cache)
    return _RingPixels(w, *offsets)


def integrate_rings(
    boxes: Boxes,
    radii: tuple[float, float, float],
    adu_per_photon: float | np.ndarray,
    *,
    gradient: bool = False,
    keep_saturated: bool = False,
    max_adu: float | np.ndarray = math.inf,
    saturation: np.ndarray | None = None,
    reject_bad_peak: bool = True,
) -> RingsResult:
    """Integrate N boxes exactly like CrystFEL's ``rings`` method (no centring).

    Parameters
    ----------
    boxes : Boxes
        From :func:`gather_boxes`, half-width ``int(r3)``, with the overlap counts of *all*
        predicted reflections of the frame.
    radii : (float, float, float)
        ``--int-radius`` r1, r2, r3 in pixels (truncated to integers for the rings).
    adu_per_photon : float or (N,) array
        Detector gain g (ADU per photon) of each reflection's panel, for the Poisson term.
    gradient : bool
        ``-grad``: fit a plane ``a p + b q + c`` to the background instead of a flat mean.
    keep_saturated : bool
        ``-sat``: keep (and still count) saturated reflections.
    max_adu : float or (N,) array
        Saturation level of the panel in ADU (pixels strictly above it are saturated).
    saturation : (N, B, B) array, optional
        Per-pixel saturation map values around each box (from :func:`gather_window`).
    reject_bad_peak : bool
        True (CrystFEL >= 0.12): a bad pixel in the peak disc rejects the reflection.
        False (<= 0.11): the pixel is only left out of the sum.

    Returns
    -------
    RingsResult
    """
    r1, r2, r3 = (int(r) for r in radii)
    if boxes.half_width != r3:
        raise ValueError(
            f"boxes have half-width {boxes.half_width}, but r3 = {r3} (CrystFEL uses int(r3))"
        )
    rp = _ring_pixels(r1, r2, r3, r3)
    n_refl = len(boxes)
    w = r3
    status = np.zeros(n_refl, dtype=np.int8)
    status[~boxes.fully_on_panel] = _OFF_PANEL

    kp = rp.pk_dfs.size
    dfs = np.concatenate([rp.pk_dfs, rp.bg_dfs]) + w
    dss = np.concatenate([rp.pk_dss, rp.bg_dss]) + w

    def rows(x: np.ndarray) -> np.ndarray:  # peak pixels, then background pixels
        return np.ascontiguousarray(x[:, dss, dfs].T)

    bad = rows(boxes.bad & boxes.on_panel)
    if reject_bad_peak:
        status[(status == _OK) & bad[:kp].any(axis=0)] = _BAD_PEAK_PIXEL
    values = rows(boxes.values)
    limit = np.broadcast_to(np.asarray(max_adu, dtype=np.float64), (n_refl,))
    with np.errstate(invalid="ignore"):
        over = values > limit
        if saturation is not None:
            over |= values > rows(np.asarray(saturation, dtype=np.float32))
    return _rings_kernel(
        rp, values, _used(rows(boxes.overlap), bad, kp), over, status, adu_per_photon,
        gradient, keep_saturated,
    )  # fmt: skip


def _used(counts: np.ndarray, bad: np.ndarray | None, kp: int) -> np.ndarray:
    """bool (K, N): ring pixels (peak rows first, ``kp`` of them) that take part.

    make_BgMask: other discs exclude background/ignored pixels; a peak pixel is excluded
    only when a second disc (not just its own) covers it.  Bad pixels are excluded.
    """
    used = np.empty(counts.shape, dtype=bool)
    np.less_equal(counts[:kp], 1, out=used[:kp])
    np.less_equal(counts[kp:], 0, out=used[kp:])
    if bad is not None:
        used &= ~bad
    return used


def _rings_kernel(
    rp: _RingPixels,
    values: np.ndarray,
    used: np.ndarray,
    over: np.ndarray | None,
    status: np.ndarray,
    adu_per_photon: float | np.ndarray,
    gradient: bool,
    keep_saturated: bool,
) -> RingsResult:
    """``integrate_rings_once`` after ``check_box``'s edge and bad-peak rules.

    Pixel rows (first axis) are the peak pixels (Kp rows), then the background pixels (Kg
    rows), each in CrystFEL's loop order; columns are the N reflections.

    Parameters
    ----------
    values : np.ndarray
        float32 (Kp + Kg, N) pixel values (ADU), C-ordered.
    used : np.ndarray
        bool (Kp + Kg, N): the pixel is used (not bad, not masked by another reflection's
        disc).
    over : np.ndarray or None
        bool (Kp + Kg, N): the pixel is above its saturation level (None: no pixel is).
    status : np.ndarray
        int8 (N,) status so far (OK, OFF_PANEL or BAD_PEAK_PIXEL); updated in place.
    """
    kp = rp.pk_dfs.size
    pk, bg = used[:kp], used[kp:]
    vp, vb = values[:kp], values[kp:]
    m = pk.view(np.uint8).sum(axis=0, dtype=np.int64)
    n = bg.view(np.uint8).sum(axis=0, dtype=np.int64)
    status[(status == _OK) & ((m < 4) | (n < 4))] = _TOO_FEW_PIXELS
    with np.errstate(divide="ignore", invalid="ignore"):
        # the largest used value, peak or background (max is exact, NaN included)
        peak = np.where(used, values, -np.inf).max(axis=0, initial=-np.inf)
        if over is None:
            saturated_box = np.zeros(m.shape, dtype=bool)
        else:
            saturated_box = (used & over).any(axis=0)

        # float32 pixel values meet float64 operands (ZERO, bg_mean, ...): numpy promotes
        # them exactly, as C promotes float to double.  Rows kp.. of a C-ordered (K, N)
        # array are C-ordered, as _seq_sum needs.
        summed = np.where(used, values, _ZERO)
        bg_mean = _seq_sum(summed[kp:]) / n
        intensity = _seq_sum(summed[:kp])
        if gradient:
            a_, b_, c_ = _fit_plane(rp, vb, bg)
            steep = _too_steep(rp, a_, b_, c_, vp, pk, m)
            status[(status == _OK) & steep] = _BG_GRADIENT
            intensity = intensity - a_ * _seq_sum(np.where(pk, rp.pk_p, 0.0))
            intensity = intensity - b_ * _seq_sum(np.where(pk, rp.pk_q, 0.0))
        else:
            # a = b = 0: subtracting 0 * (finite sums of p and q) changes no bit
            c_ = bg_mean
        intensity = intensity - c_ * m

        integrated = status == _OK
        saturated = integrated & saturated_box
        if not keep_saturated:
            status[saturated] = _SATURATED

        # the variance about the plain mean, even with -grad
        dev = np.where(bg, summed[kp:] - bg_mean, _ZERO)
        var_bg = _seq_sum(np.multiply(dev, dev, out=dev)) / n
        g = np.asarray(adu_per_photon, dtype=np.float64)
        sigma = np.sqrt(poisson_variance(intensity, g) + m * var_bg)

    status[(status == _OK) & (intensity < -5.0 * sigma)] = _IMPLAUSIBLE
    done = integrated & ~(saturated & ~keep_saturated)
    return finish_result(intensity, sigma, peak, bg_mean, status, saturated, done, m, n)


def _too_steep(
    rp: _RingPixels,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    vp: np.ndarray,
    pk: np.ndarray,
    m: np.ndarray,
) -> np.ndarray:
    """``bg_ok`` failed: |a| or |b| > |peak height - mean plane under the peak| / 10."""
    height = np.where(pk, vp, _ZERO).max(axis=0, initial=0.0)
    plane = a * rp.pk_p + b * rp.pk_q + c
    under = _seq_sum(np.where(pk, plane, _ZERO)) / m
    max_grad = np.abs(height - under) / 10.0
    return (np.abs(a) > max_grad) | (np.abs(b) > max_grad)


def _fit_plane(
    rp: _RingPixels, vb: np.ndarray, bg: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fit_gradient_bg``: plane a p + b q + c through the background pixels (box coords)."""
    s = _seq_sum
    p, q = rp.bg_p, rp.bg_q
    z = np.where(bg, 1.0, 0.0)
    spp, spq, sp = s(z * p * p), s(z * p * q), s(z * p)
    sqq, sq, sn = s(z * q * q), s(z * q), s(z)
    mat = np.stack(
        [
            np.stack([spp, spq, sp], axis=1),
            np.stack([spq, sqq, sq], axis=1),
            np.stack([sp, sq, sn], axis=1),
        ],
        axis=1,
    )
    rhs = np.stack([s(z * vb * p), s(z * vb * q), s(z * vb)], axis=1)
    sol = _solve_svd(mat, rhs)
    return sol[:, 0], sol[:, 1], sol[:, 2]


# --------------------------------------------------------------------------------------------
# Whole frame: predict, mask, integrate
# --------------------------------------------------------------------------------------------


@dataclass
class CrystalResult:
    """Integration of one crystal's predicted reflections (sorted by h, k, l).

    Attributes
    ----------
    h, k, l : np.ndarray
        int32 Miller indices of every predicted reflection (written or not).
    I, sigma, peak, background : np.ndarray
        float64, ADU; NaN where not integrated.
    fs, ss : np.ndarray
        float64 predicted position in **data-array** coordinates (panel-relative + min_fs /
        min_ss), pixel-corner convention, as written in the stream.
    panel : np.ndarray
        Panel names (str).
    status : np.ndarray
        int8 :class:`Status`; ``written`` selects the rows CrystFEL writes.
    n_saturated, n_implausible : int
        ``num_saturated_reflections`` / ``num_implausible_reflections``.
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    peak: np.ndarray
    background: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    panel: np.ndarray
    status: np.ndarray
    n_saturated: int
    n_implausible: int

    @property
    def written(self) -> np.ndarray:
        """bool mask of the rows CrystFEL writes."""
        return self.status == _OK

    def __len__(self) -> int:
        return int(self.h.shape[0])


def _snap_to_printed(pred: np.ndarray, printed: np.ndarray) -> np.ndarray:
    """Move a re-predicted coordinate into the interval its ``%6.1f`` print allows.

    The stream's value is CrystFEL's own prediction rounded to 0.1 px; ours (from the 7-digit
    astar/bstar/cstar) can be off by ~1e-4 px.  Clipping into the open interval
    ``(printed - 0.05, printed + 0.05)`` keeps the better of both, so the position prints
    back exactly as it was read.  Rows more than 0.1 px away are left alone: they are not
    plain predictions (``-cen`` shifts them by whole pixels, other tools move them).
    """
    eps = 1e-9
    out = np.minimum(np.maximum(pred, printed - 0.05 + eps), printed + 0.05 - eps)
    close = np.isfinite(printed) & (np.abs(pred - printed) < 0.1)
    return np.where(close, out, pred)


@dataclass
class _CrystalPrediction:
    """One crystal's prediction set (panel-relative positions) during frame integration."""

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    in_stream: np.ndarray  # the row exists in the input stream
    r_star: np.ndarray  # smallest profile radius (nm^-1) at which CrystFEL predicts it

    def select(self, keep: np.ndarray) -> _CrystalPrediction:
        return _CrystalPrediction(
            *(getattr(self, f)[keep] for f in ("h", "k", "l", "panel", "fs", "ss")),
            in_stream=self.in_stream[keep],
            r_star=self.r_star[keep],
        )


def _hkl_key(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    h, k, l = (np.asarray(a, dtype=np.int64) + 2048 for a in (h, k, l))  # noqa: E741
    return (h * 4096 + k) * 4096 + l


def _predict_crystal(
    xtal: Any,
    photon_energy_eV: float,
    detector: Any,
    bandwidth: float | None,
    push_res: float,
    use_stream_rows: bool,
    radius_tolerance: float,
    header_values: Any = None,
) -> _CrystalPrediction:
    """Predict a crystal; with stream rows, over-predict to ``R + tolerance`` and add them."""
    from streamfilter.predict import _predict, _threshold_radius_of_predicted

    table = getattr(xtal, "reflections", None) if use_stream_rows else None
    have_rows = table is not None and len(table) > 0
    radius = float(xtal.profile_radius or 0.0)
    tol = radius_tolerance if have_rows else 0.0
    max_d = math.inf
    if math.isfinite(push_res) and getattr(xtal, "resolution_limit", None) is not None:
        max_d = (xtal.resolution_limit + push_res) * 1e9
    pr, terms = _predict(
        xtal.astar,
        xtal.bstar,
        xtal.cstar,
        photon_energy_eV,
        detector,
        radius + tol,
        bandwidth,
        _det_shift(xtal),
        max_d,
        getattr(xtal, "centering", None) or "P",
        header_values,
    )
    if tol > 0:
        # the r* of threshold_radius_for, from the terms the prediction computed (every
        # predicted reflection passes at R + tol)
        r_star = (
            _threshold_radius_of_predicted(
                terms, max(radius - tol, 0.0) * 1e9, (radius + tol) * 1e9
            )
            * 1e-9
        )
    else:
        r_star = np.zeros(len(pr))
    pred = _CrystalPrediction(
        pr.h, pr.k, pr.l, pr.panel, pr.fs.copy(), pr.ss.copy(), np.zeros(len(pr), bool), r_star
    )
    if have_rows:
        pred = _join_stream_rows(
            pred, xtal, table, photon_energy_eV, detector, bandwidth, header_values
        )
    return pred


def _det_shift(xtal: Any) -> tuple[float, float]:
    shift = getattr(xtal, "det_shift_mm", None) or (0.0, 0.0)
    return (float(shift[0]), float(shift[1]))


def _join_stream_rows(
    pred: _CrystalPrediction,
    xtal: Any,
    table: Any,
    photon_energy_eV: float,
    detector: Any,
    bandwidth: float | None,
    header_values: Any = None,
) -> _CrystalPrediction:
    """Mark the predictions that are stream rows, narrow their positions with the printed
    ones, and add rows we did not predict (a written row was necessarily predicted)."""
    from streamfilter.predict import positions_for

    panels = list(detector.panels)
    index = {p.name: i for i, p in enumerate(panels)}
    th, tk, tl = (np.asarray(a, dtype=np.int64) for a in (table.h, table.k, table.l))
    tpanel = _panel_indices(table.panel, index)
    min_fs = np.array([p.min_fs for p in panels] + [0], dtype=np.float64)
    min_ss = np.array([p.min_ss for p in panels] + [0], dtype=np.float64)
    tfs = np.asarray(table.fs, dtype=np.float64) - min_fs[tpanel]
    tss = np.asarray(table.ss, dtype=np.float64) - min_ss[tpanel]

    key = _hkl_key(pred.h, pred.k, pred.l)  # sorted: predictions come in (h, k, l) order
    tkey = _hkl_key(th, tk, tl)
    pos = np.minimum(np.searchsorted(key, tkey), max(len(key) - 1, 0))
    found = (tpanel >= 0) & (key[pos] == tkey) if len(key) else np.zeros(len(tkey), bool)
    idx = pos[found]
    pred.in_stream[idx] = True
    same = pred.panel[idx] == tpanel[found]
    pred.fs[idx[same]] = _snap_to_printed(pred.fs[idx[same]], tfs[found][same])
    pred.ss[idx[same]] = _snap_to_printed(pred.ss[idx[same]], tss[found][same])

    missing = (tpanel >= 0) & ~found
    if not np.any(missing):
        return pred
    mp, mfs, mss = positions_for(
        th[missing], tk[missing], tl[missing], xtal.astar, xtal.bstar, xtal.cstar,
        photon_energy_eV, detector, _det_shift(xtal),
        profile_radius=xtal.profile_radius, bandwidth=bandwidth or 0.0,
        header_values=header_values,
    )  # fmt: skip
    on = mp >= 0
    same = mp == tpanel[missing]
    mfs = np.where(same, _snap_to_printed(mfs, tfs[missing]), mfs)
    mss = np.where(same, _snap_to_printed(mss, tss[missing]), mss)
    extra = _CrystalPrediction(
        th[missing][on].astype(np.int32), tk[missing][on].astype(np.int32),
        tl[missing][on].astype(np.int32), mp[on], mfs[on], mss[on],
        np.ones(int(on.sum()), bool), np.full(int(on.sum()), np.nan),
    )  # fmt: skip
    fields = ("h", "k", "l", "panel", "fs", "ss", "in_stream", "r_star")
    joined = [np.concatenate([getattr(pred, f), getattr(extra, f)]) for f in fields]
    order = np.lexsort((joined[2], joined[1], joined[0]))
    return _CrystalPrediction(*(a[order] for a in joined))


def _panel_indices(names: Any, index: dict[str, int]) -> np.ndarray:
    """int64 index of each row's panel name (-1 for a name the geometry does not have)."""
    if names is None:  # a table without a panel column
        raise TypeError("the reflection table has no panel column")
    names = np.asarray(names)
    if names.dtype.kind != "U" or len(index) > 16:
        uniq, inverse = np.unique(names.astype(str), return_inverse=True)
        lookup = np.array([index.get(str(u), -1) for u in uniq.tolist()] + [-1], dtype=np.int64)
        return lookup[inverse.ravel()] if names.size else np.zeros(0, np.int64)
    out = np.full(names.shape, -1, dtype=np.int64)
    for name, i in index.items():  # few panels: one vectorised comparison each
        out[names == name] = i
    return out


def _overlap_maps(
    panels: list[Any],
    preds: list[_CrystalPrediction],
    r1: float,
    needed: set[int] | None = None,
) -> dict[int, np.ndarray]:
    """One ``make_BgMask`` map per panel from the predictions of all crystals (only the
    panels in ``needed``, when given)."""
    maps = {}
    for i, p in enumerate(panels):
        if needed is not None and i not in needed:
            continue
        fs = [pd.fs[pd.panel == i] for pd in preds]
        ss = [pd.ss[pd.panel == i] for pd in preds]
        maps[i] = overlap_map(
            (p.height, p.width),
            np.concatenate(fs) if fs else np.zeros(0),
            np.concatenate(ss) if ss else np.zeros(0),
            r1,
        )
    return maps


def _panels_of(preds: list[_CrystalPrediction]) -> set[int]:
    return {int(i) for pd in preds for i in np.unique(pd.panel)}


@dataclass
class _FramePixels:
    """A frame's panel arrays in one flat index space: pixel (fs, ss) of panel i (panel-
    relative) is ``offset[i] + ss * width[i] + fs``, panels in geometry order, each C-ordered.

    ``image`` (float32 ADU), ``bad`` (bool) and ``saturation`` (float32 ADU, optional) are
    flat arrays of that space; ``max_adu`` and ``gain`` (ADU per photon) are per panel.
    """

    offset: np.ndarray
    width: np.ndarray
    height: np.ndarray
    image: np.ndarray
    bad: np.ndarray | None
    saturation: np.ndarray | None
    max_adu: np.ndarray
    gain: np.ndarray
    gain_errors: dict[int, Exception] = field(default_factory=dict)  # raised when used

    @property
    def size(self) -> int:
        return int(self.offset[-1] + self.width[-1] * self.height[-1])


_FLAT_CACHE = threading.local()


def _flat(arrays: list[np.ndarray], cache: str | None = None) -> np.ndarray:
    """The panels' arrays one after the other as one flat array.

    No copy when they already are (the panels of one HDF5 slab stacked along ss, as
    CrystFEL's multi-panel files lay them out).  Arrays that stay the same from frame to
    frame (static bad-pixel maps) are joined once: ``cache`` names the (per-thread) slot.
    """
    first = arrays[0]
    if len(arrays) == 1 and first.flags.c_contiguous:
        return first.reshape(-1)
    base = first.base
    if (
        isinstance(base, np.ndarray)
        and base.flags.c_contiguous
        and base.dtype == first.dtype
        and all(a.flags.c_contiguous and a.base is base for a in arrays)
    ):
        addresses = [a.__array_interface__["data"][0] for a in arrays]
        if all(
            addresses[i + 1] == addresses[i] + a.nbytes for i, a in enumerate(arrays[:-1])
        ):  # each panel's pixels right after the previous panel's
            start = (addresses[0] - base.__array_interface__["data"][0]) // first.itemsize
            return base.reshape(-1)[start : start + sum(a.size for a in arrays)]
    # only read-only arrays (frames.py's static maps) can be trusted to stay the same
    cache = cache if all(not a.flags.writeable for a in arrays) else None
    if cache is not None:
        hit = getattr(_FLAT_CACHE, cache, None)
        if hit is not None and len(hit[0]) == len(arrays):
            if all(x is y for x, y in zip(hit[0], arrays, strict=True)):
                return hit[1]
    out = np.concatenate([a.reshape(-1) for a in arrays])
    if cache is not None:
        setattr(_FLAT_CACHE, cache, (list(arrays), out))
    return out


@dataclass
class _PanelLayout:
    """What :class:`_FramePixels` holds that does not depend on the frame: the panels'
    shapes (h, w), the flat index space (``offset``, ``width``, ``height``), ``max_adu``,
    and the gains (ADU per photon, NaN where a panel has none, with the error to raise if
    one of its reflections is integrated) memoised by photon energy (eV); and for the
    results, the panels' ``min_fs``/``min_ss`` (float64) and names (object array)."""

    shapes: list[tuple[int, int]]
    offset: np.ndarray
    width: np.ndarray
    height: np.ndarray
    max_adu: np.ndarray
    gains: dict[float, tuple[np.ndarray, dict[int, Exception]]]
    min_fs: np.ndarray
    min_ss: np.ndarray
    names: np.ndarray

    def gain(
        self, panels: list[Any], photon_energy_eV: float
    ) -> tuple[np.ndarray, dict[int, Exception]]:
        hit = self.gains.get(photon_energy_eV)
        if hit is not None:
            return hit
        gain = np.full(len(panels), np.nan)
        errors: dict[int, Exception] = {}
        for i, p in enumerate(panels):
            try:
                gain[i] = float(p.adu_per_photon_at(photon_energy_eV))
            except Exception as e:  # a panel without a gain: an error only if it has spots
                errors[i] = e
        if not errors:  # (an error is raised afresh for every frame)
            gain.flags.writeable = False
            if len(self.gains) >= 64:
                self.gains.clear()
            self.gains[photon_energy_eV] = (gain, errors)
        return gain, errors


# The layouts of the last few panel lists (a run has one geometry).  Keyed by the panels'
# ids; the entry holds the panels, so that the ids stay theirs.  Panels are not modified once
# parsed.  Plain dict operations: safe in threads.
_LAYOUTS: dict[tuple[int, ...], tuple[list[Any], _PanelLayout]] = {}


def _panel_layout(panels: list[Any]) -> _PanelLayout:
    key = tuple(map(id, panels))
    hit = _LAYOUTS.get(key)
    if hit is not None:
        return hit[1]
    shapes = [(int(p.height), int(p.width)) for p in panels]
    height = np.array([h for h, _ in shapes], dtype=np.int64)
    width = np.array([w for _, w in shapes], dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(height * width)[:-1]]).astype(np.int64)
    max_adu = np.array([float(getattr(p, "max_adu", math.inf)) for p in panels])
    min_fs = np.array([p.min_fs for p in panels], dtype=np.float64)
    min_ss = np.array([p.min_ss for p in panels], dtype=np.float64)
    names = np.array([p.name for p in panels], dtype=object)
    for a in (offset, width, height, max_adu, min_fs, min_ss, names):
        a.flags.writeable = False  # shared by every frame
    layout = _PanelLayout(shapes, offset, width, height, max_adu, {}, min_fs, min_ss, names)
    if len(_LAYOUTS) >= 8:
        _LAYOUTS.clear()
    _LAYOUTS[key] = (list(panels), layout)
    return layout


def _frame_pixels(frame: Any, panels: list[Any], photon_energy_eV: float) -> _FramePixels | None:
    """:class:`_FramePixels` of a frame, or None when an array disagrees with the geometry's
    panel shape (such frames go through :func:`gather_boxes` panel by panel)."""
    layout = _panel_layout(panels)
    shapes = layout.shapes
    try:
        images = [np.asarray(frame.data[p.name], dtype=np.float32) for p in panels]
        bads = [frame.bad[p.name] for p in panels]
    except KeyError:  # a frame without every panel: only the panels used are looked up
        return None
    sat_maps = getattr(frame, "saturation", None) or {}
    sats = [sat_maps.get(p.name) for p in panels]
    for shape, im, bd, st in zip(shapes, images, bads, sats, strict=True):
        if im.shape != shape or (bd is not None and np.shape(bd) != shape):
            return None
        if st is not None and np.shape(st) != shape:
            return None
    bad = None
    if any(bd is not None for bd in bads):
        bad = _flat(
            [np.zeros(sh, bool) if bd is None else np.asarray(bd, dtype=bool)
             for sh, bd in zip(shapes, bads, strict=True)],
            cache="bad",
        )  # fmt: skip
    saturation = None
    if any(st is not None for st in sats):
        saturation = _flat(
            [np.full(sh, np.inf, np.float32) if st is None else np.asarray(st, dtype=np.float32)
             for sh, st in zip(shapes, sats, strict=True)],
            cache="saturation",
        )  # fmt: skip
    gain, gain_errors = layout.gain(panels, photon_energy_eV)
    return _FramePixels(
        offset=layout.offset,
        width=layout.width,
        height=layout.height,
        image=_flat(images),
        bad=bad,
        saturation=saturation,
        max_adu=layout.max_adu,
        gain=gain,
        gain_errors=gain_errors,
    )


@functools.lru_cache(maxsize=32)
def _disc_steps(r1: float, width: int) -> np.ndarray:
    """Flat-index offsets ``dss * width + dfs`` of the disc pixels (read-only int64 (D,))."""
    dfs, dss = _disc_offsets(r1)
    out = (dss[0] * width + dfs[0]).astype(np.int64)
    out.flags.writeable = False
    return out


#: Below 2**20 px doubles are spaced 2**-32 or closer: see :func:`_disc_index`.
_SIMPLE_LIMIT = 2.0**20
_NEARLY_ONE = 1.0 - 2.0**-20


def _disc_index(
    fp: _FramePixels, panel: np.ndarray, fs: np.ndarray, ss: np.ndarray, r1: float
) -> np.ndarray:
    """:func:`disc_pixels` of predictions on any panels: (N, D) flat indices of the covered
    pixels, ``fp.size`` (the sink slot of :func:`_overlap_counts`) for pixels off their
    panel.

    Most discs take a shortcut: with F = floor(fs) and every offset d an integer within
    +-int(r1), ``int(fs + d) == F + d`` whenever fs - int(r1) >= 0 (the sum is >= 0, so the
    cast is floor) and the sum cannot round up to the next integer, which needs
    ``fs - F >= 1 - 2**-33`` below 2**20 px.  If moreover fs + int(r1) < w (rounding is
    monotonic) the whole disc is on the panel.  The other discs (near an edge, or a
    position within 2**-20 px below an integer) are computed as the C code does.
    """
    reach = int(r1)
    w, h = fp.width[panel], fp.height[panel]
    ffs, fss = np.floor(fs), np.floor(ss)
    simple = (fs - reach >= 0) & (fs + reach < w) & (ss - reach >= 0) & (ss + reach < h)
    simple &= (fs - ffs < _NEARLY_ONE) & (ss - fss < _NEARLY_ONE)
    simple &= (fs < _SIMPLE_LIMIT) & (ss < _SIMPLE_LIMIT)
    ifs, iss = ffs.astype(np.int64), fss.astype(np.int64)
    if w.size and (w == w[0]).all():
        base = fp.offset[panel] + iss * w + ifs
        flat = base[:, None] + _disc_steps(r1, int(w[0]))
    else:
        dfs, dss = _disc_offsets(r1)
        idfs, idss = dfs.astype(np.int64), dss.astype(np.int64)
        flat = (iss[:, None] + idss) * w[:, None] + (
            ifs[:, None] + idfs + fp.offset[panel][:, None]
        )
    rest = np.flatnonzero(~simple)
    if rest.size:
        pf, ps = disc_cover(fs[rest], ss[rest], r1)
        wr, hr = w[rest, None], h[rest, None]
        on = (pf >= 0) & (pf < wr) & (ps >= 0) & (ps < hr)
        flat[rest] = np.where(on, ps * wr + (pf + fp.offset[panel[rest], None]), fp.size)
    return flat


def _overlap_counts(fp: _FramePixels, preds: list[_CrystalPrediction], r1: float) -> np.ndarray:
    """``make_BgMask`` of every panel at once: int16 counts in the flat index space (the
    same numbers as :func:`overlap_map` per panel), plus one last slot that counts the disc
    pixels off their panels (never read)."""
    counts = np.zeros(fp.size + 1, dtype=np.int16)
    panel = np.concatenate([pd.panel for pd in preds]) if preds else np.zeros(0, np.int64)
    if panel.size:
        fs = np.concatenate([pd.fs for pd in preds])
        ss = np.concatenate([pd.ss for pd in preds])
        np.add.at(counts, _disc_index(fp, panel, fs, ss, r1).ravel(), np.int16(1))
    return counts


def _integrate_flat(
    pred: _CrystalPrediction,
    fp: _FramePixels,
    overlap: np.ndarray,
    radii: tuple[float, float, float],
    gradient: bool,
    keep_saturated: bool,
    reject_bad_peak: bool,
) -> RingsResult:
    """Integrate every reflection of one crystal, on all panels at once.

    Only boxes entirely on their panel are gathered (the others are ``OFF_PANEL``), and only
    their peak and background pixels, straight from the flat frame arrays into the
    ring-pixel layout of :func:`_rings_kernel`.  ``n_peak``/``n_background`` are filled for
    those boxes only.
    """
    n = len(pred.h)
    out = RingsResult(
        I=np.full(n, np.nan),
        sigma=np.full(n, np.nan),
        peak=np.full(n, np.nan),
        background=np.full(n, np.nan),
        status=np.full(n, _OFF_PANEL, dtype=np.int8),
        saturated=np.zeros(n, dtype=bool),
        n_peak=np.zeros(n, dtype=np.int64),
        n_background=np.zeros(n, dtype=np.int64),
    )
    for i in fp.gain_errors:
        if np.any(pred.panel == i):
            raise fp.gain_errors[i]
    r1, r2, r3 = (int(r) for r in radii)
    rp = _ring_pixels(r1, r2, r3, r3)
    cfs, css = central_pixels(pred.fs, pred.ss)
    w, h = fp.width[pred.panel], fp.height[pred.panel]
    sel = np.flatnonzero((cfs >= r3) & (cfs < w - r3) & (css >= r3) & (css < h - r3))
    if sel.size == 0:
        return out
    panel, w = pred.panel[sel], w[sel]
    base = fp.offset[panel] + css[sel] * w + cfs[sel]
    # flat indices of the peak pixels (first kp rows), then the background pixels
    kp = rp.pk_dfs.size
    if (w == w[0]).all():  # panels of one width (the usual case): one offset per ring pixel
        index = _ring_offsets(r1, r2, r3, int(w[0]))[:, None] + base
    else:
        dss = np.concatenate([rp.pk_dss, rp.bg_dss])[:, None]
        dfs = np.concatenate([rp.pk_dfs, rp.bg_dfs])[:, None]
        index = dss * w + (dfs + base)
    values = fp.image.take(index)
    status = np.zeros(sel.size, dtype=np.int8)
    bad = None
    if fp.bad is not None:
        bad = fp.bad.take(index)
        if reject_bad_peak:
            status[bad[:kp].any(axis=0)] = _BAD_PEAK_PIXEL
    limit = fp.max_adu[panel]  # float64: compared in double, as C promotes the float pixel
    over = None  # nothing can be saturated (no max_adu, no saturation map)
    if fp.saturation is not None or np.any(limit < np.inf):
        with np.errstate(invalid="ignore"):
            over = values > limit
            if fp.saturation is not None:
                over |= values > fp.saturation.take(index)
    res = _rings_kernel(
        rp, values, _used(overlap.take(index), bad, kp), over, status, fp.gain[panel],
        gradient, keep_saturated,
    )  # fmt: skip
    _put(out, sel, res)
    return out


def _integrate_panels(
    pred: _CrystalPrediction,
    frame: Any,
    panels: list[Any],
    overlaps: dict[int, np.ndarray],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    gradient: bool,
    keep_saturated: bool,
    reject_bad_peak: bool,
) -> RingsResult:
    """Integrate one crystal panel by panel with :func:`gather_boxes` and
    :func:`integrate_rings` (frames whose arrays disagree with the geometry)."""
    n = len(pred.h)
    out = RingsResult(
        I=np.full(n, np.nan),
        sigma=np.full(n, np.nan),
        peak=np.full(n, np.nan),
        background=np.full(n, np.nan),
        status=np.zeros(n, dtype=np.int8),
        saturated=np.zeros(n, dtype=bool),
        n_peak=np.zeros(n, dtype=np.int64),
        n_background=np.zeros(n, dtype=np.int64),
    )
    half = int(radii[2])
    sat_maps = getattr(frame, "saturation", None)
    for i in np.unique(pred.panel).tolist():
        p = panels[i]
        sel = np.flatnonzero(pred.panel == i)
        cfs, css = central_pixels(pred.fs[sel], pred.ss[sel])
        boxes = gather_boxes(frame.data[p.name], frame.bad[p.name], cfs, css, half, overlaps[i])
        sat_win = None
        if sat_maps is not None and sat_maps.get(p.name) is not None:
            sat_win, _ = gather_window(
                np.asarray(sat_maps[p.name], dtype=np.float32), cfs, css, half, np.inf
            )
        res = integrate_rings(
            boxes,
            radii,
            p.adu_per_photon_at(photon_energy_eV),
            gradient=gradient,
            keep_saturated=keep_saturated,
            max_adu=getattr(p, "max_adu", math.inf),
            saturation=sat_win,
            reject_bad_peak=reject_bad_peak,
        )
        _put(out, sel, res)
    return out


def _put(out: RingsResult, sel: np.ndarray, res: RingsResult) -> None:
    for f in ("I", "sigma", "peak", "background", "status", "saturated", "n_peak", "n_background"):
        getattr(out, f)[sel] = getattr(res, f)


def _settle_radius(
    xtal: Any, pred: _CrystalPrediction, would_write: np.ndarray, tol: float
) -> np.ndarray:
    """Decide which over-predicted reflections CrystFEL predicted (bool mask to keep).

    The stream prints ``profile_radius`` to 5 decimals, so the true R is only known to
    +-``tol``.  A reflection enters the prediction set when R >= its threshold r*.  Rows
    present in the stream need R >= r*; absent reflections that would have been written
    need R < r*.  We keep the stream's rows, drop the absent would-be-written ones (their
    absence is the evidence; our r* carries ~1e-6 nm^-1 of error from the 7-digit astar, so
    the two constraints can cross), and decide the rest (which only shape the overlap mask)
    with R in the middle of the interval the constraints leave.
    """
    radius = float(xtal.profile_radius or 0.0)
    lo, hi = radius - tol, radius + tol
    rs = pred.r_star
    finite = np.isfinite(rs)
    need = pred.in_stream & finite
    if np.any(need):
        lo = max(lo, float(rs[need].max()))
    veto = ~pred.in_stream & would_write & finite & (rs > radius - tol)
    if np.any(veto & (rs > lo)):
        hi = min(hi, float(rs[veto & (rs > lo)].min()))
    chosen = 0.5 * (lo + hi) if hi > lo else lo
    return pred.in_stream | (finite & (rs <= chosen) & ~veto)


def integrate_frame_crystfel(
    frame: Any,
    detector: Any,
    crystals: list[Any],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    *,
    gradient: bool = False,
    keep_saturated: bool = False,
    bandwidth: float | None = None,
    push_res: float = math.inf,
    use_stream_rows: bool = True,
    reject_bad_peak: bool = True,
    profile_radius_tolerance: float = 5e-6,
    stream_radii: tuple[float, float, float] | None = None,
) -> list[CrystalResult]:
    """Re-predict and integrate every crystal of one frame like indexamajig's rings.

    Parameters
    ----------
    frame : streamfilter.frames.Frame
        ``frame.data[name]`` float32 (h, w) and ``frame.bad[name]`` bool per panel; an
        optional ``frame.saturation[name]`` per-pixel saturation map (or None).
    detector : streamfilter.geometry.Detector
    crystals : list
        Stream crystals (``astar, bstar, cstar`` nm^-1, ``profile_radius`` nm^-1,
        ``det_shift_mm``, ``resolution_limit`` nm^-1, ``centering``, ``reflections``).
    photon_energy_eV : float
        The chunk's ``photon_energy_eV``.
    radii : (float, float, float)
        ``--int-radius`` (pixels).  The overlap mask uses the real-valued r1.
    gradient, keep_saturated : bool
        ``-grad`` and ``-sat``.
    bandwidth : float or None
        The chunk's ``beam_bandwidth`` (fraction); None: 0.
    push_res : float
        ``--push-res`` in nm^-1 (indexamajig default: infinite, i.e. no cut).
    use_stream_rows : bool
        Use the crystals' existing reflection rows as information about CrystFEL's own
        prediction: they were necessarily predicted; their printed positions narrow ours
        (:func:`_snap_to_printed`); and together with the absent rows they narrow the true
        ``profile_radius``, printed to only 5 decimals (:func:`_settle_radius`).  Only
        positions and the prediction set are taken from the rows, never their numbers.
    reject_bad_peak : bool
        CrystFEL >= 0.12 behaviour (True) or <= 0.11 (False).
    profile_radius_tolerance : float
        Half the last printed digit of ``profile_radius`` (nm^-1).
    stream_radii : (float, float, float) or None
        ``--int-radius`` the input rows were written with (stream header), when it differs
        from ``radii``: deciding whether an absent reflection "would have been written" must
        use CrystFEL's radii.  None: the same as ``radii``.

    Returns
    -------
    list[CrystalResult]
        One per crystal, in input order, with every predicted reflection; ``written``
        selects the rows CrystFEL writes.
    """
    panels = list(detector.panels)
    preds = [
        _predict_crystal(
            x,
            photon_energy_eV,
            detector,
            bandwidth,
            push_res,
            use_stream_rows,
            profile_radius_tolerance,
            getattr(frame, "header", None),
        )
        for x in crystals
    ]
    integrate = {
        "frame": frame,
        "panels": panels,
        "photon_energy_eV": photon_energy_eV,
        "radii": radii,
        "gradient": gradient,
        "keep_saturated": keep_saturated,
        "reject_bad_peak": reject_bad_peak,
    }
    # Reflections the true (unrounded) profile radius may or may not have predicted.
    ambiguous = [
        ~pd.in_stream
        & np.isfinite(pd.r_star)
        & (pd.r_star > float(x.profile_radius or 0.0) - profile_radius_tolerance)
        for pd, x in zip(preds, crystals, strict=True)
    ]
    settle = use_stream_rows and any(np.any(a) for a in ambiguous)
    old_radii = tuple(stream_radii) if stream_radii is not None else tuple(radii)
    fp = _frame_pixels(frame, panels, photon_energy_eV)
    if settle and old_radii == tuple(radii) and fp is not None:
        preds, rings = _settle_in_one_pass(
            crystals, preds, ambiguous, fp, integrate, profile_radius_tolerance
        )
    else:
        if settle:
            trial_radii = {**integrate, "radii": old_radii}
            overlap = _overlap(fp, panels, preds, float(old_radii[0]))
            settled = []
            for x, pd, amb in zip(crystals, preds, ambiguous, strict=True):
                would_write = np.zeros(len(pd.h), dtype=bool)
                if np.any(amb):
                    trial = _integrate(pd.select(amb), fp, overlap, **trial_radii)
                    would_write[amb] = trial.status == _OK
                keep = _settle_radius(x, pd, would_write, profile_radius_tolerance)
                settled.append(pd.select(keep))
            preds = settled
        overlap = _overlap(fp, panels, preds, float(radii[0]))
        rings = [_integrate(pd, fp, overlap, **integrate) for pd in preds]

    layout = _panel_layout(panels)
    min_fs, min_ss, names = layout.min_fs, layout.min_ss, layout.names
    results = []
    for pd, res in zip(preds, rings, strict=True):
        results.append(
            CrystalResult(
                h=pd.h,
                k=pd.k,
                l=pd.l,
                I=res.I,
                sigma=res.sigma,
                peak=res.peak,
                background=res.background,
                fs=pd.fs + min_fs[pd.panel],
                ss=pd.ss + min_ss[pd.panel],
                panel=names[pd.panel],
                status=res.status,
                n_saturated=res.n_saturated,
                n_implausible=res.n_implausible,
            )
        )
    return results


def _overlap(
    fp: _FramePixels | None, panels: list[Any], preds: list[_CrystalPrediction], r1: float
) -> np.ndarray | dict[int, np.ndarray]:
    """The overlap mask of all of ``preds``: flat counts, or per-panel maps without ``fp``."""
    if fp is not None:
        return _overlap_counts(fp, preds, r1)
    return _overlap_maps(panels, preds, r1, _panels_of(preds))


def _integrate(
    pred: _CrystalPrediction,
    fp: _FramePixels | None,
    overlap: np.ndarray | dict[int, np.ndarray],
    *,
    frame: Any,
    panels: list[Any],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    gradient: bool,
    keep_saturated: bool,
    reject_bad_peak: bool,
) -> RingsResult:
    """Integrate ``pred`` with an overlap mask from :func:`_overlap`."""
    options = (radii, gradient, keep_saturated, reject_bad_peak)
    if fp is not None:
        assert isinstance(overlap, np.ndarray)
        return _integrate_flat(pred, fp, overlap, *options)
    assert isinstance(overlap, dict)
    return _integrate_panels(pred, frame, panels, overlap, photon_energy_eV, *options)


def _settle_in_one_pass(
    crystals: list[Any],
    preds: list[_CrystalPrediction],
    ambiguous: list[np.ndarray],
    fp: _FramePixels,
    integrate: dict[str, Any],
    tol: float,
) -> tuple[list[_CrystalPrediction], list[RingsResult]]:
    """Settle the profile radius and integrate, when the stream's radii are the ones used.

    Integrating every over-predicted reflection once with the overlap mask of all of them
    gives both the "would have been written" verdicts of the ambiguous ones and the final
    numbers of everything else.  Reflections then dropped take their discs out of the
    overlap mask; only the boxes containing one of those pixels are integrated again.  The
    result is the same, number for number, as integrating the settled prediction set.
    """
    radii = integrate["radii"]
    r1, half = float(radii[0]), int(radii[2])
    args = (radii, integrate["gradient"], integrate["keep_saturated"], integrate["reject_bad_peak"])
    overlap = _overlap_counts(fp, preds, r1)
    rings = [_integrate_flat(pd, fp, overlap, *args) for pd in preds]
    keeps = [
        _settle_radius(x, pd, amb & (res.status == _OK), tol)
        for x, pd, amb, res in zip(crystals, preds, ambiguous, rings, strict=True)
    ]
    if all(k.all() for k in keeps):
        return preds, rings
    # take the dropped discs out of the overlap mask (int16 arithmetic: exact)
    gone = [np.flatnonzero(~k) for k in keeps]
    panel = np.concatenate([pd.panel[g] for pd, g in zip(preds, gone)])
    fs = np.concatenate([pd.fs[g] for pd, g in zip(preds, gone)])
    ss = np.concatenate([pd.ss[g] for pd, g in zip(preds, gone)])
    np.add.at(overlap, _disc_index(fp, panel, fs, ss, r1).ravel(), np.int16(-1))
    # Boxes (half-width int(r3)) that may hold a pixel whose count changed: a dropped disc's
    # pixels int(fs + dfs) lie within int(r1) + 1 of floor(fs) (the +1: rounding, and the
    # truncation of (-1, 0) to 0), so only boxes centred within half + int(r1) + 1 of it.
    # A box among them whose pixels did not change gets the same numbers again.
    reach = half + int(r1) + 1
    gone_fs, gone_ss = np.floor(fs), np.floor(ss)
    out_preds, out_rings = [], []
    for pd, res, keep in zip(preds, rings, keeps, strict=True):
        pd, res = pd.select(keep), _select(res, keep)
        cfs, css = central_pixels(pd.fs, pd.ss)
        redo = (
            (pd.panel[:, None] == panel)
            & (np.abs(cfs[:, None] - gone_fs) <= reach)
            & (np.abs(css[:, None] - gone_ss) <= reach)
        ).any(axis=1)
        if redo.any():
            _put(res, np.flatnonzero(redo), _integrate_flat(pd.select(redo), fp, overlap, *args))
        out_preds.append(pd)
        out_rings.append(res)
    return out_preds, out_rings


def _select(res: RingsResult, keep: np.ndarray) -> RingsResult:
    return RingsResult(
        *(getattr(res, f)[keep] for f in ("I", "sigma", "peak", "background", "status")),
        saturated=res.saturated[keep],
        n_peak=res.n_peak[keep],
        n_background=res.n_background[keep],
    )
