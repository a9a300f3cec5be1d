"""The frame-wide radial background model of ``--method robust`` (``--background radial``).

Every pixel centre gets its scattering angle (as ``rho``, the distance from the beam on a
flat detector at the median camera length, in pixels) and azimuth ``phi`` from the lab
geometry (:class:`PolarGrid`).  In each 1-px ring of equal ``rho`` the background is
``c0 + c1 cos(phi) + s1 sin(phi) + c2 cos(2 phi) + s2 sin(2 phi)``; the coefficients are
smoothed across rings with a local quadratic, pixels far above the model are clipped and the
fit repeated (:func:`fit_radial_background`).  :class:`BackgroundWindows` is the model cut
into the boxes around reflections.

Conventions: panel-relative pixel indices, pixel ``i`` spans ``[i, i + 1)`` (centre
``i + 0.5``); values in ADU; ``adu_per_photon`` converts to photons for the Poisson terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import _take_window, _window_index

__all__ = [
    "BackgroundWindows",
    "PolarGrid",
    "RadialBackground",
    "fit_radial_background",
    "polar_grid",
]


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
    # what fit_radial_background derives from the grid alone, computed at its first use
    plans: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)
    # azimuth sector of every pixel per number of sectors, shared by the grids of one
    # detector position (the azimuth does not depend on the camera length)
    sectors: dict[int, dict[str, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )


@dataclass
class PanelPlane:
    """The lab position of one panel's pixel centres that does not depend on the camera
    length (built once per run and detector shift by :func:`panel_planes`).

    Attributes
    ----------
    hypot : np.ndarray
        float64 (h, w): distance from the beam axis (px).
    phi : np.ndarray
        float64 (h, w): azimuth ``atan2(y, x)`` (rad).
    dz : tuple of two np.ndarray, or None
        float64 (h, w): the z components ``fs * fs_z`` and ``ss * ss_z`` of the pixel
        centre (px), None when the panel is perpendicular to the beam.
    coffset : float
        The panel's ``coffset`` (m).
    pitch : float
        Pixel size (m).
    """

    hypot: np.ndarray
    phi: np.ndarray
    dz: tuple[np.ndarray, np.ndarray] | None
    coffset: float
    pitch: float


def panel_planes(detector: Any, header_values: dict[str, float] | None = None) -> list:
    """:class:`PanelPlane` of every panel, for the detector shift of these header values."""
    shift = getattr(detector, "detector_shift_m", None)
    sx, sy = shift(header_values) if shift is not None else (0.0, 0.0)
    out = []
    for p in detector.panels:
        pitch = 1.0 / float(p.res)
        ss, fs = np.mgrid[0 : p.height, 0 : p.width].astype(np.float64) + 0.5
        fv, sv = np.asarray(p.fs, dtype=np.float64), np.asarray(p.ss, dtype=np.float64)
        x = p.corner_x + sx / pitch + fs * fv[0] + ss * sv[0]
        y = p.corner_y + sy / pitch + fs * fv[1] + ss * sv[1]
        dz = (fs * fv[2], ss * sv[2]) if fv[2] != 0.0 or sv[2] != 0.0 else None
        out.append(PanelPlane(np.hypot(x, y), np.arctan2(y, x), dz,
                              float(p.coffset or 0.0), pitch))  # fmt: skip
    return out


def camera_z(
    detector: Any, header_values: dict[str, float] | None, planes: list
) -> tuple[dict[str, Any], float]:
    """The z of every panel's pixel centres (px: a float for a panel perpendicular to the
    beam, else an (h, w) array) and the median camera length L (px) of the panels."""
    z = {}
    for p, pl in zip(detector.panels, planes, strict=True):
        clen = float(detector.clen_m(header_values, panel=p))
        z0 = (clen + pl.coffset) / pl.pitch
        z[p.name] = z0 if pl.dz is None else z0 + pl.dz[0] + pl.dz[1]
    return z, float(np.median([np.mean(v) for v in z.values()]))


def polar_grid(
    detector: Any, header_values: dict[str, float] | None = None, planes: list | None = None
) -> PolarGrid:
    """Scattering angle and azimuth of every pixel centre (built once per run and set of
    header values by :meth:`streamfilter.integrate.layout.DetectorLayout.polar_grid`).

    The pixel centre ``(fs + 0.5, ss + 0.5)`` (panel-relative) sits at lab
    ``corner + fs_vec * fs + ss_vec * ss`` (pixels), z = ``(clen + coffset) / pitch`` plus
    the panel's z components; ``detector_shift_x/y`` moves every corner.  On a panel
    perpendicular to the beam ``rho = hypot(x, y) * (L / z)``: on a flat detector (every
    panel at L) that is ``hypot(x, y)`` whatever the camera length, so the grid, and what
    is derived from it, stays the same from event to event.  ``planes``
    (:func:`panel_planes` of the same detector shift) saves recomputing what does not
    depend on the camera length.
    """
    if planes is None:
        planes = panel_planes(detector, header_values)
    z, length = camera_z(detector, header_values, planes)
    names = [p.name for p in detector.panels]
    return PolarGrid(
        rho={k: pl.hypot * (length / z[k]) if pl.dz is None else length * pl.hypot / z[k]
             for k, pl in zip(names, planes, strict=True)},  # fmt: skip
        phi={k: pl.phi for k, pl in zip(names, planes, strict=True)},
    )


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
        bool ``(n_ring,)``: the model of the ring is determined (data within the smoothing
        window, and the ring between the innermost and outermost rings with data).
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
        return self._evaluate(float(self.gain[panel]), float(self.excess[panel]), rho, phi, hx)

    def _evaluate(
        self,
        g: float | np.ndarray,
        excess: float | np.ndarray,
        rho: np.ndarray,
        phi: np.ndarray,
        hx: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`evaluate` with the panel's gain ``g`` and excess scatter (floats, or arrays
        that broadcast against ``rho``) and the harmonics ``hx`` (``rho.shape + (p,)``) of
        ``phi`` given (their values do not matter where ``rho`` is NaN)."""
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
        pixel_var = excess * g * np.maximum(model, g)
        model += self.clip_shift * np.sqrt(pixel_var)
        ring = np.clip(np.floor(rho).astype(np.int64), 0, n_ring - 1)
        sector = np.floor((np.where(finite, phi, 0.0) + math.pi) / (2 * math.pi) * n_az)
        sector = np.clip(sector.astype(np.int64), 0, n_az - 1)
        model_var = pixel_var * self.q_cell[ring, sector]
        return model, pixel_var, model_var

    def grid_windows(
        self, panel: str, centre_fs: np.ndarray, centre_ss: np.ndarray, half_width: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``rho`` (NaN off the panel) and ``phi`` of the ``(N, 2W+1, 2W+1)`` box pixels."""
        rho_map = self.grid.rho[panel]
        idx, on = _window_index(rho_map.shape, centre_fs, centre_ss, half_width)
        return _take_window(rho_map, idx, on, np.nan), _take_window(
            self.grid.phi[panel], idx, on, 0.0
        )

    def boxes(
        self, rho: np.ndarray, phi: np.ndarray, panels: list[str], counts: list[int]
    ) -> BackgroundWindows:
        """The model in ``(N, B, B)`` boxes of several panels at once: ``rho`` (NaN off the
        panel) and ``phi`` of the box pixels, the first ``counts[0]`` boxes on ``panels[0]``,
        the next ``counts[1]`` on ``panels[1]``, and so on."""
        p = self.coef.shape[1]
        hx = _harmonics(phi.ravel(), (p - 1) // 2).reshape(phi.shape + (p,))
        g = np.repeat([float(self.gain[k]) for k in panels], counts)[:, None, None]
        excess = np.repeat([float(self.excess[k]) for k in panels], counts)[:, None, None]
        return BackgroundWindows(*self._evaluate(g, excess, rho, phi, hx))

    def image(self, panel: str) -> np.ndarray:
        """The model over the whole panel (ADU, (h, w)), e.g. for plots."""
        return self.evaluate(panel, self.grid.rho[panel], self.grid.phi[panel])[0]


def _harmonics(phi: np.ndarray, order: int) -> np.ndarray:
    """(N, 2 order + 1): 1, cos phi, sin phi, cos 2phi, sin 2phi, ..."""
    cols = [np.ones_like(phi)]
    for k in range(1, order + 1):
        cols += [np.cos(k * phi), np.sin(k * phi)]
    return np.stack(cols, axis=1)


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


def _ring_fit(
    use: np.ndarray, plan: _RadialPlan, n_azimuth: int, ridge: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares harmonics of every ring from the (count, sum, ...) statistics ``use``
    per cell of ``plan``: coefficients (n_ring, p), the inverse normal matrices
    (n_ring, p, p) and the pixels per ring."""
    n_ring, p = plan.n_ring, plan.hs.shape[1]
    n_cells = n_ring * n_azimuth
    cnt = np.bincount(plan.cell_ring, use[0], minlength=n_cells).reshape(n_ring, n_azimuth)
    tot = np.bincount(plan.cell_ring, use[1], minlength=n_cells).reshape(n_ring, n_azimuth)
    ata = (cnt @ plan.outer).reshape(n_ring, p, p)
    n_r = cnt.sum(axis=1)
    idx = np.arange(1, p)
    ata[:, idx, idx] += ridge * np.maximum(n_r, 1.0)[:, None]
    ata[:, 0, 0] += 1e-9
    inv = np.linalg.inv(ata)
    return np.einsum("rij,rj->ri", inv, tot @ plan.hs), inv, n_r


def _determined(smooth_coef: np.ndarray, own: np.ndarray) -> np.ndarray:
    """bool per ring: the smoothed model is defined (data within the window) and the ring
    lies between the innermost and the outermost ring with data of its own (no
    extrapolation: a local quadratic fitted to one side's rings runs away beyond them)."""
    ok = np.isfinite(smooth_coef[:, 0])
    has = np.flatnonzero(own)
    if has.size == 0:
        return np.zeros_like(ok)
    ok[: has[0]] = False
    ok[has[-1] + 1 :] = False
    return ok


def _fill_rings(q: np.ndarray, own: np.ndarray) -> np.ndarray:
    """``q`` (n_ring, ...) with the rows of rings without data of their own (``~own``)
    interpolated linearly from the nearest rings with (constant beyond them): their own
    normal matrix is singular or ridge-dominated and says nothing about the smoothed value."""
    has = np.flatnonzero(own)
    if has.size == 0 or has.size == len(own):
        return q
    miss = np.flatnonzero(~own)
    j = np.searchsorted(has, miss)
    lo = has[np.clip(j - 1, 0, has.size - 1)]
    hi = has[np.clip(j, 0, has.size - 1)]
    t = np.where(hi > lo, (miss - lo) / np.maximum(hi - lo, 1), 0.0)
    out = q.copy()
    out[miss] = q[lo] * (1.0 - t)[:, None] + q[hi] * t[:, None]
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
    """Geometry-only arrays of :func:`fit_radial_background`, computed once per grid.

    The statistics are accumulated per occupied cell: a (panel, ring, sector) bin in the
    rectangle of rings and sectors the panel covers, so the work follows the pixels and
    not panels x rings x sectors (with 64-256 small panels most such bins are empty).
    """

    n_ring: int
    n_panel: int
    pcell: np.ndarray  # (N,) per pixel: its cell
    cell_panel: np.ndarray  # (n_cells,) panel of each cell
    cell_ring: np.ndarray  # (n_cells,) ring * n_azimuth + sector of each cell
    count: np.ndarray  # (n_cells,) pixels per cell
    hs: np.ndarray  # (n_azimuth, p) harmonics at the sector centres
    outer: np.ndarray  # (n_azimuth, p * p) products of the harmonics


def _sectors(grid: PolarGrid, name: str, n_azimuth: int) -> np.ndarray:
    """int64 (h * w): the azimuth sector of every pixel of a panel (cached on the grid's
    shared ``sectors``: the azimuth does not change with the camera length)."""
    per = grid.sectors.setdefault(n_azimuth, {})
    hit = per.get(name)
    if hit is None:
        sector = np.floor((grid.phi[name].ravel() + math.pi) / (2 * math.pi) * n_azimuth)
        hit = per[name] = np.clip(sector.astype(np.int64), 0, n_azimuth - 1)
        hit.flags.writeable = False
    return hit


def _radial_plan(grid: PolarGrid, names: list[str], harmonics: int, n_azimuth: int) -> _RadialPlan:
    key = (tuple(names), harmonics, n_azimuth)
    plans = grid.plans
    if key in plans:
        return plans[key]
    pcell = np.empty(sum(grid.rho[k].size for k in names), dtype=np.int64)
    cell_panel, cell_ring, count = [], [], []
    n_cells = start = 0
    for j, k in enumerate(names):
        ring = np.floor(grid.rho[k].ravel()).astype(np.int64)
        sector = _sectors(grid, k, n_azimuth)
        r0, s0 = int(ring.min()), int(sector.min())
        nr, ns = int(ring.max()) - r0 + 1, int(sector.max()) - s0 + 1
        part = pcell[start : start + ring.size]
        np.multiply(ring, ns, out=part)
        part += sector + (n_cells - r0 * ns - s0)
        count.append(np.bincount(part - n_cells, minlength=nr * ns))
        rings = (np.arange(nr) + r0)[:, None] * n_azimuth + (np.arange(ns) + s0)[None, :]
        cell_ring.append(rings.ravel())
        cell_panel.append(np.full(nr * ns, j, dtype=np.int64))
        n_cells += nr * ns
        start += ring.size
    sec_phi = (np.arange(n_azimuth) + 0.5) * (2 * math.pi / n_azimuth) - math.pi
    hs = _harmonics(sec_phi, harmonics)
    cell_ring_all = np.concatenate(cell_ring)
    plan = _RadialPlan(
        n_ring=int(cell_ring_all.max()) // n_azimuth + 1,
        n_panel=len(names),
        pcell=pcell,
        cell_panel=np.concatenate(cell_panel),
        cell_ring=cell_ring_all,
        count=np.concatenate(count),
        hs=hs,
        outer=(hs[:, :, None] * hs[:, None, :]).reshape(n_azimuth, -1),
    )
    plans[key] = plan
    return plan


def _clipped(
    y: np.ndarray,
    y32: np.ndarray | None,
    good: np.ndarray,
    bins: np.ndarray,
    coarse: np.ndarray,
    limit: np.ndarray,
) -> np.ndarray:
    """Indices of the usable pixels that are not ``y - model <= limit`` (model and limit per
    cell).  One cheap pass finds the candidates (y above model + limit less a margin far
    wider than the rounding error; in float32, rounded down, when the values are float32:
    then y > floor implies y32 > floor32), the exact test runs on those only."""
    with np.errstate(invalid="ignore"):
        floor = coarse + limit - 1e-9 * (np.abs(coarse) + np.abs(limit))
    floor[np.isnan(floor)] = -np.inf
    if y32 is not None:
        f32 = floor.astype(np.float32)
        f32 = np.where(f32 > floor, np.nextafter(f32, np.float32(-np.inf)), f32)
        cand = np.flatnonzero(y32 > f32[bins])
    else:
        cand = np.flatnonzero(y > floor[bins])
    cand = cand[good[cand]]
    return cand[~(y[cand] - coarse[bins[cand]] <= limit[bins[cand]])]


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
    min_ring_pixels: int = 2,
) -> RadialBackground:
    """Fit the smooth frame background of ``background="radial"``.

    Each 1-px ring of equal ``rho`` (scattering angle) gets ``sum_k c_k h_k(phi)`` with the
    azimuthal harmonics up to ``harmonics``, fitted by least squares to its usable pixels,
    accumulated on a (ring, ``n_azimuth``-sector) grid; a small ridge on the harmonics keeps
    rings seen over a short arc stable.  The coefficients are smoothed over +-``smooth`` rings
    with a weighted local quadratic (which keeps the curvature of a water ring) and
    interpolated linearly in rho.  A ring with fewer than ``min_ring_pixels`` usable pixels
    per coefficient has no weight in the smoothing, and the model variance there is
    interpolated from the neighbouring rings that have (its own fit is not determined); rings
    inside the innermost or beyond the outermost ring with weight are not extrapolated to:
    they have no model (NaN, ``fitted`` False).  Pixels more than ``clip_sigma`` sigma
    (Poisson, times the measured excess; plus the Poisson skewness term ``(k**2 - 1) / 6``
    photons below 1 photon per pixel, faded as 1/model above) above the model are dropped
    and the fit repeated, ``n_iter`` fits in all.

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
    y = np.concatenate([np.asarray(data[k]).ravel() for k in names])
    good = np.concatenate([np.asarray(usable[k], dtype=bool).ravel() for k in names])
    gains = np.array([float(adu_per_photon[k]) for k in names])
    return fit_radial_background_flat(
        y, good, names, grid, gains, harmonics=harmonics, smooth=smooth,
        clip_sigma=clip_sigma, n_iter=n_iter, n_azimuth=n_azimuth, ridge=ridge,
        min_ring_pixels=min_ring_pixels,
    )  # fmt: skip


def fit_radial_background_flat(
    y: np.ndarray,
    good: np.ndarray,
    names: list[str],
    grid: PolarGrid,
    gains: np.ndarray,
    *,
    harmonics: int = 2,
    smooth: int = 8,
    clip_sigma: float = 3.0,
    n_iter: int = 3,
    n_azimuth: int = 72,
    ridge: float = 1e-2,
    min_ring_pixels: int = 2,
) -> RadialBackground:
    """:func:`fit_radial_background` of the panels ``names`` laid out one after the other
    (each C-ordered): ``y`` their pixel values (ADU), ``good`` (bool, modified) the pixels
    the fit may use, ``gains`` the ADU per photon of each panel."""
    plan = _radial_plan(grid, names, harmonics, n_azimuth)
    n_pan, n_ring = plan.n_panel, plan.n_ring
    n_bins = len(plan.cell_ring)
    p = plan.hs.shape[1]
    good &= np.isfinite(y)
    # Every pixel is summed in its order, the unusable ones (few) as zeros: the sums are
    # those of the usable pixels alone, to the last bit.
    bins = plan.pcell
    excluded = np.flatnonzero(~good)
    # float32 values (a frame's) find the clipping candidates at half the memory traffic
    y32 = y if y.dtype == np.float32 else None
    y = y.astype(np.float64)
    y[excluded] = 0.0
    gain = gains[plan.cell_panel]  # per cell
    centres = np.arange(n_ring, dtype=np.float64)
    clip_var = _truncated_variance_factor(clip_sigma)

    # Sufficient statistics per cell (panel, ring, sector) of the pixels the fit uses: the
    # model is constant over a bin, so the residual sums follow from them.  Clipped pixels
    # (few) are taken out of the sums of all usable pixels.
    def stats(b: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.bincount(b, minlength=n_bins), np.bincount(b, v, minlength=n_bins),
             np.bincount(b, v * v, minlength=n_bins)]
        )  # fmt: skip

    all_stats = np.stack(
        [plan.count - np.bincount(bins[excluded], minlength=n_bins),
         np.bincount(bins, y, minlength=n_bins), np.bincount(bins, y * y, minlength=n_bins)]
    )  # fmt: skip
    use = all_stats
    excess = np.ones(n_pan)
    for it in range(n_iter):
        coef, inv, n_r = _ring_fit(use, plan, n_azimuth, ridge)
        own = n_r >= min_ring_pixels * p
        smooth_coef = _smooth_quadratic(coef, np.where(own, n_r, 0.0), smooth)
        ok = _determined(smooth_coef, own)
        if not ok.any():
            break
        filled = np.stack(
            [np.interp(centres, centres[ok], smooth_coef[ok, j]) for j in range(p)], axis=1
        )
        # Residuals against the model on the (ring, sector) grid: cheap, and close enough
        # for a 3-sigma cut and for the excess-scatter estimate.
        coarse = (filled @ plan.hs.T).ravel()[plan.cell_ring]
        poisson = gain * np.maximum(coarse, gain)
        # the excess scatter is measured where the model is determined
        on = np.repeat(ok, n_azimuth)[plan.cell_ring]
        r2 = use[2] - 2.0 * coarse * use[1] + coarse * coarse * use[0]
        r2 = np.bincount(plan.cell_panel, np.where(on, r2, 0.0), minlength=n_pan)
        pv = np.bincount(plan.cell_panel, np.where(on, use[0] * poisson, 0.0), minlength=n_pan)
        excess = np.where(pv > 0, r2 / np.maximum(pv, 1e-300), 1.0)
        if it > 0:
            excess /= clip_var
        if it < n_iter - 1:
            # Poisson counts are skewed: at a low background (a third of a photon per pixel,
            # most pixels 0, as on the real multi-panel sets) a Gaussian k-sigma cut drops
            # pixels of 2 photons and pulls the mean down by a quarter.  The Cornish-Fisher
            # term (k**2 - 1) / 6 photons moves the cut to the Poisson quantile of the same
            # tail; it is faded out as 1 / model above 1 photon, where the cut's other job,
            # dropping unmasked spot tails, matters more (measured: ref-small unchanged to
            # 0.0005, bench/README.md)
            photons = np.maximum(coarse / gain, 1.0)
            skew = gain * max(clip_sigma * clip_sigma - 1.0, 0.0) / 6.0 / photons
            limit = clip_sigma * np.sqrt(excess[plan.cell_panel] * poisson) + skew
            clipped = _clipped(y, y32, good, bins, coarse, limit)
            use = all_stats - stats(bins[clipped], y[clipped])
    if not ok.any():
        filled = np.full((n_ring, p), np.nan)
    q_cell = (inv.reshape(n_ring, p * p) @ plan.outer.T) * _sg_variance_factor(smooth)
    q_cell = _fill_rings(q_cell, own)
    return RadialBackground(
        coef=filled,
        fitted=ok,
        q_cell=q_cell,
        excess={k: float(excess[j]) for j, k in enumerate(names)},
        gain={k: float(gains[j]) for j, k in enumerate(names)},
        grid=grid,
        clip_shift=_truncated_mean_shift(clip_sigma) if n_iter > 1 else 0.0,
    )

