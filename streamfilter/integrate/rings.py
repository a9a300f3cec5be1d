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
``sum / n`` then ``c * m``, so every printed ``%10.2f`` digit matches.

All radii are in pixels; the ring masks use ``int(r)`` as CrystFEL >= 0.10 does.  Intensities
are in ADU (no gain division).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import (
    BACKGROUND,
    PEAK,
    Boxes,
    central_pixels,
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
        return self.status == Status.OK

    @property
    def n_saturated(self) -> int:
        """``num_saturated_reflections``: saturated boxes that passed the box checks."""
        return int(np.count_nonzero(self.saturated))

    @property
    def n_implausible(self) -> int:
        """``num_implausible_reflections``."""
        return int(np.count_nonzero(self.status == Status.IMPLAUSIBLE))


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
    """Sequential double sum along axis 1 (C loop order, not numpy's pairwise sum)."""
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    return np.cumsum(x, axis=1)[:, -1]


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
    n_refl = len(boxes)
    status, pk, bg = _check_boxes(boxes, (r1, r2, r3), reject_bad_peak)
    v = boxes.values.astype(np.float64)
    used = pk | bg
    with np.errstate(invalid="ignore"):
        peak = np.where(used, v, -np.inf).max(axis=(1, 2), initial=-np.inf)
        limit = np.broadcast_to(np.asarray(max_adu, dtype=np.float64), (n_refl,))
        over = boxes.values > limit[:, None, None]
        if saturation is not None:
            over |= boxes.values > np.asarray(saturation, dtype=np.float32)
    saturated_box = (used & over).any(axis=(1, 2))
    m = pk.sum(axis=(1, 2))
    n = bg.sum(axis=(1, 2))

    # CrystFEL loops p (fs) outer, q (ss) inner: flatten boxes [n, q, p] in [n, p, q] order
    # so that sequential sums add in the same order.
    b = 2 * r3 + 1

    def flat(x: np.ndarray) -> np.ndarray:
        return np.swapaxes(np.broadcast_to(x, v.shape), 1, 2).reshape(n_refl, b * b)

    vf, pkf, bgf = flat(v), flat(pk), flat(bg)
    pp = flat(np.arange(b, dtype=np.float64)[None, None, :])
    qq = flat(np.arange(b, dtype=np.float64)[None, :, None])

    with np.errstate(divide="ignore", invalid="ignore"):
        bg_mean = _seq_sum(np.where(bgf, vf, 0.0)) / n
        if gradient:
            a_, b_, c_ = _fit_plane(vf, bgf, pp, qq)
            steep = _too_steep(a_, b_, c_, vf, pkf, pp, qq, m)
            status[(status == Status.OK) & steep] = Status.BG_GRADIENT
        else:
            a_, b_, c_ = np.zeros(n_refl), np.zeros(n_refl), bg_mean

        integrated = status == Status.OK
        saturated = integrated & saturated_box
        if not keep_saturated:
            status[saturated] = Status.SATURATED

        intensity = _seq_sum(np.where(pkf, vf, 0.0))
        intensity = intensity - a_ * _seq_sum(np.where(pkf, pp, 0.0))
        intensity = intensity - b_ * _seq_sum(np.where(pkf, qq, 0.0))
        intensity = intensity - c_ * m
        dev = np.where(bgf, vf - bg_mean[:, None], 0.0)
        var_bg = _seq_sum(dev * dev) / n  # about the plain mean, even with -grad
        g = np.broadcast_to(np.asarray(adu_per_photon, dtype=np.float64), (n_refl,))
        sigma = np.sqrt(poisson_variance(intensity, g) + m * var_bg)

    status[(status == Status.OK) & (intensity < -5.0 * sigma)] = Status.IMPLAUSIBLE
    done = integrated & ~(saturated & ~keep_saturated)
    nan = np.full(n_refl, np.nan)
    return RingsResult(
        I=np.where(done, intensity, nan),
        sigma=np.where(done, sigma, nan),
        peak=np.where(done, peak, nan),
        background=np.where(done, bg_mean, nan),
        status=status,
        saturated=saturated,
        n_peak=m.astype(np.int64),
        n_background=n.astype(np.int64),
    )


def _check_boxes(
    boxes: Boxes, radii: tuple[int, int, int], reject_bad_peak: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``check_box``: status after the edge, bad-pixel and pixel-count rules, and the peak
    and background pixels left after bad pixels and the overlap mask.

    Returns
    -------
    status : np.ndarray
        int8 (N,): OK, OFF_PANEL, BAD_PEAK_PIXEL or TOO_FEW_PIXELS.
    pk, bg : np.ndarray
        bool (N, B, B) peak and background pixels used.
    """
    cls = ring_classes(*radii, boxes.half_width)[None, :, :]
    is_pk = cls == PEAK
    status = np.zeros(len(boxes), dtype=np.int8)
    status[~boxes.fully_on_panel] = Status.OFF_PANEL
    bad = boxes.bad & boxes.on_panel
    if reject_bad_peak:
        bad_peak = (bad & is_pk).any(axis=(1, 2))
        status[(status == Status.OK) & bad_peak] = Status.BAD_PEAK_PIXEL
    # make_BgMask: other discs exclude background/ignored pixels; a peak pixel is excluded
    # only when a second disc (not just its own) covers it
    excluded = bad | np.where(is_pk, boxes.overlap > 1, boxes.overlap > 0)
    pk = is_pk & ~excluded
    bg = (cls == BACKGROUND) & ~excluded
    few = (pk.sum(axis=(1, 2)) < 4) | (bg.sum(axis=(1, 2)) < 4)
    status[(status == Status.OK) & few] = Status.TOO_FEW_PIXELS
    return status, pk, bg


def _too_steep(
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    vf: np.ndarray,
    pkf: np.ndarray,
    pp: np.ndarray,
    qq: np.ndarray,
    m: np.ndarray,
) -> np.ndarray:
    """``bg_ok`` failed: |a| or |b| > |peak height - mean plane under the peak| / 10."""
    height = np.where(pkf, vf, 0.0).max(axis=1, initial=0.0)
    plane = a[:, None] * pp + b[:, None] * qq + c[:, None]
    under = _seq_sum(np.where(pkf, plane, 0.0)) / m
    max_grad = np.abs(height - under) / 10.0
    return (np.abs(a) > max_grad) | (np.abs(b) > max_grad)


def _fit_plane(
    vf: np.ndarray, bgf: np.ndarray, pp: np.ndarray, qq: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fit_gradient_bg``: plane a p + b q + c through the background pixels (box coords)."""
    s = _seq_sum
    z = np.where(bgf, 1.0, 0.0)
    spp, spq, sp = s(z * pp * pp), s(z * pp * qq), s(z * pp)
    sqq, sq, sn = s(z * qq * qq), s(z * qq), s(z)
    mat = np.stack(
        [
            np.stack([spp, spq, sp], axis=1),
            np.stack([spq, sqq, sq], axis=1),
            np.stack([sp, sq, sn], axis=1),
        ],
        axis=1,
    )
    rhs = np.stack([s(z * vf * pp), s(z * vf * qq), s(z * vf)], axis=1)
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
        return self.status == Status.OK

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
    out = np.clip(pred, printed - 0.05 + eps, printed + 0.05 - eps)
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
    from streamfilter.predict import predict_reflections, threshold_radius_for

    table = getattr(xtal, "reflections", None) if use_stream_rows else None
    have_rows = table is not None and len(table) > 0
    radius = float(xtal.profile_radius or 0.0)
    tol = radius_tolerance if have_rows else 0.0
    max_d = math.inf
    if math.isfinite(push_res) and getattr(xtal, "resolution_limit", None) is not None:
        max_d = (xtal.resolution_limit + push_res) * 1e9
    pr = predict_reflections(
        xtal.astar,
        xtal.bstar,
        xtal.cstar,
        photon_energy_eV,
        detector,
        profile_radius=radius + tol,
        bandwidth=bandwidth,
        det_shift_mm=_det_shift(xtal),
        max_one_over_d=max_d,
        centering=getattr(xtal, "centering", None) or "P",
        header_values=header_values,
    )
    if tol > 0:
        r_star = threshold_radius_for(
            pr.h, pr.k, pr.l, xtal.astar, xtal.bstar, xtal.cstar, photon_energy_eV, bandwidth,
            max(radius - tol, 0.0), radius + tol,
        )  # fmt: skip
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
    tpanel = np.array([index.get(str(x), -1) for x in table.panel], dtype=np.int64)
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


def _overlap_maps(
    panels: list[Any], preds: list[_CrystalPrediction], r1: float
) -> dict[int, np.ndarray]:
    """One ``make_BgMask`` map per panel from the predictions of all crystals."""
    maps = {}
    for i, p in enumerate(panels):
        fs = [pd.fs[pd.panel == i] for pd in preds]
        ss = [pd.ss[pd.panel == i] for pd in preds]
        maps[i] = overlap_map(
            (p.height, p.width),
            np.concatenate(fs) if fs else np.zeros(0),
            np.concatenate(ss) if ss else np.zeros(0),
            r1,
        )
    return maps


def _integrate_prediction(
    pred: _CrystalPrediction,
    frame: Any,
    panels: list[Any],
    overlaps: dict[int, np.ndarray],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    gradient: bool,
    keep_saturated: bool,
    reject_bad_peak: bool,
) -> tuple[RingsResult, int]:
    """Integrate every reflection of one crystal, panel by panel."""
    n = len(pred.h)
    half = int(radii[2])
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
    sat_maps = getattr(frame, "saturation", None)
    for i, p in enumerate(panels):
        sel = np.flatnonzero(pred.panel == i)
        if sel.size == 0:
            continue
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
        for f in ("I", "sigma", "peak", "background", "status", "saturated"):
            getattr(out, f)[sel] = getattr(res, f)
        out.n_peak[sel] = res.n_peak
        out.n_background[sel] = res.n_background
    return out, out.n_saturated


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
    if use_stream_rows and any(np.any(a) for a in ambiguous):
        old_radii = tuple(stream_radii) if stream_radii is not None else tuple(radii)
        overlaps = _overlap_maps(panels, preds, float(old_radii[0]))
        settled = []
        for x, pd, amb in zip(crystals, preds, ambiguous, strict=True):
            would_write = np.zeros(len(pd.h), dtype=bool)
            if np.any(amb):
                trial, _ = _integrate_prediction(
                    pd.select(amb), overlaps=overlaps, **{**integrate, "radii": old_radii}
                )
                would_write[amb] = trial.status == Status.OK
            settled.append(pd.select(_settle_radius(x, pd, would_write, profile_radius_tolerance)))
        preds = settled

    overlaps = _overlap_maps(panels, preds, float(radii[0]))
    min_fs = np.array([p.min_fs for p in panels], dtype=np.float64)
    min_ss = np.array([p.min_ss for p in panels], dtype=np.float64)
    names = np.array([p.name for p in panels], dtype=object)
    results = []
    for pd in preds:
        res, n_sat = _integrate_prediction(pd, overlaps=overlaps, **integrate)
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
                n_saturated=n_sat,
                n_implausible=res.n_implausible,
            )
        )
    return results
