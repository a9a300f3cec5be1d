"""The physics of the simulation: intensities, crystals, Gaussian spots, the background
model and the detector's bad pixels (see :mod:`streamfilter.synth` for the model)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ..geometry import Detector
from ..integrate.profile import norm_cdf
from ..predict import photon_energy_to_wavelength
from .config import RNG_DETECTOR, RNG_INTENSITIES, SynthConfig


def max_one_over_d_invA(detector: Detector, config: SynthConfig) -> float:
    """Largest 1/d (A^-1) seen by any panel corner."""
    lam = photon_energy_to_wavelength(config.photon_energy_eV) * 1e10
    best = 0.0
    for p in detector.panels:
        for fs, ss in ((0, 0), (p.width, 0), (0, p.height), (p.width, p.height)):
            x, y = p.lab_xy(fs, ss)
            r = math.hypot(float(x), float(y)) / p.res
            two_theta = math.atan2(r, config.clen_m)
            best = max(best, 2.0 * math.sin(two_theta / 2.0) / lam)
    return best


def layout_max_one_over_d_invA(
    detector: Detector, config: SynthConfig, header: dict[str, float]
) -> float:
    """Largest 1/d (A^-1) seen by any panel corner of any layout (per-panel pixel size,
    camera length and ``coffset``)."""
    energy = detector.photon_energy_eV(header) if detector.photon_energy is not None else (
        config.photon_energy_eV)
    lam = photon_energy_to_wavelength(energy) * 1e10
    best = 0.0
    for p in detector.panels:
        clen = detector.clen_m(header) + p.coffset
        for fs, ss in ((0, 0), (p.width, 0), (0, p.height), (p.width, p.height)):
            x, y = p.lab_xy(fs, ss)
            two_theta = math.atan2(math.hypot(float(x), float(y)) / p.res, clen)
            best = max(best, 2.0 * math.sin(two_theta / 2.0) / lam)
    return best


def intensity_table(config: SynthConfig, q_max: float) -> np.ndarray:
    """Full intensities (photons) on a dense grid ``[H, K, L]`` of 4/mmm representatives.

    ``I[max(|h|,|k|), min(|h|,|k|), |l|]`` is the intensity of (h, k, l).  Entries with
    ``K > H`` are unused; beyond ``q_max`` (A^-1) they are 0.
    """
    a, c = config.cell_A
    hmax = int(q_max * a) + 1
    lmax = int(q_max * c) + 1
    rng = np.random.default_rng([config.seed, RNG_INTENSITIES])
    e = rng.exponential(size=(hmax + 1, hmax + 1, lmax + 1))
    hh, kk, ll = np.meshgrid(
        np.arange(hmax + 1), np.arange(hmax + 1), np.arange(lmax + 1), indexing="ij"
    )
    q2 = (hh**2 + kk**2) / a**2 + ll**2 / c**2  # (1/d)^2 in A^-2
    table = config.intensity_scale * np.exp(-config.wilson_B_A2 * q2 / 2.0) * e
    absent = ((kk == 0) & (ll == 0) & (hh % 2 == 1)) | ((hh == 0) & (kk == 0) & (ll % 4 != 0))
    table[absent | (q2 > q_max**2)] = 0.0
    table[0, 0, 0] = 0.0
    return table


def lookup_intensity(
    table: np.ndarray, h: np.ndarray, k: np.ndarray, ell: np.ndarray
) -> np.ndarray:
    """Full intensity of each (h, k, l) from :func:`intensity_table` (0 beyond its range)."""
    ah, ak = np.abs(h), np.abs(k)
    big, small, al = np.maximum(ah, ak), np.minimum(ah, ak), np.abs(ell)
    inside = (big < table.shape[0]) & (al < table.shape[2])
    out = np.zeros(h.shape, dtype=np.float64)
    out[inside] = table[big[inside], small[inside], al[inside]]
    return out


def asu_list(table: np.ndarray, config: SynthConfig, q_max: float) -> dict[str, np.ndarray]:
    a, c = config.cell_A
    hh, kk, ll = np.meshgrid(*(np.arange(n) for n in table.shape), indexing="ij")
    q2 = (hh**2 + kk**2) / a**2 + ll**2 / c**2
    keep = (kk <= hh) & (q2 <= q_max**2) & (q2 > 0)
    return {
        "h": hh[keep].astype(np.int32),
        "k": kk[keep].astype(np.int32),
        "l": ll[keep].astype(np.int32),
        "I": table[keep],
    }


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation matrix (from a uniform unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _printed(values: np.ndarray, fmt: str) -> np.ndarray:
    """Values rounded exactly as the stream prints them (so re-reading gives the same)."""
    return np.array([float(fmt % v) for v in np.ravel(values)]).reshape(np.shape(values))


def make_crystal(config: SynthConfig, rng: np.random.Generator) -> SimpleNamespace:
    """A crystal with the attributes the prediction reads (nm^-1 throughout)."""
    a_nm, c_nm = config.cell_A[0] / 10.0, config.cell_A[1] / 10.0
    rot = _random_rotation(rng)
    recip = rot @ np.diag([1.0 / a_nm, 1.0 / a_nm, 1.0 / c_nm])  # columns a*, b*, c*
    astar, bstar, cstar = (_printed(recip[:, i], "%+.7f") for i in range(3))
    return SimpleNamespace(
        astar=astar,
        bstar=bstar,
        cstar=cstar,
        profile_radius=float("%.5f" % rng.uniform(*config.profile_radius_nm)),
        det_shift_mm=(0.0, 0.0),
        centering="P",
        resolution_limit=None,
        reflections=None,
        scale=float(rng.uniform(*config.crystal_scale)),
        spot_sigma_px=float(rng.uniform(*config.spot_sigma_px)),
    )


#: Spot pixel values are multiples of this (photons), so the noise-free Bragg image is
#: exactly representable, sparse, and each spot's photons add up exactly.
BRAGG_QUANTUM = 1.0 / 64.0


def add_spots(
    image: np.ndarray, fs: np.ndarray, ss: np.ndarray, photons: np.ndarray, sigma: float
) -> np.ndarray:
    """Add pixel-integrated 2-D Gaussian spots to one panel image (float64, [ss, fs]).

    ``fs, ss`` are panel-relative centres (pixel i spans [i, i+1)).  Each spot's pixel values
    are ``photons`` times the Gaussian's integral over the pixel (normalised over the
    (2K+1)^2 stamp, K = ceil(5 sigma)), rounded to multiples of :data:`BRAGG_QUANTUM`.  Stamp
    pixels off the panel are dropped (nothing crosses to another panel).

    Returns
    -------
    float64 array
        Photons in each whole (rounded) spot, on and off the panel: the true intensity.
    """
    if fs.size == 0:
        return np.zeros(0)
    h, w = image.shape
    half = int(math.ceil(5.0 * sigma))
    offs = np.arange(-half, half + 2)  # pixel edges relative to the central pixel
    cfs, css = np.floor(fs).astype(np.int64), np.floor(ss).astype(np.int64)
    wx = np.diff(norm_cdf((cfs[:, None] + offs[None, :] - fs[:, None]) / sigma), axis=1)
    wy = np.diff(norm_cdf((css[:, None] + offs[None, :] - ss[:, None]) / sigma), axis=1)
    stamp = wy[:, :, None] * wx[:, None, :]
    stamp *= (photons / stamp.sum(axis=(1, 2)))[:, None, None]
    stamp = np.round(stamp / BRAGG_QUANTUM) * BRAGG_QUANTUM
    px = cfs[:, None, None] + offs[None, None, :-1]
    py = css[:, None, None] + offs[None, :-1, None]
    px, py = np.broadcast_to(px, stamp.shape), np.broadcast_to(py, stamp.shape)
    on = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    np.add.at(image, (py[on], px[on]), stamp[on])  # image may be a strided view
    return stamp.sum(axis=(1, 2))


BACKGROUND_COLUMNS = ("diffuse", "water", "slope_x", "slope_y", "flat")


def background_components(
    detector: Detector, config: SynthConfig, shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The background basis maps (float32, whole data array, values at pixel centres).

    ``diffuse = exp(-q / 0.12)`` and ``water = exp(-((q - 1/water_ring_A) / width)^2 / 2)``
    with q = 1/d in A^-1; ``slope_x = x / (panel_width / 2)`` and
    ``slope_y = y / (panel_height + gap / 2)`` with x, y the lab position in pixels (beam at
    0, 0).  The flat term is 1 everywhere and not stored.
    """
    lam_a = photon_energy_to_wavelength(config.photon_energy_eV) * 1e10
    x = np.zeros(shape)
    y = np.zeros(shape)
    for p in detector.panels:
        px, py = p.lab_xy(np.arange(p.width)[None, :] + 0.5, np.arange(p.height)[:, None] + 0.5)
        x[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = px
        y[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = py
    two_theta = np.arctan2(np.hypot(x, y) * config.pixel_size_m, config.clen_m)
    q = 2.0 * np.sin(two_theta / 2.0) / lam_a
    q0 = 1.0 / config.water_ring_A
    maps = {
        "diffuse": np.exp(-q / 0.12),
        "water": np.exp(-0.5 * ((q - q0) / config.water_width_invA) ** 2),
        "slope_x": x / (config.panel_width / 2.0),
        "slope_y": y / (config.panel_height + config.gap_px / 2.0),
    }
    return {k: v.astype(np.float32) for k, v in maps.items()}


def layout_components(
    detector: Detector, config: SynthConfig, canvas, header: dict[str, float]
) -> dict[str, np.ndarray]:
    """:func:`background_components` for any layout, on its canvas (:mod:`.canvas`).

    q uses each panel's own pixel size, camera length (``header``: the nominal header values
    of per-event geometries) plus ``coffset``, and the geometry's photon energy;
    ``slope_x = x / max|x|`` and ``slope_y = y / max|y|`` over the detector's pixels (lab
    pixels, beam at 0, 0).  Gap pixels hold 0.
    """
    energy = detector.photon_energy_eV(header) if detector.photon_energy is not None else (
        config.photon_energy_eV)
    lam_a = photon_energy_to_wavelength(energy) * 1e10
    x, y, q = (np.zeros(canvas.shape) for _ in range(3))
    for p in detector.panels:
        px, py = p.lab_xy(np.arange(p.width)[None, :] + 0.5, np.arange(p.height)[:, None] + 0.5)
        win = canvas.window(p)
        x[win], y[win] = px, py
        clen = detector.clen_m(header) + p.coffset
        two_theta = np.arctan2(np.hypot(px, py) / p.res, clen)
        q[win] = 2.0 * np.sin(two_theta / 2.0) / lam_a
    q0 = 1.0 / config.water_ring_A
    covered = canvas.covered(detector)
    maps = {
        "diffuse": np.exp(-q / 0.12),
        "water": np.exp(-0.5 * ((q - q0) / config.water_width_invA) ** 2),
        "slope_x": x / max(float(np.abs(x).max()), 1.0),
        "slope_y": y / max(float(np.abs(y).max()), 1.0),
    }
    return {k: np.where(covered, v, 0.0).astype(np.float32) for k, v in maps.items()}


def background_image(components: dict[str, np.ndarray], coeffs: np.ndarray) -> np.ndarray:
    """One frame's noise-free background (photons/pixel, float32) from its five coefficients.

    ``float32(sum_j coeffs[j] * float64(component_j) + coeffs[flat])``, in the order of
    :data:`BACKGROUND_COLUMNS`; only IEEE additions and multiplications, so re-computing it
    from the stored components gives the same bits on any machine.
    """
    bg = coeffs[0] * components["diffuse"].astype(np.float64)
    bg = bg + coeffs[1] * components["water"].astype(np.float64)
    bg = bg + coeffs[2] * components["slope_x"].astype(np.float64)
    bg = bg + coeffs[3] * components["slope_y"].astype(np.float64)
    return (bg + coeffs[4]).astype(np.float32)


def background_coeffs(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    c_diffuse = rng.uniform(*config.diffuse_level)
    c_water = rng.uniform(*config.water_level)
    c_sx, c_sy = rng.uniform(-config.slope, config.slope, size=2)
    c_flat = rng.uniform(*config.flat_level)
    return np.array([c_diffuse, c_water, c_sx, c_sy, c_flat])


def bad_pixels(config: SynthConfig, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Dead column (in p1), dead 6x6 block (in p0) and random hot pixels, fixed per seed."""
    rng = np.random.default_rng([config.seed, RNG_DETECTOR])
    n_ss, n_fs = shape
    h = config.panel_height
    dead = np.zeros(shape, dtype=bool)
    col = int(rng.integers(n_fs // 4, 3 * n_fs // 4))
    dead[h + h // 6 : h + (5 * h) // 6, col] = True
    bss, bfs = int(rng.integers(h // 4, 3 * h // 4)), int(rng.integers(n_fs // 8, n_fs // 3))
    dead[bss : bss + 6, bfs : bfs + 6] = True
    hot = np.zeros(shape, dtype=bool)
    flat = rng.choice(n_ss * n_fs, size=config.n_hot_pixels, replace=False)
    hot.reshape(-1)[flat] = True
    hot &= ~dead
    return dead, hot


def layout_bad_pixels(
    config: SynthConfig, detector: Detector, canvas
) -> tuple[np.ndarray, np.ndarray]:
    """Dead 6x6 blocks in three random panels, a dead half column in a fourth, and
    ``n_hot_pixels`` random hot pixels, on the canvas of any layout (fixed per seed)."""
    rng = np.random.default_rng([config.seed, RNG_DETECTOR])
    dead = np.zeros(canvas.shape, dtype=bool)
    panels = detector.panels
    pick = rng.choice(len(panels), size=min(4, len(panels)), replace=False)
    for n, pi in enumerate(pick):
        p = panels[int(pi)]
        view = dead[canvas.window(p)]
        if n == 3:
            view[: p.height // 2, int(rng.integers(0, p.width))] = True
        else:
            s0, f0 = int(rng.integers(0, max(p.height - 6, 1))), int(
                rng.integers(0, max(p.width - 6, 1)))
            view[s0 : s0 + 6, f0 : f0 + 6] = True
    covered = np.flatnonzero(canvas.covered(detector))
    hot = np.zeros(canvas.shape, dtype=bool)
    n_hot = min(config.n_hot_pixels, covered.size)
    hot.reshape(-1)[covered[rng.choice(covered.size, size=n_hot, replace=False)]] = True
    hot &= ~dead
    return dead, hot
