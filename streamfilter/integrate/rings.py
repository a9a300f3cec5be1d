"""CrystFEL-identical three-ring summation integration (``--method crystfel``).

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import (
    BACKGROUND,
    PEAK,
    Boxes,
    central_pixels,
    gather_boxes,
    gather_window,
    ring_classes,
)
from streamfilter.integrate.layout import (
    DetectorLayout,
    FramePixels,
    overlap_counts,
    overlap_maps,
    panels_of,
)
from streamfilter.integrate.model import (
    _BAD_PEAK_PIXEL,
    _BG_GRADIENT,
    _IMPLAUSIBLE,
    _OFF_PANEL,
    _OK,
    _SATURATED,
    _TOO_FEW_PIXELS,
    _ZERO,
    CrystalPredictions,
    CrystalResult,
    RingsResult,
    crystal_result,
    finish_result,
)
from streamfilter.integrate.plane import solve_normal_equations

__all__ = [
    "CrystfelOptions",
    "integrate_frame",
    "integrate_rings",
    "poisson_variance",
    "would_write",
]


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
    sol = solve_normal_equations(mat, rhs)
    return sol[:, 0], sol[:, 1], sol[:, 2]





# --------------------------------------------------------------------------------------------
# Whole frame
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrystfelOptions:
    """indexamajig's integration flags.

    Attributes
    ----------
    gradient : bool
        ``-grad``: a least-squares plane background with CrystFEL's gradient check.
    keep_saturated : bool
        ``-sat``: saturated reflections are written (and still counted).
    reject_bad_peak : bool
        CrystFEL >= 0.12 (True): a bad pixel in the peak disc rejects the reflection;
        <= 0.11 (False): it is only left out of the sum.
    """

    gradient: bool = False
    keep_saturated: bool = False
    reject_bad_peak: bool = True


def integrate_frame(
    frame: Any,
    predictions: list[CrystalPredictions],
    peaks: Any,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: CrystfelOptions | None = None,
) -> list[CrystalResult]:
    """Integrate every crystal of one frame exactly like indexamajig's ``rings``.

    Parameters
    ----------
    frame : streamfilter.frames.Frame
        ``frame.data[name]`` float32 (h, w) and ``frame.bad[name]`` bool per panel; an
        optional ``frame.saturation[name]`` per-pixel saturation map (or None).
    predictions : list of CrystalPredictions
        Every crystal's predicted reflections (the overlap mask uses all of them).
    peaks : FoundPeaks or None
        Not used by this method (one signature for every method).
    photon_energy_eV : float
        For the gains (ADU per photon) of the Poisson term.
    radii : (float, float, float)
        ``--int-radius`` r1, r2, r3 (pixels); the overlap mask uses the real-valued r1.
    layout : DetectorLayout
    options : CrystfelOptions, optional

    Returns
    -------
    list[CrystalResult]
        One per crystal, every predicted reflection; ``written`` selects CrystFEL's rows.
    """
    rings = integrate_crystals(frame, predictions, photon_energy_eV, radii, layout, options)
    return [crystal_result(pd, res, layout) for pd, res in zip(predictions, rings, strict=True)]


def integrate_crystals(
    frame: Any,
    predictions: list[CrystalPredictions],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: CrystfelOptions | None = None,
) -> list[RingsResult]:
    """:func:`integrate_frame`'s numbers, one :class:`RingsResult` per crystal."""
    options = options or CrystfelOptions()
    fp = layout.frame_pixels(frame, photon_energy_eV)
    overlap = _overlap(fp, layout, predictions, float(radii[0]))
    return [
        _integrate(pd, fp, overlap, frame, layout, photon_energy_eV, radii, options)
        for pd in predictions
    ]


def would_write(
    frame: Any,
    predictions: list[CrystalPredictions],
    candidates: list[np.ndarray],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: CrystfelOptions | None = None,
) -> list[np.ndarray]:
    """Which ``candidates`` (bool per crystal's predictions) CrystFEL would write, each
    integrated with the overlap mask of all of ``predictions``.

    Only the candidates are integrated; a reflection's verdict depends only on its box and
    that mask, so it is the one a whole-frame :func:`integrate_frame` gives.
    """
    options = options or CrystfelOptions()
    fp = layout.frame_pixels(frame, photon_energy_eV)
    overlap = _overlap(fp, layout, predictions, float(radii[0]))
    out = []
    for pd, cand in zip(predictions, candidates, strict=True):
        verdict = np.zeros(len(pd), dtype=bool)
        if np.any(cand):
            trial = _integrate(
                pd.select(cand), fp, overlap, frame, layout, photon_energy_eV, radii, options
            )
            verdict[cand] = trial.status == _OK
        out.append(verdict)
    return out


def _overlap(
    fp: FramePixels | None,
    layout: DetectorLayout,
    preds: list[CrystalPredictions],
    r1: float,
) -> np.ndarray | dict[int, np.ndarray]:
    """The overlap mask of all of ``preds``: flat counts, or per-panel maps without ``fp``."""
    if fp is not None:
        return overlap_counts(fp, preds, r1)
    return overlap_maps(layout.panels, preds, r1, panels_of(preds))


def _integrate(
    pred: CrystalPredictions,
    fp: FramePixels | None,
    overlap: np.ndarray | dict[int, np.ndarray],
    frame: Any,
    layout: DetectorLayout,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    options: CrystfelOptions,
) -> RingsResult:
    """Integrate ``pred`` with an overlap mask from :func:`_overlap`."""
    flags = (radii, options.gradient, options.keep_saturated, options.reject_bad_peak)
    if fp is not None:
        assert isinstance(overlap, np.ndarray)
        return _integrate_flat(pred, fp, overlap, *flags)
    assert isinstance(overlap, dict)
    return _integrate_panels(pred, frame, layout.panels, overlap, photon_energy_eV, *flags)


def _integrate_flat(
    pred: CrystalPredictions,
    fp: FramePixels,
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
    pred: CrystalPredictions,
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
