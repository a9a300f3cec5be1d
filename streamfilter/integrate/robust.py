"""Robust summation integration (``--method robust``): CrystFEL's peak disc, a better background.

The intensity is always a plain sum over the **same peak disc as CrystFEL** (pixels with
integer ``d2 <= r1**2`` around the pixel holding the prediction, bad pixels reject the
reflection, pixels shared with another predicted disc are left out), minus a background
estimate.  Only the background and sigma(I) differ from ``rings``:

``radial`` (default)
    One smooth background model per frame, fitted to every pixel of the frame that is not
    bad and not within ``exclude_radius`` (5 px) of a predicted reflection (any crystal) or a
    found peak (the stream's peak list).  In each 1-pixel ring of equal scattering angle the
    background is ``c0 + c1 cos(phi) + s1 sin(phi) + c2 cos(2 phi) + s2 sin(2 phi)`` (phi the
    azimuth: polarisation, tilts and slopes); the coefficients are smoothed across rings with
    a local quadratic over +-8 rings, which keeps the curvature of a water ring.  Pixels
    above the model by more than 3 sigma (Poisson) are clipped and the fit is repeated.  The
    background under a reflection is the model summed over its peak disc: it is measured
    from thousands of pixels instead of CrystFEL's few dozen, is not pulled up by the spot's
    own tails or its neighbours, and follows a water ring.  The model is not extrapolated
    inside the innermost (or beyond the outermost) ring with enough usable pixels of its own
    (2 per coefficient): a reflection with a disc pixel there, typically near the beam when
    found peaks and reflections cover the innermost rings, is BACKGROUND_UNDETERMINED and not
    written.
``plane``
    Local least-squares plane through an annulus ``r2 <= d <= bg_outer`` (8 px), with every
    predicted reflection's disc and every found peak masked, iterative high-side clipping
    (3 sigma of the residuals), and partial rings allowed at panel edges and bad pixels.
``mean``
    As ``plane`` with a flat (clipped mean) background.

sigma(I) = sqrt(g max(I, 0) + sum over the disc of the background pixel variance + the
variance of the background estimate itself).  The pixel variance is the Poisson variance of
the model (``radial``, scaled by the excess scatter the fit measured) or the clipped residual
variance (``plane``/``mean``); the last term is ``m**2 s**2 x^T (X^T X)^-1 x`` of the local
fit, or the propagated fit variance of the radial model.  CrystFEL's sigma lacks that term
and uses ``g I`` with a floor of one photon; ours keeps the floor ``g**2``.

The defaults were chosen by measurement against the truth of the reference data; the
figures and the command that produces them are in ``docs/methods.md`` (Accuracy) and
``bench/README.md``.  A local fit cannot do much better: ~150 annulus pixels pin the
background that the m = 29 peak pixels multiply only to m**2 B / n, and a plane over 8 px
misses the curvature of a water ring.

Conventions: positions are panel-relative (``fs = FS - min_fs``), pixel ``i`` spans
``[i, i + 1)``; box arrays are ``[n, q (ss), p (fs)]`` as in :mod:`.boxes`; values in ADU;
``adu_per_photon`` (g) converts ADU to photons for the Poisson terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.integrate.background import (
    BackgroundWindows,
    RadialBackground,
    _truncated_variance_factor,
    fit_radial_background,
)
from streamfilter.integrate.boxes import (
    Boxes,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
    stamp_discs,
)
from streamfilter.integrate.layout import DetectorLayout
from streamfilter.integrate.model import (
    CrystalPredictions,
    CrystalResult,
    FoundPeaks,
    RingsResult,
    Status,
    crystal_result,
    finish_result,
)

__all__ = [
    "BACKGROUNDS",
    "RobustOptions",
    "integrate_robust",
    "integrate_frame",
    "integrate_panels",
    "assemble_results",
    "PanelWork",
    "disc_mask",
]

BACKGROUNDS = ("radial", "plane", "mean")

@dataclass(frozen=True)
class RobustOptions:
    """Settings of ``--method robust`` (defaults chosen by measurement on ref-small).

    Attributes
    ----------
    background : str
        ``"radial"`` (frame-wide model, default), ``"plane"`` or ``"mean"`` (local annulus).
    bg_outer : int or None
        Outer radius (px) of the local background annulus of ``plane``/``mean``; None: 8.
        The annulus starts at r2.  Not used by ``radial``.
    clip_sigma : float
        High-side clipping threshold in standard deviations (``inf`` turns clipping off).
    partial_ok : bool
        Integrate a reflection whose box sticks out of the panel as long as its peak disc is
        whole, with the background pixels (or model) that are there.  False: CrystFEL's
        rule, the square box of half-width r3 must lie on the panel.  (Bad pixels and
        neighbours' discs in the annulus are always just left out, as in CrystFEL.)
    min_bg_pixels : int
        Fewest background pixels a local fit may use (status TOO_FEW_PIXELS below).
    exclude_radius : float
        ``radial``: pixels within this distance (px, integer offsets from the pixel holding
        the position) of a predicted reflection or found peak are left out of the fit.
    radial_smooth : int
        ``radial``: half-window, in 1-px rings, of the local-quadratic smoothing of the ring
        coefficients.
    harmonics : int
        ``radial``: highest azimuthal harmonic of each ring (0 = azimuthal average).
    keep_saturated : bool
        Keep reflections with a saturated peak or background pixel.
    """

    background: str = "radial"
    bg_outer: int | None = None
    clip_sigma: float = 3.0
    partial_ok: bool = True
    min_bg_pixels: int = 20
    exclude_radius: float = 5.0
    radial_smooth: int = 8
    harmonics: int = 2
    keep_saturated: bool = False

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(
                f"unknown robust background {self.background!r} (choose from "
                f"{', '.join(BACKGROUNDS)})"
            )
        if self.bg_outer is not None and self.bg_outer < 1:
            raise ValueError(f"bg_outer must be a positive radius in pixels, not {self.bg_outer}")
        if not self.clip_sigma > 0:
            raise ValueError(f"clip_sigma must be positive, not {self.clip_sigma}")
        if self.harmonics < 0 or self.radial_smooth < 0:
            raise ValueError("harmonics and radial_smooth must be >= 0")

    @property
    def outer_radius(self) -> int:
        """Outer radius (px) of the local annulus (``bg_outer`` or the default 8)."""
        return 8 if self.bg_outer is None else int(self.bg_outer)



def disc_mask(half_width: int, radius: float) -> np.ndarray:
    """bool ``(2W+1, 2W+1)``: box pixels whose centre lies within ``radius`` of the central
    pixel's centre (integer ``d2 <= radius**2``)."""
    d = np.arange(-half_width, half_width + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius



# --------------------------------------------------------------------------------------------
# Per-box integration
# --------------------------------------------------------------------------------------------


def integrate_robust(
    boxes: Boxes,
    radii: tuple[float, float, float],
    adu_per_photon: float | np.ndarray,
    options: RobustOptions,
    peak_mask: np.ndarray | None = None,
    background: BackgroundWindows | None = None,
    *,
    max_adu: float | np.ndarray = math.inf,
    saturation: np.ndarray | None = None,
) -> RingsResult:
    """Integrate N boxes with CrystFEL's peak disc and a robust background.

    Parameters
    ----------
    boxes : Boxes
        From :func:`gather_boxes` with half-width ``W >= int(r3)`` (and ``>= bg_outer`` for the
        local modes), with the overlap counts of all predicted reflections of the frame.
    radii : (float, float, float)
        r1, r2, r3 in pixels (truncated to integers).  r1 is the peak disc, r2 the inner edge
        of the local annulus; r2..r3 also bounds the pixels of the ``peak`` column, as in
        CrystFEL.
    adu_per_photon : float or (N,) array
        Gain g (ADU per photon) for the Poisson terms.
    options : RobustOptions
    peak_mask : (N, B, B) bool, optional
        Pixels near found peaks (the stream's peak list) that are not predicted reflections:
        left out of the local annulus.
    background : BackgroundWindows, optional
        The frame-wide model cut into the boxes; required for ``background="radial"``.
    max_adu : float or (N,) array
        Saturation level (ADU); a peak or annulus pixel above it marks the reflection saturated.
    saturation : (N, B, B) array, optional
        Per-pixel saturation levels.

    Returns
    -------
    RingsResult
        I and sigma in ADU; ``background`` is the mean background per peak pixel (ADU);
        ``peak`` the highest usable pixel of the disc and the r2..r3 annulus; ``n_background``
        the pixels behind the local fit (0 for ``radial``).  Status codes as in rings:
        OFF_PANEL (peak disc, or with ``partial_ok=False`` the box, leaves the panel),
        BAD_PEAK_PIXEL, TOO_FEW_PIXELS, SATURATED, IMPLAUSIBLE (I < -5 sigma), and for
        ``radial`` BACKGROUND_UNDETERMINED (a disc pixel where the model is not determined).
    """
    r1, r2, r3 = (int(r) for r in radii)
    w = boxes.half_width
    local = options.background != "radial"
    need = max(r3, options.outer_radius) if local else r3
    if w < need:
        raise ValueError(f"boxes have half-width {w}, need at least {need}")
    if not local and background is None:
        raise ValueError("background='radial' needs the frame model (background=...)")
    n_refl = len(boxes)
    g = np.broadcast_to(np.asarray(adu_per_photon, dtype=np.float64), (n_refl,))
    v = boxes.values.astype(np.float64)
    d = np.arange(-w, w + 1)
    d2 = d[:, None] ** 2 + d[None, :] ** 2
    status, pk = _disc_checks(boxes, r1, r3, options.partial_ok)
    m = pk.sum(axis=(1, 2))

    ring = ((d2 >= r2 * r2) & (d2 <= r3 * r3))[None] & ~boxes.bad & (boxes.overlap == 0)
    peak = np.where(pk | ring, v, -np.inf).max(axis=(1, 2), initial=-np.inf)
    limit = np.broadcast_to(np.asarray(max_adu, dtype=np.float64), (n_refl,))
    over = v > limit[:, None, None]
    if saturation is not None:
        over |= v > np.asarray(saturation, dtype=np.float64)
    saturated = ((pk | ring) & over).any(axis=(1, 2)) & (status == Status.OK)

    peak_sum = np.where(pk, v, 0.0).sum(axis=(1, 2))
    if local:
        annulus = ((d2 >= r2 * r2) & (d2 <= options.outer_radius**2))[None] & ~boxes.bad
        annulus &= boxes.overlap == 0
        if peak_mask is not None:
            annulus &= ~np.asarray(peak_mask, dtype=bool)
        n_bg = annulus.sum(axis=(1, 2))
        status[(status == Status.OK) & (n_bg < options.min_bg_pixels)] = Status.TOO_FEW_PIXELS
        bg_sum, var_bg = _local_fit(v, annulus, pk, options)
        n_used = n_bg
    else:
        model = np.where(pk, background.model, 0.0)
        bg_sum = model.sum(axis=(1, 2))
        pix_var = np.where(pk, background.pixel_var, 0.0).sum(axis=(1, 2))
        model_sd = np.where(pk, np.sqrt(np.maximum(background.model_var, 0.0)), 0.0)
        var_bg = pix_var + model_sd.sum(axis=(1, 2)) ** 2
        no_model = ~np.isfinite(bg_sum) | ~np.isfinite(var_bg)
        status[(status == Status.OK) & no_model] = Status.BACKGROUND_UNDETERMINED
        n_used = np.zeros(n_refl, dtype=np.int64)

    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = peak_sum - bg_sum
        var = g * np.maximum(intensity, 0.0) + var_bg
        sigma = np.sqrt(np.maximum(var, g * g))
        bg_mean = bg_sum / m
    if not options.keep_saturated:
        status[saturated] = Status.SATURATED
    status[(status == Status.OK) & (intensity < -5.0 * sigma)] = Status.IMPLAUSIBLE
    done = (status == Status.OK) | (saturated & options.keep_saturated)
    return finish_result(intensity, sigma, peak, bg_mean, status, saturated, done, m, n_used)


def _disc_checks(boxes: Boxes, r1: int, r3: int, partial_ok: bool) -> tuple[np.ndarray, np.ndarray]:
    """Status after the edge and bad-pixel rules, and the peak pixels summed.

    The peak disc must lie on the panel and hold no bad pixel (CrystFEL 0.12); pixels shared
    with another predicted disc are left out of the sum; fewer than 4 left: TOO_FEW_PIXELS.
    Without ``partial_ok`` the square box of half-width r3 must be on the panel too.
    """
    w = boxes.half_width
    d = np.arange(-w, w + 1)
    in_disc = (d[:, None] ** 2 + d[None, :] ** 2 <= r1 * r1)[None]
    status = np.zeros(len(boxes), dtype=np.int8)
    status[(in_disc & ~boxes.on_panel).any(axis=(1, 2))] = Status.OFF_PANEL
    if not partial_ok:
        box3 = np.abs(d) <= r3
        whole = (boxes.on_panel | ~(box3[:, None] & box3[None, :])[None]).all(axis=(1, 2))
        status[(status == Status.OK) & ~whole] = Status.OFF_PANEL
    bad = boxes.bad & boxes.on_panel
    status[(status == Status.OK) & (bad & in_disc).any(axis=(1, 2))] = Status.BAD_PEAK_PIXEL
    pk = in_disc & ~boxes.bad & (boxes.overlap <= 1)
    status[(status == Status.OK) & (pk.sum(axis=(1, 2)) < 4)] = Status.TOO_FEW_PIXELS
    return status, pk


def _local_fit(
    v: np.ndarray, annulus: np.ndarray, pk: np.ndarray, options: RobustOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Clipped least-squares mean or plane through the annulus pixels of every box.

    Returns the background summed over the peak pixels (ADU) and its variance plus the
    peak pixels' own background variance, ``m s2 + m**2 s2 xbar^T (X^T X)^-1 xbar`` (ADU^2),
    where ``s2`` is the clipped residual variance corrected for the truncation.
    """
    n_refl, b, _ = v.shape
    w = b // 2
    d = np.arange(-w, w + 1, dtype=np.float64)
    cols = [np.ones((b, b))]
    if options.background == "plane":
        cols += [np.broadcast_to(d[None, :], (b, b)), np.broadcast_to(d[:, None], (b, b))]
    design = np.stack(cols, axis=-1).reshape(b * b, -1)  # (B*B, k), same for every box
    k = design.shape[1]
    vf = v.reshape(n_refl, b * b)
    use0 = annulus.reshape(n_refl, b * b)
    use = use0.copy()
    ridge = np.diag([0.0] + [1e-6] * (k - 1))
    clip = options.clip_sigma
    for _ in range(6):
        wt = use.astype(np.float64)
        ata = np.einsum("ni,ij,ik->njk", wt, design, design) + ridge
        ata[:, 0, 0] = np.maximum(ata[:, 0, 0], 1e-12)
        atb = np.einsum("ni,ij->nj", wt * np.where(use, vf, 0.0), design)
        coef = np.linalg.solve(ata, atb[..., None])[..., 0]
        resid = vf - coef @ design.T
        n = wt.sum(axis=1)
        s2 = (np.where(use, resid, 0.0) ** 2).sum(axis=1) / np.maximum(n - k, 1.0)
        if not math.isfinite(clip):
            break
        new = use0 & (resid <= clip * np.sqrt(s2)[:, None])
        if np.array_equal(new, use):
            break
        use = new
    s2 = s2 / _truncated_variance_factor(clip)
    pkf = pk.reshape(n_refl, b * b).astype(np.float64)
    xsum = pkf @ design  # (N, k): sums of the design over the peak pixels
    bg_sum = (xsum * coef).sum(axis=1)
    inv = np.linalg.inv(ata)
    fit_var = s2 * np.einsum("nj,njk,nk->n", xsum, inv, xsum)
    m = pkf.sum(axis=1)
    return bg_sum, m * s2 + fit_var



# --------------------------------------------------------------------------------------------
# Whole frame
# --------------------------------------------------------------------------------------------


def _peaks_by_panel(
    peaks: FoundPeaks | None, panels: list[Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Found peaks as panel-relative (fs, ss) per panel name (data-array coords in)."""
    out = {p.name: (np.zeros(0), np.zeros(0)) for p in panels}
    if peaks is None or len(peaks) == 0:
        return out
    fs = np.asarray(peaks.fs, dtype=np.float64)
    ss = np.asarray(peaks.ss, dtype=np.float64)
    names = None if peaks.panel is None else np.asarray(peaks.panel).astype(str)
    for p in panels:
        on = p.contains(fs, ss) if names is None else (names == p.name)
        out[p.name] = (fs[on] - p.min_fs, ss[on] - p.min_ss)
    return out


def integrate_frame(
    frame: Any,
    predictions: list[CrystalPredictions],
    peaks: FoundPeaks | None,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: RobustOptions | None = None,
) -> list[CrystalResult]:
    """Integrate every crystal of one frame with the robust method.

    Each panel's reflections of all crystals are integrated at once by
    :func:`integrate_robust`; the overlap mask uses every prediction of the frame.

    Parameters
    ----------
    frame : streamfilter.frames.Frame
        ``frame.data[name]`` float32 (h, w), ``frame.bad[name]`` bool, optional
        ``frame.saturation[name]``, ``frame.header`` (header values for the polar grid).
    predictions : list of CrystalPredictions
        Every crystal's predicted reflections.
    peaks : FoundPeaks or None
        The frame's found peaks: kept out of the background.
    photon_energy_eV : float
    radii : (float, float, float)
        r1, r2, r3 in pixels; r1 is the peak disc.
    layout : DetectorLayout
    options : RobustOptions, optional

    Returns
    -------
    list[CrystalResult]
        One per crystal, every predicted reflection; ``written`` selects the rows to write.
    """
    work = integrate_panels(frame, predictions, peaks, photon_energy_eV, radii, layout, options)
    return assemble_results(predictions, work, layout)


@dataclass
class PanelWork:
    """One panel's robust integration with the inputs it used (a hook for methods built on
    top of robust, e.g. :mod:`streamfilter.integrate.profile`).

    Attributes
    ----------
    panel : streamfilter.geometry.Panel
    parts : list of (crystal index, row indices, fs, ss)
        The panel's predictions, crystal by crystal, in the order of the box rows;
        fs/ss are panel-relative (pixel i spans [i, i + 1)).
    boxes : Boxes
        Half-width r3 (``radial``) or max(r3, bg_outer) (local modes).
    background : BackgroundWindows or None
        The frame model cut into the boxes (``radial`` only).
    result : RingsResult
        :func:`integrate_robust` of the boxes.
    """

    panel: Any
    parts: _Parts
    boxes: Boxes
    background: BackgroundWindows | None
    result: RingsResult


def integrate_panels(
    frame: Any,
    predictions: list[CrystalPredictions],
    peaks: FoundPeaks | None,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: RobustOptions | None = None,
) -> list[PanelWork]:
    """:func:`integrate_frame` panel by panel, before the rows are put back together: one
    :class:`PanelWork` per panel with predictions (:func:`assemble_results` joins them)."""
    options = options or RobustOptions()
    panels = layout.panels
    found = _peaks_by_panel(peaks, panels)
    where = _predictions_by_panel(predictions, layout)
    model = None
    if options.background == "radial":
        model = _frame_model(frame, layout, where, found, photon_energy_eV, options)
    cuts = [_cut_panel(frame, p, where[p.name], found[p.name], model, radii, options)
            for p in panels if where[p.name]]  # fmt: skip
    if not cuts:
        return []
    # every panel's boxes integrated at once (per-box gains and saturation levels)
    counts = [len(c.boxes) for c in cuts]
    boxes = Boxes.concatenate([c.boxes for c in cuts], cuts[0].boxes.half_width)
    shape = boxes.values.shape[1:]
    windows = None
    if model is not None:
        windows = model.boxes(np.concatenate([c.rho for c in cuts]),
                              np.concatenate([c.phi for c in cuts]),
                              [c.panel.name for c in cuts], counts)  # fmt: skip
    result = integrate_robust(
        boxes, radii,
        np.repeat([c.panel.adu_per_photon_at(photon_energy_eV) for c in cuts], counts),
        options, _joined([c.peak_mask for c in cuts], counts, shape, False), windows,
        max_adu=np.repeat([getattr(c.panel, "max_adu", math.inf) for c in cuts], counts),
        saturation=_joined([c.saturation for c in cuts], counts, shape, np.inf),
    )  # fmt: skip
    out, start = [], 0
    for c, n in zip(cuts, counts, strict=True):
        part = slice(start, start + n)
        start += n
        out.append(PanelWork(
            c.panel, c.parts, c.boxes, None if windows is None else _slice_windows(windows, part),
            _slice_result(result, part),
        ))  # fmt: skip
    return out


def _joined(
    maps: list[np.ndarray | None], counts: list[int], shape: tuple[int, ...], fill: bool | float
) -> np.ndarray | None:
    """Per-panel ``(n, B, B)`` box windows joined along the boxes, ``fill`` for the panels
    without (None when no panel has any)."""
    if all(m is None for m in maps):
        return None
    return np.concatenate([
        np.full((n,) + shape, fill) if m is None else m for m, n in zip(maps, counts, strict=True)
    ])  # fmt: skip


def _slice_windows(w: BackgroundWindows, part: slice) -> BackgroundWindows:
    return BackgroundWindows(w.model[part], w.pixel_var[part], w.model_var[part])


def _slice_result(r: RingsResult, part: slice) -> RingsResult:
    return RingsResult(r.I[part], r.sigma[part], r.peak[part], r.background[part],
                       r.status[part], r.saturated[part], r.n_peak[part],
                       r.n_background[part])  # fmt: skip


def assemble_results(
    predictions: list[CrystalPredictions], work: list[PanelWork], layout: DetectorLayout
) -> list[CrystalResult]:
    """Per-crystal results from the panels' :class:`PanelWork` (rows not on any panel stay
    OFF_PANEL with NaN numbers)."""
    fields = ("I", "sigma", "peak", "background", "status", "saturated")
    out = [
        {f: np.full(len(pd), np.nan) for f in fields[:4]}
        | {"status": np.full(len(pd), Status.OFF_PANEL, dtype=np.int8),
           "saturated": np.zeros(len(pd), dtype=bool)}
        for pd in predictions
    ]  # fmt: skip
    for pw in work:
        rr = pw.result
        start = 0
        for ci, rows, _, _ in pw.parts:
            for f in fields:
                out[ci][f][rows] = getattr(rr, f)[start : start + len(rows)]
            start += len(rows)
    return [
        crystal_result(pd, RingsResult(o["I"], o["sigma"], o["peak"], o["background"],
                                       o["status"], o["saturated"]), layout)
        for pd, o in zip(predictions, out, strict=True)
    ]  # fmt: skip


_Parts = list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]


def _predictions_by_panel(
    predictions: list[CrystalPredictions], layout: DetectorLayout
) -> dict[str, _Parts]:
    """Per panel: (crystal index, row indices, panel-relative fs, ss) of every prediction.

    The positions go through their data-array values (``fs + min_fs - min_fs``), the ones
    the stream prints, to the last bit.
    """
    out: dict[str, _Parts] = {p.name: [] for p in layout.panels}
    for ci, pd in enumerate(predictions):
        fs = pd.fs + layout.min_fs[pd.panel]
        ss = pd.ss + layout.min_ss[pd.panel]
        for i in np.unique(pd.panel).tolist():
            rows = np.flatnonzero(pd.panel == i)
            p = layout.panels[i]
            out[p.name].append((ci, rows, fs[rows] - p.min_fs, ss[rows] - p.min_ss))
    return out


def _frame_model(
    frame: Any,
    layout: DetectorLayout,
    where: dict[str, _Parts],
    found: dict[str, tuple[np.ndarray, np.ndarray]],
    photon_energy_eV: float,
    options: RobustOptions,
) -> RadialBackground:
    """The radial background of a frame, fitted away from every prediction and found peak."""
    usable = {}
    for p in layout.panels:
        fs = np.concatenate([w[2] for w in where[p.name]] + [found[p.name][0]])
        ss = np.concatenate([w[3] for w in where[p.name]] + [found[p.name][1]])
        near = stamp_discs((p.height, p.width), fs, ss, options.exclude_radius)
        usable[p.name] = ~np.asarray(frame.bad[p.name], dtype=bool) & ~near
    return fit_radial_background(
        frame.data, usable, layout.polar_grid(getattr(frame, "header", None)),
        {p.name: p.adu_per_photon_at(photon_energy_eV) for p in layout.panels},
        harmonics=options.harmonics, smooth=options.radial_smooth,
        clip_sigma=options.clip_sigma,
    )  # fmt: skip


@dataclass
class _PanelCut:
    """One panel's boxes and what the frame-wide integration needs of it."""

    panel: Any
    parts: _Parts
    boxes: Boxes
    peak_mask: np.ndarray | None  # (n, B, B) near found peaks (local modes)
    saturation: np.ndarray | None  # (n, B, B) per-pixel saturation levels
    rho: np.ndarray | None  # (n, B, B) polar grid of the box pixels (radial)
    phi: np.ndarray | None


def _cut_panel(
    frame: Any,
    panel: Any,
    parts: _Parts,
    found: tuple[np.ndarray, np.ndarray],
    model: RadialBackground | None,
    radii: tuple[float, float, float],
    options: RobustOptions,
) -> _PanelCut:
    """The boxes of all predictions (all crystals) on one panel, with their overlap counts,
    found-peak mask, saturation levels and polar grid."""
    shape = (panel.height, panel.width)
    r1, r3 = int(radii[0]), int(radii[2])
    half = r3 if model is not None else max(r3, options.outer_radius)
    fs = np.concatenate([w[2] for w in parts])
    ss = np.concatenate([w[3] for w in parts])
    cfs, css = central_pixels(fs, ss)
    ov = overlap_map(shape, fs, ss, float(radii[0]))
    boxes = gather_boxes(frame.data[panel.name], frame.bad[panel.name], cfs, css, half, ov)
    pmask = None
    if len(found[0]) and model is None:
        # found peaks that are not predicted reflections (those are in the overlap map)
        near_pred = stamp_discs(shape, fs, ss, r1)
        pc, ps = central_pixels(*found)
        lone = ~near_pred[np.clip(ps, 0, shape[0] - 1), np.clip(pc, 0, shape[1] - 1)]
        stamp = stamp_discs(shape, found[0][lone], found[1][lone], r1)
        pmask, _ = gather_window(stamp, cfs, css, half, False)
    sat_win = None
    sat_maps = getattr(frame, "saturation", None)
    if sat_maps is not None and sat_maps.get(panel.name) is not None:
        sat = np.asarray(sat_maps[panel.name], dtype=np.float32)
        sat_win, _ = gather_window(sat, cfs, css, half, np.inf)
    rho = phi = None
    if model is not None:
        rho, phi = model.grid_windows(panel.name, cfs, css, half)
    return _PanelCut(panel, parts, boxes, pmask, sat_win, rho, phi)
