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
    own tails or its neighbours, and follows a water ring.
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

Chosen by measurement (``python bench/accuracy_ref_small.py``): on ref-small's two streams,
over the same rows, radii and peak discs, RMS(I - true) relative to CrystFEL's rings is

=====================  ===============  ===============  =========================
background             r345 all/water   r234 all/water   RMS((I - true)/sigma)
=====================  ===============  ===============  =========================
radial (default)       0.831 / 0.794    0.806 / 0.813    1.02 / 1.01
plane, 8 px            0.889 / 0.885    0.828 / 0.849    1.04 / 1.03
mean, 8 px             0.894 / 0.887    0.829 / 0.850    1.01 / 1.00
true background        0.816 / 0.788    0.803 / 0.814    (floor of any summation)
CrystFEL rings         1                1                1.26 / 1.20
=====================  ===============  ===============  =========================

(water: the 2.95-3.5 A shell.)  A local fit cannot do much better: ~150 annulus pixels pin
the background that the m = 29 peak pixels multiply only to m**2 B / n, and a plane over
8 px misses the curvature of the water ring.  On :mod:`streamfilter.synth` data the radial
model is likewise within 1-2 % of the true background.

Conventions: positions are panel-relative (``fs = FS - min_fs``), pixel ``i`` spans
``[i, i + 1)``; box arrays are ``[n, q (ss), p (fs)]`` as in :mod:`.boxes`; values in ADU;
``adu_per_photon`` (g) converts ADU to photons for the Poisson terms.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import (
    Boxes,
    _take_window,
    _window_index,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
)
from streamfilter.integrate.rings import (
    CrystalResult,
    RingsResult,
    Status,
    finish_result,
    integrate_frame_crystfel,
)

__all__ = [
    "HELP",
    "BACKGROUNDS",
    "RobustOptions",
    "BackgroundWindows",
    "RadialBackground",
    "PolarGrid",
    "polar_grid",
    "fit_radial_background",
    "integrate_robust",
    "integrate_frame_robust",
    "integrate_frame_panels",
    "assemble_results",
    "PanelWork",
    "disc_mask",
]

BACKGROUNDS = ("radial", "plane", "mean")

#: Text for ``streamfilter reintegrate --help`` (``--method robust`` and ``--background``).
HELP = """\
  robust    the peak disc of CrystFEL (d^2 <= r1^2 around the pixel holding the prediction,
            same overlap and bad-pixel rules) minus a better background, and a sigma(I) that
            includes the uncertainty of that background. --background selects:
              radial  (default) one smooth model per frame: in every 1-px ring of equal
                      scattering angle c0 + c1 cos(phi) + s1 sin(phi) + c2 cos(2phi) +
                      s2 sin(2phi), smoothed over +-8 rings by a local quadratic (keeps a
                      water ring), fitted to all pixels farther than 5 px from any
                      predicted reflection or found peak, clipped at 3 sigma above
              plane   local plane through the annulus r2..8 px, neighbours' discs and
                      found peaks masked, iterative 3-sigma high-side clipping
              mean    the same with a flat clipped mean
            Reflections whose box leaves the panel are kept when the peak disc is whole
            (partial rings). On ref-small, RMS(I - true) is 0.83x CrystFEL's (0.79x in the
            water-ring shell) and RMS((I - true)/sigma) 1.02 instead of 1.26.
"""


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


@dataclass
class BackgroundWindows:
    """A frame-wide background model cut into the same boxes as the pixels.

    Attributes
    ----------
    model : np.ndarray
        float64 ``(N, B, B)`` background (ADU per pixel); NaN where there is no model.
    pixel_var : np.ndarray
        float64 ``(N, B, B)`` expected variance of one background pixel (ADU^2).
    model_var : np.ndarray
        float64 ``(N, B, B)`` variance of the model value itself (ADU^2).  Model errors of
        neighbouring pixels are treated as fully correlated.
    """

    model: np.ndarray
    pixel_var: np.ndarray
    model_var: np.ndarray


