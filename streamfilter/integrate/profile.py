"""Profile fitting on top of the robust background (``--method profile``).

Same prediction, peak disc, rows, statuses (except IMPLAUSIBLE), ``peak`` and ``background``
columns and frame background model as ``--method robust``
(:func:`streamfilter.integrate.robust.integrate_panels`, background ``radial``); only
I and sigma(I) differ.  Each reflection's intensity is the weighted least-squares amplitude
of a **reference profile** fitted to its background-subtracted pixels,

``I = sum_i w_i p_i (x_i - b_i) / sum_i w_i p_i**2``,  ``w_i = 1 / (v_i + g max(I0 p_i, 0))``,

over the peak-disc pixels the sum would use (x the pixel values, b the radial background
model, v its per-pixel variance, g the gain in ADU per photon, I0 the robust sum; refitting
the weights with the fitted I measured worse, ``n_iter``).  The profile p is normalised to 1
over the reflection's own disc pixels, so I estimates the same quantity as the sum, the
Bragg signal in those pixels.  For a weak spot the weights down-weight the disc's rim, which
holds mostly background.

Reference profiles
    A pixel-integrated 2-D Gaussian fitted to the strong reflections of the same frame
    (robust ``I/sigma >= min_isigma``, nothing bad or foreign within r1 + 1), per crystal,
    panel and resolution bin (``n_res_bins`` bins with equal numbers of strong spots),
    falling back to the crystal's panel, the crystal's frame, then all crystals of the frame,
    when a pool has fewer than ``min_strong`` spots.  A frame with fewer than ``min_strong``
    strong spots in all keeps robust's sums (no profile is guessed, and nothing is carried
    from frame to frame, so the output does not depend on how chunks are batched).
    A pool gives the spots' mean offset from their predictions (fs, ss) and the Gaussian
    widths that minimise its chi-square (amplitudes fitted), plus the mean residual about
    that Gaussian per box pixel (the wings and asymmetries, empirical).  A reflection's
    profile is the Gaussian placed at its own sub-pixel prediction plus the pool offset,
    integrated over each pixel, plus the residual: sub-pixel aware.

sigma(I)**2 = ``1 / sum w p**2`` (background and Poisson noise)
+ ``(sum c s)**2`` (error of the background model, s its standard deviation per pixel,
correlated across the disc; ``c = w p / sum w p**2``) + ``I**2 c^T C c`` (error of the
profile shape: C is the covariance of the strong spots' normalised residuals about their
profiles, noise removed, :func:`profile_error_covariance`), floored at g**2.  A reflection
keeps the robust sum and its sigma when that sigma is the smaller (strong spots, whose
shape the profile cannot match better than the sum).  A saturated reflection written
because of ``-sat`` (``keep_saturated``) keeps the robust sum as well (its clipped top does
not follow the profile), and saturated spots never shape the reference profiles.

The variants kept (the sum kept where its sigma is smaller, the empirical residual, the
shape term) were chosen by measurement against the truth; the figures and the command that
produces them are in ``bench/README.md`` (accuracy), the resulting accuracy in ``docs/methods.md``.

Conventions: positions are panel-relative (``fs = FS - min_fs``), pixel i spans
``[i, i + 1)`` with centre ``i + 0.5``; box arrays are ``[n, q (ss), p (fs)]`` as in
:mod:`.boxes`; offsets and widths in pixels, values in ADU.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamfilter.integrate.layout import DetectorLayout
from streamfilter.integrate.model import (
    CrystalPredictions,
    CrystalResult,
    FoundPeaks,
    RingsResult,
    Status,
    finish_result,
)
from streamfilter.integrate.robust import (
    PanelWork,
    RobustOptions,
    assemble_results,
    integrate_panels,
)

__all__ = [
    "ProfileOptions",
    "GaussianProfile",
    "norm_cdf",
    "pixel_gaussian",
    "fit_reference_profile",
    "fit_profile_intensities",
    "integrate_frame",
]

@dataclass(frozen=True)
class ProfileOptions:
    """Settings of ``--method profile`` (defaults chosen by measurement on ref-small).

    Attributes
    ----------
    robust : RobustOptions
        Background model and rules shared with ``--method robust`` (``radial`` only).
    min_isigma : float
        Robust I/sigma(I) from which a reflection is a strong spot that shapes the profiles.
    min_strong : int
        Fewest strong spots a pool needs before the wider fallback (and a frame needs for
        any profile fitting at all).
    n_res_bins : int
        Resolution bins per panel (equal numbers of strong spots).
    n_iter : int
        Weighted fits (the first weights use the robust sum, later ones the previous fit).
    fit_margin : int
        Also fit the clean pixels up to ``r1 + fit_margin`` around the disc (the profile is
        still normalised over the disc).
    per_crystal : bool
        Separate pools for the crystals of a multi-crystal frame (their spots differ).
    """

    robust: RobustOptions = field(default_factory=RobustOptions)
    min_isigma: float = 10.0
    min_strong: int = 8
    n_res_bins: int = 3
    n_iter: int = 1
    fit_margin: int = 0
    per_crystal: bool = True

    def __post_init__(self) -> None:
        if self.robust.background != "radial":
            raise ValueError(
                f"--method profile needs the radial background, not {self.robust.background!r}"
            )
        if self.min_strong < 1 or self.n_res_bins < 1 or self.n_iter < 1:
            raise ValueError("min_strong, n_res_bins and n_iter must be >= 1")
        if self.fit_margin < 0:
            raise ValueError(f"fit_margin must be >= 0, not {self.fit_margin}")


@dataclass(frozen=True)
class GaussianProfile:
    """A reference profile: offset of the spot centre from the prediction and its widths.

    Attributes
    ----------
    dfs, dss : float
        Mean offset (px) of the spots' centres from their predicted positions.
    sigma_fs, sigma_ss : float
        Gaussian standard deviations (px) along fs and ss, before pixel integration.
    n_spots : int
        Strong spots it was fitted to (0: the default).
    residual : np.ndarray or None
        ``(B, B)`` mean residual of the pool's spots about the Gaussian (fraction of the
        spot per pixel, box indexed ``[ss, fs]`` around the central pixel): the wings and
        asymmetries a Gaussian misses.  Added to every reflection's Gaussian.
    """

    dfs: float
    dss: float
    sigma_fs: float
    sigma_ss: float
    n_spots: int
    residual: np.ndarray | None = None


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).

    ``0.5 + 0.5 sign(x) (1 - t (a1 + t (a2 + ...)) exp(-z^2))`` with ``z = |x| / sqrt 2``,
    ``t = 1 / (1 + p z)``, evaluated in place (few temporaries: this runs for every trial
    of the reference-profile search)."""
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape
    x = x.reshape(-1)
    z = np.abs(x)
    z *= 1.0 / math.sqrt(2.0)
    t = z * 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * 1.061405429
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += c
        poly *= t
    np.multiply(z, z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z
    np.subtract(1.0, poly, out=poly)
    poly *= np.sign(x)
    poly *= 0.5
    poly += 0.5
    return poly.reshape(shape)[()]


def _pixel_integrals(offset: np.ndarray, sigma: np.ndarray, half_width: int) -> np.ndarray:
    """(..., B): integral of a unit 1-D Gaussian at ``offset`` (px from the central pixel's
    centre) with width ``sigma`` over each box pixel ``[k - 0.5, k + 0.5)``, k = -W..W."""
    edges = np.arange(-half_width, half_width + 2) - 0.5
    cdf = norm_cdf((edges - offset[..., None]) / sigma[..., None])
    return np.diff(cdf, axis=-1)


def pixel_gaussian(
    off_fs: np.ndarray,
    off_ss: np.ndarray,
    sigma_fs: np.ndarray | float,
    sigma_ss: np.ndarray | float,
    half_width: int,
) -> np.ndarray:
    """Pixel-integrated 2-D Gaussians in ``(2W+1, 2W+1)`` boxes.

    Parameters
    ----------
    off_fs, off_ss : np.ndarray
        ``(N,)`` spot centres relative to the centre of the box's central pixel (px); a
        reflection predicted at panel-relative (fs, ss) has ``off = fs - int(fs) - 0.5``.
    sigma_fs, sigma_ss : float or (N,) array
        Standard deviations (px).
    half_width : int
        W.

    Returns
    -------
    np.ndarray
        float64 ``(N, B, B)`` indexed ``[n, ss, fs]``: the fraction of the spot in each box
        pixel (sums to at most 1).
    """
    off_fs = np.asarray(off_fs, dtype=np.float64)
    off_ss = np.asarray(off_ss, dtype=np.float64)
    sf = np.broadcast_to(np.asarray(sigma_fs, dtype=np.float64), off_fs.shape)
    sq = np.broadcast_to(np.asarray(sigma_ss, dtype=np.float64), off_ss.shape)
    gx = _pixel_integrals(off_fs, sf, half_width)
    gy = _pixel_integrals(off_ss, sq, half_width)
    return gy[..., :, None] * gx[..., None, :]


def _axis_chi2_gain(
    wy: np.ndarray, ww: np.ndarray, g_fixed: np.ndarray, g_trial: np.ndarray, axis: int
) -> np.ndarray:
    """``sum_n (sum w P y)**2 / sum w P**2`` for separable profiles ``P = gy (x) gx`` whose
    factor along ``axis`` (1 = fs, 0 = ss) takes K trial values: the chi-square of
    amplitude-only fits is a constant minus this, so its arg-max is the best trial.

    ``wy``, ``ww``: (N, B, B) ``w y`` and ``w``; ``g_fixed``: (N, B) the other factor;
    ``g_trial``: (K, N, B).
    """
    if axis == 1:  # trial factor along fs (last axis), fixed along ss
        a = np.einsum("nq,nqp->np", g_fixed, wy)
        b = np.einsum("nq,nqp->np", g_fixed * g_fixed, ww)
    else:
        a = np.einsum("np,nqp->nq", g_fixed, wy)
        b = np.einsum("np,nqp->nq", g_fixed * g_fixed, ww)
    spy = np.einsum("knb,nb->kn", g_trial, a)
    spp = np.einsum("knb,nb->kn", g_trial * g_trial, b)
    return (spy * spy / np.maximum(spp, 1e-300)).sum(axis=1)


_SIGMA_GRID = np.round(np.arange(0.40, 2.61, 0.05), 2)
_OFFSET_GRID = np.round(np.arange(-0.60, 0.61, 0.05), 2)


def _trial_gain(
    j: int,
    par: np.ndarray,
    offs: tuple[np.ndarray, np.ndarray],
    g_fixed: np.ndarray,
    wy: np.ndarray,
    wt: np.ndarray,
    values: np.ndarray,
) -> np.ndarray:
    """:func:`_axis_chi2_gain` of the pool with parameter ``j`` of ``par`` (sigma_fs,
    sigma_ss, offset fs, offset ss) set to each of ``values`` in turn."""
    along = j % 2  # 0: fs, 1: ss
    sig = np.full(len(values), par[along]) if j >= 2 else values
    shift = np.full(len(values), par[2 + along]) if j < 2 else values
    w = (wy.shape[-1] - 1) // 2
    shape = (len(values), len(wy))
    g_trial = _pixel_integrals(
        offs[along][None] + shift[:, None], np.broadcast_to(sig[:, None], shape), w
    )
    return _axis_chi2_gain(wy, wt, g_fixed, g_trial, 1 if along == 0 else 0)


def _grid_argmax(gain: Any, grid: np.ndarray, step: int = 4) -> float:
    """The grid value with the largest ``gain(values)``, found on every ``step``-th value and
    then on the values within ``step - 1`` of the best of those: the same value as a search
    of the whole grid when the gain has one maximum along the grid (it rises to it and falls
    after), in about half the evaluations."""
    coarse = np.arange(0, len(grid), step)
    if coarse[-1] != len(grid) - 1:
        coarse = np.append(coarse, len(grid) - 1)
    best = int(coarse[np.argmax(gain(grid[coarse]))])
    near = np.arange(max(best - step + 1, 0), min(best + step, len(grid)))
    return float(grid[near[int(np.argmax(gain(grid[near])))]])


def fit_reference_profile(
    y: np.ndarray,
    var: np.ndarray,
    use: np.ndarray,
    off_fs: np.ndarray,
    off_ss: np.ndarray,
    n_rounds: int = 2,
) -> GaussianProfile:
    """Fit one Gaussian reference profile to a pool of strong, background-subtracted spots.

    The widths (0.4-2.6 px) and the common offset from the predictions (+-0.6 px) are found
    on grids of 0.05 px by coordinate descent (fs width, ss width, fs offset, ss offset,
    ``n_rounds`` times), each spot's amplitude fitted, minimising the pool's chi-square.

    Parameters
    ----------
    y : np.ndarray
        ``(N, B, B)`` pixel values minus background (ADU).
    var : np.ndarray
        ``(N, B, B)`` pixel variances (ADU^2).
    use : np.ndarray
        bool ``(N, B, B)``: pixels the fit may use.
    off_fs, off_ss : np.ndarray
        ``(N,)`` predicted positions relative to the centre of each box's central pixel (px).

    Returns
    -------
    GaussianProfile
    """
    w = (y.shape[-1] - 1) // 2
    wt = np.where(use, 1.0 / var, 0.0)
    wy = wt * np.where(use, y, 0.0)
    # parameters: sigma_fs, sigma_ss, offset fs, offset ss; fs = axis 1 of the factors
    par = np.array([1.0, 1.0, 0.0, 0.0])
    offs = (off_fs, off_ss)
    for _ in range(n_rounds):
        for j in range(4):
            along = j % 2  # 0: fs, 1: ss
            other = 1 - along
            g_fixed = _pixel_integrals(offs[other] + par[2 + other], np.full(len(y), par[other]), w)
            gain = functools.partial(_trial_gain, j, par, offs, g_fixed, wy, wt)
            par[j] = _grid_argmax(gain, _SIGMA_GRID if j < 2 else _OFFSET_GRID)
    sf, sq, dfs, dss = (float(x) for x in par)
    return GaussianProfile(dfs, dss, sf, sq, len(y))


def fit_profile_intensities(
    y: np.ndarray,
    pixel_var: np.ndarray,
    model_sd: np.ndarray,
    fit: np.ndarray,
    prof: np.ndarray,
    gain: float,
    start: np.ndarray,
    n_iter: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares amplitudes of normalised profiles, all reflections at once.

    Parameters
    ----------
    y : np.ndarray
        ``(N, B, B)`` pixel values minus the background model (ADU).
    pixel_var : np.ndarray
        ``(N, B, B)`` variance of one background pixel (ADU^2).
    model_sd : np.ndarray
        ``(N, B, B)`` standard deviation of the background model itself (ADU), treated as
        correlated over each box.
    fit : np.ndarray
        bool ``(N, B, B)``: the pixels fitted (and over which ``prof`` sums to 1).
    prof : np.ndarray
        ``(N, B, B)`` profiles normalised to 1 over ``fit``.
    gain : float
        g, ADU per photon (Poisson variance of the model counts is ``g * I p``).
    start : np.ndarray
        ``(N,)`` first guess of I for the weights (e.g. the summation value; NaN -> 0).
    n_iter : int
        Fits with refined weights.

    Returns
    -------
    I, sigma : np.ndarray
        ``(N,)`` in ADU; sigma floored at g.
    coef : np.ndarray
        ``(N, B, B)``: ``I = sum coef * y`` (``w p / sum w p**2`` on the fit pixels, 0
        elsewhere).
    """
    intensity = np.where(np.isfinite(start), start, 0.0)
    p = np.where(fit, prof, 0.0)
    yv = np.where(fit, y, 0.0)
    bvar = np.where(fit, pixel_var, 1.0)
    for _ in range(n_iter):
        counts = gain * np.maximum(intensity[:, None, None] * p, 0.0)
        w = np.where(fit, 1.0 / np.maximum(bvar + counts, 1e-12), 0.0)
        spp = (w * p * p).sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            intensity = (w * p * yv).sum(axis=(1, 2)) / spp
        intensity = np.where(np.isfinite(intensity), intensity, 0.0)
    sd = np.where(fit, model_sd, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        coef = w * p / spp[:, None, None]
        var = 1.0 / spp + ((coef * sd).sum(axis=(1, 2))) ** 2
    sigma = np.sqrt(np.maximum(var, gain * gain))
    return intensity, sigma, np.nan_to_num(coef)


# --------------------------------------------------------------------------------------------
# Whole frame
# --------------------------------------------------------------------------------------------


@dataclass
class _PanelArrays:
    """Everything the profile step needs of one panel's robust integration."""

    work: PanelWork
    y: np.ndarray  # (N, B, B) pixel minus model (ADU)
    pixel_var: np.ndarray
    model_sd: np.ndarray
    disc: np.ndarray  # peak-disc pixels summed by robust
    fit: np.ndarray  # pixels fitted: the disc and, with fit_margin, clean pixels around it
    clean: np.ndarray  # (N,) the estimation neighbourhood is whole
    est: np.ndarray  # (N, B, B) estimation pixels
    off_fs: np.ndarray
    off_ss: np.ndarray
    rho: np.ndarray  # (N,) distance from the beam (px, scattering angle)
    crystal: np.ndarray  # (N,) index of the crystal in the frame
    gain: float


def _panel_arrays(
    pw: PanelWork, r1: int, grid: Any, photon_energy_eV: float, fit_margin: int = 0
) -> _PanelArrays:
    boxes = pw.boxes
    w = boxes.half_width
    d = np.arange(-w, w + 1)
    d2 = d[:, None] ** 2 + d[None, :] ** 2
    in_disc = (d2 <= r1 * r1)[None]
    good = ~boxes.bad
    disc = in_disc & good & (boxes.overlap <= 1)
    r_fit = min(r1 + fit_margin, w)
    fit = disc | ((d2 <= r_fit * r_fit)[None] & ~in_disc & good & (boxes.overlap == 0))
    r_est = min(r1 + 1, w)
    region = (d2 <= r_est * r_est)[None]
    own = np.where(in_disc, boxes.overlap <= 1, boxes.overlap == 0)
    est = region & good & own
    clean = (est | ~region).all(axis=(1, 2))
    bg = pw.background
    fs = np.concatenate([part[2] for part in pw.parts])
    ss = np.concatenate([part[3] for part in pw.parts])
    rho_map = grid.rho[pw.panel.name]
    return _PanelArrays(
        work=pw,
        y=boxes.values.astype(np.float64) - np.nan_to_num(bg.model),
        pixel_var=np.nan_to_num(bg.pixel_var, nan=1.0),
        model_sd=np.sqrt(np.maximum(np.nan_to_num(bg.model_var), 0.0)),
        disc=disc,
        fit=fit,
        clean=clean,
        est=est,
        off_fs=fs - boxes.centre_fs - 0.5,
        off_ss=ss - boxes.centre_ss - 0.5,
        rho=rho_map[np.clip(boxes.centre_ss, 0, rho_map.shape[0] - 1),
                    np.clip(boxes.centre_fs, 0, rho_map.shape[1] - 1)],
        gain=float(pw.panel.adu_per_photon_at(photon_energy_eV)),
        crystal=np.concatenate([np.full(len(part[1]), part[0]) for part in pw.parts]),
    )  # fmt: skip


def _strong(pa: _PanelArrays, min_isigma: float) -> np.ndarray:
    rr = pa.work.result
    with np.errstate(invalid="ignore"):
        good = (rr.status == Status.OK) & ~rr.saturated & pa.clean
        return good & (rr.I >= min_isigma * rr.sigma)


def _pool_profile(
    pools: list[tuple[_PanelArrays, np.ndarray]], min_strong: int
) -> GaussianProfile | None:
    n = sum(int(sel.sum()) for _, sel in pools)
    if n < min_strong:
        return None
    y = np.concatenate([pa.y[sel] for pa, sel in pools])
    var = np.concatenate(
        [pa.pixel_var[sel] + pa.gain * np.maximum(pa.y[sel], 0.0) for pa, sel in pools]
    )
    use = np.concatenate([pa.est[sel] for pa, sel in pools])
    off_fs = np.concatenate([pa.off_fs[sel] for pa, sel in pools])
    off_ss = np.concatenate([pa.off_ss[sel] for pa, sel in pools])
    prof = fit_reference_profile(y, var, use, off_fs, off_ss)
    w = (y.shape[-1] - 1) // 2
    g = pixel_gaussian(off_fs + prof.dfs, off_ss + prof.dss, prof.sigma_fs, prof.sigma_ss, w)
    wt = np.where(use, 1.0 / var, 0.0)
    amp = (wt * g * y).sum(axis=(1, 2)) / np.maximum((wt * g * g).sum(axis=(1, 2)), 1e-300)
    res = np.where(use, y - amp[:, None, None] * g, 0.0).sum(axis=0)
    norm = np.where(use, amp[:, None, None], 0.0).sum(axis=0)
    residual = np.where(norm > 0, res / np.maximum(norm, 1e-300), 0.0)
    return GaussianProfile(prof.dfs, prof.dss, prof.sigma_fs, prof.sigma_ss, prof.n_spots, residual)


def _assign_profiles(
    arrays: list[_PanelArrays], options: ProfileOptions
) -> list[list[tuple[np.ndarray, GaussianProfile]]] | None:
    """Per panel: (reflection selector, profile) pairs covering every reflection; None when
    the frame has too few strong spots for any profile.

    Pools, narrowest first: (crystal, panel, resolution bin), (crystal, panel), (crystal,
    frame), frame.  The wider pools are fitted only when a narrower one falls back to them.
    """
    strong = [_strong(pa, options.min_isigma) for pa in arrays]
    crystal = [pa.crystal if options.per_crystal else np.zeros_like(pa.crystal) for pa in arrays]
    cache: dict[Any, GaussianProfile | None] = {}

    def pool(key: Any, parts: list[tuple[_PanelArrays, np.ndarray]]) -> GaussianProfile | None:
        if key not in cache:
            cache[key] = _pool_profile(parts, options.min_strong)
        return cache[key]

    def frame_profile(c: int) -> GaussianProfile | None:
        everything = pool("frame", list(zip(arrays, strong, strict=True)))
        mine = [(pa, st & (cr == c)) for pa, st, cr in zip(arrays, strong, crystal, strict=True)]
        return pool(("crystal", c), mine) or everything

    def panel_profile(i: int, c: int) -> GaussianProfile | None:
        mine = [(arrays[i], strong[i] & (crystal[i] == c))]
        return pool(("panel", i, c), mine) or frame_profile(c)

    if pool("frame", list(zip(arrays, strong, strict=True))) is None:
        return None
    out = []
    for i, (pa, st, cr) in enumerate(zip(arrays, strong, crystal, strict=True)):
        parts = []
        for c in np.unique(cr).tolist():
            mine = cr == c
            n_strong = int((st & mine).sum())
            n_bins = min(options.n_res_bins, max(n_strong // options.min_strong, 1))
            if n_bins <= 1:
                parts.append((mine, panel_profile(i, c)))
                continue
            edges = np.quantile(pa.rho[st & mine], np.linspace(0, 1, n_bins + 1))
            which = np.clip(np.searchsorted(edges[1:-1], pa.rho, side="right"), 0, n_bins - 1)
            for b in range(n_bins):
                sel = mine & (which == b)
                prof = pool(("bin", i, c, b), [(pa, st & sel)]) or panel_profile(i, c)
                parts.append((sel, prof))
        out.append(parts)
    return out


def _fit_panel(
    pa: _PanelArrays, assigned: list[tuple[np.ndarray, GaussianProfile]], options: ProfileOptions
) -> tuple[np.ndarray, np.ndarray]:
    rr = pa.work.result
    n = len(pa.rho)
    w = pa.work.boxes.half_width
    dfs, dss, sf, sq = (np.zeros(n) for _ in range(4))
    for sel, prof in assigned:
        dfs[sel], dss[sel], sf[sel], sq[sel] = prof.dfs, prof.dss, prof.sigma_fs, prof.sigma_ss
    shape = pixel_gaussian(pa.off_fs + dfs, pa.off_ss + dss, sf, sq, w)
    for sel, prof in assigned:
        if prof.residual is not None:
            shape[sel] = np.maximum(shape[sel] + prof.residual, 0.0)
    norm = np.where(pa.disc, shape, 0.0).sum(axis=(1, 2))
    prof = shape / np.maximum(norm, 1e-12)[:, None, None]
    return (prof, *fit_profile_intensities(
        pa.y, pa.pixel_var, pa.model_sd, pa.fit, prof, pa.gain, rr.I, options.n_iter
    ))  # fmt: skip


def profile_error_covariance(
    y: np.ndarray,
    var: np.ndarray,
    disc: np.ndarray,
    fit: np.ndarray,
    prof: np.ndarray,
) -> np.ndarray:
    """Covariance of the profile's errors per pixel, from strong spots.

    For spot j with disc sum ``I_j = sum_disc y_j`` the error of its profile (normalised
    over the disc) is ``e_j = y_j / I_j - p_j`` on the fit pixels.  Its noise part is
    ``M diag(var_j) M^T / I_j**2`` with ``M = 1 - p_j d^T`` (d: the disc pixels), since
    I_j is itself noisy; the estimate is the mean over the spots of ``e_j e_j^T`` less that.
    A reflection fitted with coefficients c (``I = sum c y``, ``sum c p = 1``) then has a
    profile error of variance ``I**2 c^T C c``; for the plain sum (c = d) it is 0.

    Parameters
    ----------
    y, var : np.ndarray
        ``(N, B, B)`` background-subtracted values and pixel variances (ADU, ADU^2) of N
        strong spots.
    disc, fit : np.ndarray
        bool ``(N, B, B)``: the disc pixels summed, the pixels fitted (a superset).
    prof : np.ndarray
        ``(N, B, B)`` their profiles, normalised over ``disc``.

    Returns
    -------
    np.ndarray
        ``(B*B, B*B)`` covariance (per unit intensity squared).
    """
    n = len(y)
    intensity = np.where(disc, y, 0.0).sum(axis=(1, 2))
    inv = (1.0 / intensity)[:, None, None]
    e = np.where(fit, y * inv - prof, 0.0).reshape(n, -1)
    v = np.where(fit, var * inv * inv, 0.0).reshape(n, -1)
    p = np.where(fit, prof, 0.0).reshape(n, -1)
    dv = np.where(disc.reshape(n, -1), v, 0.0)
    sp = p * np.sqrt(dv.sum(axis=1))[:, None]
    noise = np.diag(v.sum(axis=0)) - p.T @ dv - dv.T @ p + sp.T @ sp
    return (e.T @ e - noise) / max(n, 1)


def _frame_covariance(
    arrays: list[_PanelArrays], fits: list[tuple], options: ProfileOptions
) -> np.ndarray | None:
    """:func:`profile_error_covariance` of the frame's strong spots (None if none)."""
    sel = [_strong(pa, options.min_isigma) for pa in arrays]
    if sum(int(s.sum()) for s in sel) < options.min_strong:
        return None
    cat = [np.concatenate(a) for a in zip(*[
        (pa.y[s], pa.pixel_var[s] + pa.gain * np.maximum(pa.y[s], 0.0), pa.disc[s], pa.fit[s],
         f[0][s])
        for pa, f, s in zip(arrays, fits, sel, strict=True)
    ], strict=True)]  # fmt: skip
    return profile_error_covariance(*cat)


def _finish_panel(
    pa: _PanelArrays,
    intensity: np.ndarray,
    sigma: np.ndarray,
    coef: np.ndarray,
    cov: np.ndarray | None,
    options: ProfileOptions,
    radii: tuple[float, float, float],
) -> tuple[RingsResult, np.ndarray]:
    """Add the shape term to sigma, keep the sum where it is better, redo IMPLAUSIBLE;
    also returns where the profile fit gave I (bool per reflection)."""
    rr = pa.work.result
    if cov is not None:
        c = coef.reshape(len(coef), -1)
        shape_var = np.maximum(((c @ cov) * c).sum(axis=1), 0.0)
        sigma = np.sqrt(sigma * sigma + shape_var * np.maximum(intensity, 0.0) ** 2)
    with np.errstate(invalid="ignore"):
        keep_sum = (rr.sigma < sigma) | rr.saturated
    intensity = np.where(keep_sum, rr.I, intensity)
    sigma = np.where(keep_sum, rr.sigma, sigma)
    status = rr.status.copy()
    fitted = (status == Status.OK) | (status == Status.IMPLAUSIBLE)
    status[fitted] = np.where(intensity[fitted] < -5.0 * sigma[fitted], Status.IMPLAUSIBLE,
                              Status.OK)  # fmt: skip
    done = (status == Status.OK) | (rr.saturated & options.robust.keep_saturated & fitted)
    peak, background = _robust_columns(pa, rr, radii)
    return finish_result(intensity, sigma, peak, background, status, rr.saturated, done,
                         rr.n_peak, rr.n_background), ~keep_sum  # fmt: skip


def _robust_columns(
    pa: _PanelArrays, rr: RingsResult, radii: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """robust's ``peak`` and ``background`` columns (they do not depend on I), computed the
    same way where robust left them NaN (its implausible rows)."""
    peak, background = rr.peak.copy(), rr.background.copy()
    missing = ~np.isfinite(peak) & pa.disc.any(axis=(1, 2))
    if missing.any():
        boxes = pa.work.boxes
        r2, r3 = int(radii[1]), int(radii[2])
        d = np.arange(-boxes.half_width, boxes.half_width + 1)
        d2 = d[:, None] ** 2 + d[None, :] ** 2
        ring = ((d2 >= r2 * r2) & (d2 <= r3 * r3))[None] & ~boxes.bad[missing]
        ring &= boxes.overlap[missing] == 0
        v = boxes.values[missing].astype(np.float64)
        use = pa.disc[missing] | ring
        peak[missing] = np.where(use, v, -np.inf).max(axis=(1, 2), initial=-np.inf)
        model = np.where(pa.disc[missing], pa.work.background.model[missing], 0.0)
        background[missing] = model.sum(axis=(1, 2)) / pa.disc[missing].sum(axis=(1, 2))
    return peak, background


def integrate_frame(
    frame: Any,
    predictions: list[CrystalPredictions],
    peaks: FoundPeaks | None,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: ProfileOptions | None = None,
) -> list[CrystalResult]:
    """Integrate every crystal of one frame by profile fitting on the robust background.

    Parameters and return value as for :func:`streamfilter.integrate.robust.integrate_frame`
    (``options`` is a :class:`ProfileOptions`); the rows written, statuses other than
    IMPLAUSIBLE, and the ``peak`` and ``background`` columns are robust's, I and sigma(I)
    come from the profile fit (ADU).
    """
    options = options or ProfileOptions()
    work = integrate_panels(
        frame, predictions, peaks, photon_energy_eV, radii, layout, options.robust
    )
    if not work:
        return assemble_results(predictions, work, layout)
    grid = layout.polar_grid(getattr(frame, "header", None))
    r1 = int(radii[0])
    arrays = [_panel_arrays(pw, r1, grid, photon_energy_eV, options.fit_margin) for pw in work]
    assigned = _assign_profiles(arrays, options)
    if assigned is None:  # no strong spots to learn a profile from: robust's sums
        return assemble_results(predictions, work, layout)
    fits = [_fit_panel(pa, asg, options) for pa, asg in zip(arrays, assigned, strict=True)]
    cov = _frame_covariance(arrays, fits, options)
    fitted = []
    for pa, (_, fi, fsig, coef) in zip(arrays, fits, strict=True):
        pa.work.result, used_fit = _finish_panel(pa, fi, fsig, coef, cov, options, radii)
        fitted.append(used_fit)
    return _with_estimators(assemble_results(predictions, work, layout), work, fitted)


def _with_estimators(
    results: list[CrystalResult], work: list[Any], fitted: list[np.ndarray]
) -> list[CrystalResult]:
    """Set each result's ``estimator``: "profile" where the fit gave I, else "sum"."""
    est = [np.full(len(r), "sum", dtype=object) for r in results]
    for pw, used in zip(work, fitted, strict=True):
        start = 0
        for ci, rows, _, _ in pw.parts:
            est[ci][rows] = np.where(used[start : start + len(rows)], "profile", "sum")
            start += len(rows)
    for r, e in zip(results, est, strict=True):
        r.estimator = e
    return results