def disc_mask(half_width: int, radius: float) -> np.ndarray:
    """bool ``(2W+1, 2W+1)``: box pixels whose centre lies within ``radius`` of the central
    pixel's centre (integer ``d2 <= radius**2``)."""
    d = np.arange(-half_width, half_width + 1)
    return d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius


def _truncated_mean_shift(k: float) -> float:
    """How far (in sigma) the mean of a unit normal truncated above ``k`` lies below 0."""
    if not math.isfinite(k):
        return 0.0
    phi = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    return phi / (0.5 * (1.0 + math.erf(k / math.sqrt(2.0))))


def _truncated_variance_factor(k: float) -> float:
    """Variance of a unit normal truncated above ``k`` (one-sided clip), for correcting the
    variance of clipped residuals."""
    if not math.isfinite(k):
        return 1.0
    phi = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + math.erf(k / math.sqrt(2.0)))
    lam = phi / cdf
    return 1.0 - k * lam - lam * lam


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
        BAD_PEAK_PIXEL, TOO_FEW_PIXELS, SATURATED, IMPLAUSIBLE (I < -5 sigma).
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
        status[(status == Status.OK) & no_model] = Status.TOO_FEW_PIXELS
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
# Frame-wide radial background model
# --------------------------------------------------------------------------------------------


@dataclass
class PolarGrid:
    """Scattering geometry of every pixel centre of the detector, panel by panel.

    Attributes
    ----------
    rho : dict of str to np.ndarray
        float64 (h, w): ``L tan(2 theta)`` in pixels, with L the median camera length of the
        panels in pixels, i.e. the distance from the beam on a flat detector at L.
    phi : dict of str to np.ndarray
        float64 (h, w): azimuth ``atan2(y, x)`` in radians (lab frame).
    """

    rho: dict[str, np.ndarray]
    phi: dict[str, np.ndarray]


_GRID_CACHE: OrderedDict = OrderedDict()


def polar_grid(detector: Any, header_values: dict[str, float] | None = None) -> PolarGrid:
    """Scattering angle and azimuth of every pixel centre (cached per geometry and distance).

    The pixel centre ``(fs + 0.5, ss + 0.5)`` (panel-relative) sits at lab
    ``corner + fs_vec * fs + ss_vec * ss`` (pixels), z = ``(clen + coffset) / pitch`` plus
    the panel's z components; ``detector_shift_x/y`` moves every corner.
    """
    shift = getattr(detector, "detector_shift_m", None)
    sx, sy = shift(header_values) if shift is not None else (0.0, 0.0)
    clens = tuple(float(detector.clen_m(header_values, panel=p)) for p in detector.panels)
    key = (
        tuple(
            (p.name, p.width, p.height, p.corner_x, p.corner_y, tuple(p.fs), tuple(p.ss), p.res,
             p.coffset)
            for p in detector.panels
        ),
        clens, float(sx), float(sy),
    )  # fmt: skip
    hit = _GRID_CACHE.get(key)
    if hit is not None:
        _GRID_CACHE.move_to_end(key)
        return hit
    lab = {}
    for p, clen in zip(detector.panels, clens, strict=True):
        pitch = 1.0 / float(p.res)
        ss, fs = np.mgrid[0 : p.height, 0 : p.width].astype(np.float64) + 0.5
        fv, sv = np.asarray(p.fs, dtype=np.float64), np.asarray(p.ss, dtype=np.float64)
        x = p.corner_x + sx / pitch + fs * fv[0] + ss * sv[0]
        y = p.corner_y + sy / pitch + fs * fv[1] + ss * sv[1]
        z = (clen + float(p.coffset or 0.0)) / pitch + fs * fv[2] + ss * sv[2]
        lab[p.name] = (x, y, z)
    length = float(np.median([z.mean() for _, _, z in lab.values()]))
    grid = PolarGrid(
        rho={k: length * np.hypot(x, y) / z for k, (x, y, z) in lab.items()},
        phi={k: np.arctan2(y, x) for k, (x, y, _) in lab.items()},
    )
    _GRID_CACHE[key] = grid
    while len(_GRID_CACHE) > 4:
        _GRID_CACHE.popitem(last=False)
    return grid


@dataclass
class RadialBackground:
    """The frame-wide background of :func:`fit_radial_background`.

    The model is kept as its ring coefficients and evaluated only where asked (the boxes),
    which is much cheaper than a full image per frame.

    Attributes
    ----------
    coef : np.ndarray
        float64 ``(n_ring, p)``: smoothed coefficients of the harmonics ``1, cos phi,
        sin phi, cos 2phi, ...`` at ring centres ``rho = r + 0.5`` (ADU per pixel).
    fitted : np.ndarray
        bool ``(n_ring,)``: the ring had data within the smoothing window.
    q_cell : np.ndarray
        float64 ``(n_ring, n_azimuth)``: variance of the model per unit pixel variance.
    excess : dict of str to float
        F per panel: measured scatter about the model over its Poisson variance (1 for pure
        Poisson data; the fit's clipping is corrected for).
    gain : dict of str to float
        g (ADU per photon) per panel.
    grid : PolarGrid
    clip_shift : float
        ``phi(k) / Phi(k)`` for the clipping threshold k: a fit to data clipped at k sigma
        above the model sits that many sigma low, and :meth:`evaluate` adds it back.
    """

    coef: np.ndarray
    fitted: np.ndarray
    q_cell: np.ndarray
    excess: dict[str, float]
    gain: dict[str, float]
    grid: PolarGrid
    clip_shift: float = 0.0

    def evaluate(
        self, panel: str, rho: np.ndarray, phi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Model (ADU), pixel variance ``F g max(model, g)`` and model variance (ADU^2) at
        pixels of ``panel`` with the given ``rho`` (px) and azimuth ``phi`` (rad); NaN where
        ``rho`` is NaN or outside the fitted rings."""
        p = self.coef.shape[1]
        finite = np.isfinite(rho)
        phi = np.where(finite, phi, 0.0)
        hx = _harmonics(phi.ravel(), (p - 1) // 2).reshape(rho.shape + (p,))
        return self._evaluate(panel, rho, phi, hx)

    def _evaluate(
        self, panel: str, rho: np.ndarray, phi: np.ndarray, hx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`evaluate` with the harmonics ``hx`` (``rho.shape + (p,)``) of ``phi`` given
        (their values do not matter where ``rho`` is NaN)."""
        n_ring = self.coef.shape[0]
        n_az = self.q_cell.shape[1]
        finite = np.isfinite(rho)
        rho = np.where(finite, rho, 0.0)
        pos = rho - 0.5
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_ring - 1)
        i1 = np.minimum(i0 + 1, n_ring - 1)
        frac = np.clip(pos - i0, 0.0, 1.0)
        c0 = self.coef[i0]
        model = np.einsum("...j,...j->...", c0 + frac[..., None] * (self.coef[i1] - c0), hx)
        model[~finite | ~(self.fitted[i0] | self.fitted[i1])] = np.nan
        g = float(self.gain[panel])
        pixel_var = float(self.excess[panel]) * g * np.maximum(model, g)
        model += self.clip_shift * np.sqrt(pixel_var)
        ring = np.clip(np.floor(rho).astype(np.int64), 0, n_ring - 1)
        sector = np.floor((np.where(finite, phi, 0.0) + math.pi) / (2 * math.pi) * n_az)
        sector = np.clip(sector.astype(np.int64), 0, n_az - 1)
        model_var = pixel_var * self.q_cell[ring, sector]
        return model, pixel_var, model_var

    def windows(
        self, panel: str, centre_fs: np.ndarray, centre_ss: np.ndarray, half_width: int
    ) -> BackgroundWindows:
        """The model of ``panel`` cut into ``(N, 2W+1, 2W+1)`` boxes (NaN off the panel)."""
        rho_map = self.grid.rho[panel]
        idx, on = _window_index(rho_map.shape, centre_fs, centre_ss, half_width)
        rho = _take_window(rho_map, idx, on, np.nan)
        phi = _take_window(self.grid.phi[panel], idx, on, 0.0)
        hx = _grid_harmonics(self.grid, panel, (self.coef.shape[1] - 1) // 2)[idx]
        return BackgroundWindows(*self._evaluate(panel, rho, phi, hx))

    def image(self, panel: str) -> np.ndarray:
        """The model over the whole panel (ADU, (h, w)), e.g. for plots."""
        return self.evaluate(panel, self.grid.rho[panel], self.grid.phi[panel])[0]


def _harmonics(phi: np.ndarray, order: int) -> np.ndarray:
    """(N, 2 order + 1): 1, cos phi, sin phi, cos 2phi, sin 2phi, ..."""
    cols = [np.ones_like(phi)]
    for k in range(1, order + 1):
        cols += [np.cos(k * phi), np.sin(k * phi)]
    return np.stack(cols, axis=1)


def _grid_harmonics(grid: PolarGrid, panel: str, order: int) -> np.ndarray:
    """``_harmonics`` of every pixel of ``panel``, ``(h * w, 2 order + 1)`` (cached on the
    grid: the geometry is the same from frame to frame)."""
    cache = grid.__dict__.setdefault("_harmonics", {})
    key = (panel, order)
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = _harmonics(grid.phi[panel].ravel(), order)
        hit.flags.writeable = False
    return hit


def _smooth_quadratic(y: np.ndarray, weight: np.ndarray, half: int) -> np.ndarray:
    """Weighted local-quadratic (Savitzky-Golay) smoothing of the columns of ``y`` (nb, k)
    over +-``half`` bins; bins without weight in their window come out NaN."""
    if half <= 0:
        return np.where(weight[:, None] > 0, y, np.nan)
    off = np.arange(-half, half + 1, dtype=np.float64)
    yw = np.where(weight[:, None] > 0, y, 0.0) * weight[:, None]
    # sum_d a[c + d] * d**j for every centre c (zero outside), j = 0..4, of the weights and
    # of every weighted column at once
    cols = np.pad(np.concatenate([weight[:, None], yw], axis=1), ((half, half), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(cols, 2 * half + 1, axis=0)
    mom = win @ (off[:, None] ** np.arange(5))  # (nb, 1 + k, 5)
    m0 = mom[:, 0, :]
    hankel = np.arange(3)[:, None] + np.arange(3)[None, :]
    mat = m0[:, hankel] + np.eye(3) * 1e-9 * np.maximum(m0[:, 0], 1.0)[:, None, None]
    # the centre value is the constant term: first row of mat^-1 times the moments
    first = np.linalg.inv(mat)[:, 0, :]
    out = np.einsum("nj,nkj->nk", first, mom[:, 1:, :3])
    out[m0[:, 0] <= 0] = np.nan
    return out


def _sg_variance_factor(half: int) -> float:
    """Variance of the centre value of an equal-weight quadratic smoother of +-half bins,
    relative to one bin's variance."""
    if half <= 0:
        return 1.0
    h = half
    return 3.0 * (3 * h * h + 3 * h - 1) / ((2 * h - 1) * (2 * h + 1) * (2 * h + 3))


@dataclass
class _RadialPlan:
    """Geometry-only arrays of :func:`fit_radial_background`, computed once per grid."""

    n_ring: int
    n_panel: int
    pcell: np.ndarray  # (N,) per pixel: panel * n_ring * n_azimuth + ring * n_azimuth + sector
    hs: np.ndarray  # (n_azimuth, p) harmonics at the sector centres
    outer: np.ndarray  # (n_azimuth, p * p) products of the harmonics


def _radial_plan(grid: PolarGrid, names: list[str], harmonics: int, n_azimuth: int) -> _RadialPlan:
    key = (tuple(names), harmonics, n_azimuth)
    plans = grid.__dict__.setdefault("_plans", {})
    if key in plans:
        return plans[key]
    rho = np.concatenate([grid.rho[k].ravel() for k in names])
    phi = np.concatenate([grid.phi[k].ravel() for k in names])
    ring = np.floor(rho).astype(np.int64)
    sector = np.floor((phi + math.pi) / (2 * math.pi) * n_azimuth).astype(np.int64)
    sector = np.clip(sector, 0, n_azimuth - 1)
    sec_phi = (np.arange(n_azimuth) + 0.5) * (2 * math.pi / n_azimuth) - math.pi
    hs = _harmonics(sec_phi, harmonics)
    n_ring = int(ring.max()) + 1
    panel_id = np.repeat(np.arange(len(names)), [grid.rho[k].size for k in names])
    plan = _RadialPlan(
        n_ring=n_ring,
        n_panel=len(names),
        pcell=(panel_id * n_ring + ring) * n_azimuth + sector,
        hs=hs,
        outer=(hs[:, :, None] * hs[:, None, :]).reshape(n_azimuth, -1),
    )
    plans[key] = plan
    return plan


def fit_radial_background(
    data: dict[str, np.ndarray],
    usable: dict[str, np.ndarray],
    grid: PolarGrid,
    adu_per_photon: dict[str, float],
    *,
    harmonics: int = 2,
    smooth: int = 8,
    clip_sigma: float = 3.0,
    n_iter: int = 3,
    n_azimuth: int = 72,
    ridge: float = 1e-2,
) -> RadialBackground:
    """Fit the smooth frame background of ``background="radial"``.

    Each 1-px ring of equal ``rho`` (scattering angle) gets ``sum_k c_k h_k(phi)`` with the
    azimuthal harmonics up to ``harmonics``, fitted by least squares to its usable pixels,
    accumulated on a (ring, ``n_azimuth``-sector) grid; a small ridge on the harmonics keeps
    rings seen over a short arc stable.  The coefficients are smoothed over +-``smooth`` rings
    with a weighted local quadratic (which keeps the curvature of a water ring) and
    interpolated linearly in rho.  Pixels more than ``clip_sigma`` sigma (Poisson, times the
    measured excess) above the model are dropped and the fit repeated, ``n_iter`` fits in all.

    Parameters
    ----------
    data : dict of str to (h, w) float array
        Pixel values (ADU) of every panel.
    usable : dict of str to (h, w) bool array
        Pixels the fit may use: not bad and away from spots.
    grid : PolarGrid
        From :func:`polar_grid`.
    adu_per_photon : dict of str to float
        Gain g of each panel.

    Returns
    -------
    RadialBackground
    """
    names = list(data)
    plan = _radial_plan(grid, names, harmonics, n_azimuth)
    n_pan, n_ring = plan.n_panel, plan.n_ring
    n_cells = n_ring * n_azimuth
    n_bins = n_pan * n_cells
    p = plan.hs.shape[1]
    y = np.concatenate([np.asarray(data[k]).ravel() for k in names])
    good = np.concatenate([np.asarray(usable[k], dtype=bool).ravel() for k in names])
    good &= np.isfinite(y)
    # Only the usable pixels, in their order: the sums below skip nothing but zeros.
    at = np.flatnonzero(good)
    y = y[at].astype(np.float64)
    bins = plan.pcell[at]
    gains = np.array([float(adu_per_photon[k]) for k in names])
    gain = np.repeat(gains, n_cells)  # per (panel, ring, sector) bin
    idx = np.arange(1, p)
    centres = np.arange(n_ring, dtype=np.float64)
    clip_var = _truncated_variance_factor(clip_sigma)

    # Sufficient statistics per (panel, ring, sector) bin of the pixels the fit uses: the
    # model is constant over a bin, so the residual sums follow from them.  Clipped pixels
    # (few) are taken out of the sums of all usable pixels.
    def stats(b: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.bincount(b, minlength=n_bins), np.bincount(b, v, minlength=n_bins),
             np.bincount(b, v * v, minlength=n_bins)]
        )  # fmt: skip

    all_stats = stats(bins, y)
    use = all_stats
    excess = np.ones(n_pan)
    for it in range(n_iter):
        cnt, tot = use[0].reshape(n_pan, n_cells).sum(0), use[1].reshape(n_pan, n_cells).sum(0)
        cnt, tot = cnt.reshape(n_ring, n_azimuth), tot.reshape(n_ring, n_azimuth)
        ata = (cnt @ plan.outer).reshape(n_ring, p, p)
        n_r = cnt.sum(axis=1)
        ata[:, idx, idx] += ridge * np.maximum(n_r, 1.0)[:, None]
        ata[:, 0, 0] += 1e-9
        inv = np.linalg.inv(ata)
        coef = np.einsum("rij,rj->ri", inv, tot @ plan.hs)
        smooth_coef = _smooth_quadratic(coef, np.where(n_r >= 2 * p, n_r, 0.0), smooth)
        ok = np.isfinite(smooth_coef[:, 0])
        if not ok.any():
            break
        filled = np.stack(
            [np.interp(centres, centres[ok], smooth_coef[ok, j]) for j in range(p)], axis=1
        )
        # Residuals against the model on the (ring, sector) grid: cheap, and close enough
        # for a 3-sigma cut and for the excess-scatter estimate.
        coarse = np.tile((filled @ plan.hs.T).ravel(), n_pan)
        poisson = gain * np.maximum(coarse, gain)
        r2 = use[2] - 2.0 * coarse * use[1] + coarse * coarse * use[0]
        r2 = r2.reshape(n_pan, n_cells).sum(1)
        pv = (use[0] * poisson).reshape(n_pan, n_cells).sum(1)
        excess = np.where(pv > 0, r2 / np.maximum(pv, 1e-300), 1.0)
        if it > 0:
            excess /= clip_var
        if it < n_iter - 1:
            limit = clip_sigma * np.sqrt(np.repeat(excess, n_cells) * poisson)
            # a pixel is clipped when not (y - model <= limit); one cheap pass finds the
            # candidates (y above model + limit less a margin far wider than the rounding
            # error), the exact test runs on those only
            with np.errstate(invalid="ignore"):
                floor = coarse + limit - 1e-9 * (np.abs(coarse) + np.abs(limit))
            floor[np.isnan(floor)] = -np.inf
            cand = np.flatnonzero(y > floor[bins])
            clipped = cand[~(y[cand] - coarse[bins[cand]] <= limit[bins[cand]])]
            use = all_stats - stats(bins[clipped], y[clipped])
    if not ok.any():
        filled = np.full((n_ring, p), np.nan)
    q_cell = (inv.reshape(n_ring, p * p) @ plan.outer.T) * _sg_variance_factor(smooth)
    return RadialBackground(
        coef=filled,
        fitted=ok,
        q_cell=q_cell,
        excess={k: float(excess[j]) for j, k in enumerate(names)},
        gain={k: float(gains[j]) for j, k in enumerate(names)},
        grid=grid,
        clip_shift=_truncated_mean_shift(clip_sigma) if n_iter > 1 else 0.0,
    )


def _stamp_discs(
    shape: tuple[int, int], fs: np.ndarray, ss: np.ndarray, radius: float
) -> np.ndarray:
    """bool (h, w): pixels whose centre lies within ``radius`` (integer offsets from the
    pixel holding the position) of any of the panel-relative positions."""
    out = np.zeros(shape, dtype=bool)
    if len(fs) == 0:
        return out
    h, w = shape
    cf, cs = central_pixels(fs, ss)
    r = int(radius)
    d = np.arange(-r, r + 1)
    dss, dfs = np.nonzero(d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius)
    pf = cf[:, None] + (dfs - r)[None, :]
    ps = cs[:, None] + (dss - r)[None, :]
    on = (pf >= 0) & (pf < w) & (ps >= 0) & (ps < h)
    out[ps[on], pf[on]] = True
    return out


# --------------------------------------------------------------------------------------------
# Whole frame
# --------------------------------------------------------------------------------------------


def _peaks_by_panel(peaks: Any, panels: list[Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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


def integrate_frame_robust(
    frame: Any,
    detector: Any,
    crystals: list[Any],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    options: RobustOptions | None = None,
    *,
    bandwidth: float | None = None,
    peaks: Any = None,
    push_res: float = math.inf,
    use_stream_rows: bool = True,
) -> list[CrystalResult]:
    """Re-predict and integrate every crystal of one frame with the robust method.

    The prediction set and positions are CrystFEL's (from
    :func:`streamfilter.integrate.rings.integrate_frame_crystfel`, which settles which
    reflections indexamajig predicted); the overlap mask uses all of them.  Each panel's
    reflections of all crystals are then integrated at once by :func:`integrate_robust`.

    Parameters
    ----------
    frame : streamfilter.frames.Frame
    detector : streamfilter.geometry.Detector
    crystals : list
        Stream crystals (see :func:`integrate_frame_crystfel`).
    photon_energy_eV : float
    radii : (float, float, float)
        r1, r2, r3 in pixels; r1 is the peak disc.
    options : RobustOptions, optional
    bandwidth, push_res, use_stream_rows
        As for :func:`integrate_frame_crystfel`.
    peaks : PeakTable, optional
        The chunk's peak list (data-array fs/ss): found spots are kept out of the
        background.

    Returns
    -------
    list[CrystalResult]
        One per crystal, every predicted reflection; ``written`` selects the rows to write.
    """
    return assemble_results(
        *integrate_frame_panels(
            frame, detector, crystals, photon_energy_eV, radii, options, bandwidth=bandwidth,
            peaks=peaks, push_res=push_res, use_stream_rows=use_stream_rows,
        )
    )  # fmt: skip


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


def integrate_frame_panels(
    frame: Any,
    detector: Any,
    crystals: list[Any],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    options: RobustOptions | None = None,
    *,
    bandwidth: float | None = None,
    peaks: Any = None,
    push_res: float = math.inf,
    use_stream_rows: bool = True,
) -> tuple[list[CrystalResult], list[PanelWork]]:
    """:func:`integrate_frame_robust` panel by panel, before the rows are put back together.

    Returns CrystFEL's prediction of every crystal (:func:`integrate_frame_crystfel`, whose
    ``h, k, l, fs, ss, panel`` the results keep) and one :class:`PanelWork` per panel with
    predictions; :func:`assemble_results` turns them into the per-crystal results.
    """
    options = options or RobustOptions()
    base = integrate_frame_crystfel(
        frame, detector, crystals, photon_energy_eV, radii, bandwidth=bandwidth,
        push_res=push_res, use_stream_rows=use_stream_rows,
    )  # fmt: skip
    panels = list(detector.panels)
    found = _peaks_by_panel(peaks, panels)
    where = _predictions_by_panel(base, panels)
    model = None
    if options.background == "radial":
        model = _frame_model(frame, detector, where, found, photon_energy_eV, options)
    work = [
        _integrate_panel(
            frame, p, where[p.name], found[p.name], model, photon_energy_eV, radii, options
        )  # fmt: skip
        for p in panels
        if where[p.name]
    ]
    return base, work


def assemble_results(base: list[CrystalResult], work: list[PanelWork]) -> list[CrystalResult]:
    """Per-crystal results from the panels' :class:`PanelWork` (rows not on any panel stay
    OFF_PANEL with NaN numbers)."""
    fields = ("I", "sigma", "peak", "background", "status", "saturated")
    out = [
        {f: np.full(len(res.h), np.nan) for f in fields[:4]}
        | {"status": np.full(len(res.h), Status.OFF_PANEL, dtype=np.int8),
           "saturated": np.zeros(len(res.h), dtype=bool)}
        for res in base
    ]  # fmt: skip
    for pw in work:
        rr = pw.result
        start = 0
        for ci, rows, _, _ in pw.parts:
            for f in fields:
                out[ci][f][rows] = getattr(rr, f)[start : start + len(rows)]
            start += len(rows)
    return [
        CrystalResult(
            h=res.h,
            k=res.k,
            l=res.l,
            I=o["I"],
            sigma=o["sigma"],
            peak=o["peak"],
            background=o["background"],
            fs=res.fs,
            ss=res.ss,
            panel=res.panel,
            status=o["status"],
            n_saturated=int(np.count_nonzero(o["saturated"])),
            n_implausible=int(np.count_nonzero(o["status"] == Status.IMPLAUSIBLE)),
        )  # fmt: skip
        for res, o in zip(base, out, strict=True)
    ]


_Parts = list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]


def _predictions_by_panel(base: list[CrystalResult], panels: list[Any]) -> dict[str, _Parts]:
    """Per panel: (crystal index, row indices, panel-relative fs, ss) of every prediction."""
    out: dict[str, _Parts] = {p.name: [] for p in panels}
    lookup = {p.name: p for p in panels}
    for ci, res in enumerate(base):
        names = res.panel.astype(str)
        for name in np.unique(names):
            rows = np.flatnonzero(names == name)
            p = lookup[name]
            out[name].append((ci, rows, res.fs[rows] - p.min_fs, res.ss[rows] - p.min_ss))
    return out


def _frame_model(
    frame: Any,
    detector: Any,
    where: dict[str, _Parts],
    found: dict[str, tuple[np.ndarray, np.ndarray]],
    photon_energy_eV: float,
    options: RobustOptions,
) -> RadialBackground:
    """The radial background of a frame, fitted away from every prediction and found peak."""
    usable = {}
    for p in detector.panels:
        fs = np.concatenate([w[2] for w in where[p.name]] + [found[p.name][0]])
        ss = np.concatenate([w[3] for w in where[p.name]] + [found[p.name][1]])
        near = _stamp_discs((p.height, p.width), fs, ss, options.exclude_radius)
        usable[p.name] = ~np.asarray(frame.bad[p.name], dtype=bool) & ~near
    return fit_radial_background(
        frame.data, usable, polar_grid(detector, getattr(frame, "header", None)),
        {p.name: p.adu_per_photon_at(photon_energy_eV) for p in detector.panels},
        harmonics=options.harmonics, smooth=options.radial_smooth,
        clip_sigma=options.clip_sigma,
    )  # fmt: skip


def _integrate_panel(
    frame: Any,
    panel: Any,
    parts: _Parts,
    found: tuple[np.ndarray, np.ndarray],
    model: RadialBackground | None,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    options: RobustOptions,
) -> PanelWork:
    """:func:`integrate_robust` of all predictions (all crystals) on one panel."""
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
        near_pred = _stamp_discs(shape, fs, ss, r1)
        pc, ps = central_pixels(*found)
        lone = ~near_pred[np.clip(ps, 0, shape[0] - 1), np.clip(pc, 0, shape[1] - 1)]
        stamp = _stamp_discs(shape, found[0][lone], found[1][lone], r1)
        pmask, _ = gather_window(stamp, cfs, css, half, False)
    sat_win = None
    sat_maps = getattr(frame, "saturation", None)
    if sat_maps is not None and sat_maps.get(panel.name) is not None:
        sat = np.asarray(sat_maps[panel.name], dtype=np.float32)
        sat_win, _ = gather_window(sat, cfs, css, half, np.inf)
    windows = model.windows(panel.name, cfs, css, half) if model is not None else None
    result = integrate_robust(
        boxes, radii, panel.adu_per_photon_at(photon_energy_eV), options, pmask, windows,
        max_adu=getattr(panel, "max_adu", math.inf), saturation=sat_win,
    )  # fmt: skip
    return PanelWork(panel, parts, boxes, windows, result)
