"""Robust integration: background fits on synthetic boxes, sigma, and the ref-small targets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamfilter.integrate import Status
from streamfilter.integrate.background import BackgroundWindows, PolarGrid, fit_radial_background
from streamfilter.integrate.boxes import Boxes
from streamfilter.integrate.robust import RobustOptions, disc_mask, integrate_robust

RADII = (3.0, 4.0, 5.0)
W = 8  # box half-width: the default local annulus reaches 8 px


def make_boxes(
    values: np.ndarray, bad: np.ndarray | None = None, on_panel: np.ndarray | None = None
) -> Boxes:
    """Boxes whose only predicted disc is their own (overlap 1 inside r1, 0 outside)."""
    n, b, _ = values.shape
    w = b // 2
    on = np.ones(values.shape, bool) if on_panel is None else on_panel
    badm = np.zeros(values.shape, bool) if bad is None else bad
    own = np.broadcast_to(disc_mask(w, RADII[0]), values.shape).astype(np.int16)
    return Boxes(
        values=values.astype(np.float32),
        on_panel=on,
        bad=badm | ~on,
        overlap=np.where(on, own, 0).astype(np.int16),
        centre_fs=np.full(n, 100),
        centre_ss=np.full(n, 100),
    )


def gaussian_spot(total: np.ndarray, w: int, sigma_px: float = 0.9) -> np.ndarray:
    """Pixel-centre Gaussian spots holding ``total`` photons (over the whole box)."""
    d = np.arange(-w, w + 1)
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma_px**2))
    return total[:, None, None] * (g / g.sum())[None]


def plane(n: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Background planes c + a p + b q (photons/pixel), c 15-30, slopes up to 0.8/px."""
    d = np.arange(-w, w + 1, dtype=float)
    c = rng.uniform(15, 30, n)
    a, b = rng.uniform(-0.8, 0.8, (2, n))
    return c[:, None, None] + a[:, None, None] * d[None, None, :] + b[:, None, None] * d[:, None]


def truth_in_disc(x: np.ndarray) -> np.ndarray:
    return np.where(disc_mask(x.shape[-1] // 2, RADII[0]), x, 0.0).sum(axis=(1, 2))


# ------------------------------------------------------------------------------------------
# Local fits on synthetic boxes
# ------------------------------------------------------------------------------------------


def test_plane_background_is_unbiased_on_sloped_boxes():
    rng = np.random.default_rng(11)
    n = 3000
    bg = plane(n, W, rng)
    spot = gaussian_spot(rng.uniform(0, 400, n), W)
    counts = rng.poisson(bg + spot).astype(float)
    truth = truth_in_disc(spot)
    res = integrate_robust(make_boxes(counts), RADII, 1.0, RobustOptions(background="plane"))
    assert np.all(res.status == Status.OK)
    err = res.I - truth
    # the true background of the disc is exactly removed on average (no slope bias)
    assert abs(err.mean()) < 3 * err.std() / math.sqrt(n)
    assert np.sqrt(np.mean((err / res.sigma) ** 2)) == pytest.approx(1.0, abs=0.06)
    # background column: mean background per peak pixel
    bg_disc = truth_in_disc(bg) / disc_mask(W, 3).sum()
    assert np.abs(res.background - bg_disc).mean() < 0.5


def test_clipping_removes_an_unpredicted_neighbour_spot_from_the_annulus():
    rng = np.random.default_rng(5)
    n = 400
    d = np.arange(-W, W + 1)
    bg = np.full((n, 2 * W + 1, 2 * W + 1), 15.0)
    spot = gaussian_spot(np.full(n, 300.0), W)
    # an unpredicted neighbour spot of 2000 photons centred 6 px away, inside the annulus
    neighbour = np.exp(-((d[None, :] - 6) ** 2 + d[:, None] ** 2) / (2 * 0.9**2))
    neighbour = 2000.0 * neighbour / neighbour.sum()
    counts = rng.poisson(bg + spot + neighbour[None]).astype(float)
    truth = truth_in_disc(spot)
    err = {}
    for clip in (3.0, math.inf):
        opts = RobustOptions(background="mean", clip_sigma=clip)
        err[clip] = integrate_robust(make_boxes(counts), RADII, 1.0, opts).I - truth
    # without clipping the neighbour's photons raise the background: I is far too low
    assert err[math.inf].mean() < -40
    # clipped: only the neighbour's far tail (pixels of 1-3 photons, below 3 sigma) is left,
    # a bias of a few photons against a disc noise of ~sqrt(300 + 29 * 15) = 27
    assert abs(err[3.0].mean()) < 0.05 * abs(err[math.inf].mean())
    assert abs(err[3.0].mean()) < 6.0
    assert np.sqrt(np.mean(err[3.0] ** 2)) < 0.6 * np.sqrt(np.mean(err[math.inf] ** 2))


def test_found_peak_mask_excludes_pixels_from_the_annulus():
    rng = np.random.default_rng(6)
    n = 200
    values = rng.poisson(np.full((n, 2 * W + 1, 2 * W + 1), 20.0)).astype(float)
    values[:, W, W + 6] = 5000.0  # a hot spot the peak list knows about
    mask = np.zeros(values.shape, bool)
    mask[:, W, W + 6] = True
    opts = RobustOptions(background="mean", clip_sigma=math.inf)
    with_mask = integrate_robust(make_boxes(values), RADII, 1.0, opts, peak_mask=mask)
    without = integrate_robust(make_boxes(values), RADII, 1.0, opts)
    m = disc_mask(W, 3).sum()
    assert np.all(with_mask.n_background == without.n_background - 1)
    assert abs(with_mask.I.mean()) < 3 * with_mask.sigma.mean() / math.sqrt(n)
    assert without.I.mean() < with_mask.I.mean() - 0.5 * m * 5000 / without.n_background.max()


def test_sigma_includes_the_background_fit_term():
    """Flat background, no spot: sigma^2 = g max(I,0) + m s2 + m^2 s2 / n for the mean."""
    rng = np.random.default_rng(7)
    n, level = 5000, 20.0
    counts = rng.poisson(np.full((n, 2 * W + 1, 2 * W + 1), level)).astype(float)
    res = integrate_robust(make_boxes(counts), RADII, 1.0, RobustOptions(background="mean"))
    m = int(disc_mask(W, 3).sum())
    n_bg = res.n_background
    neg = res.I <= 0
    expected = m * level * (1 + m / n_bg[neg])
    assert np.median(res.sigma[neg] ** 2 / expected) == pytest.approx(1.0, abs=0.05)
    z = res.I / res.sigma
    assert np.sqrt(np.mean(z**2)) == pytest.approx(1.0, abs=0.04)
    # without the m^2 s2 / n term (CrystFEL's structure) sigma is too small
    z_no_fit = res.I / np.sqrt(np.maximum(res.I, 0) + m * level)
    assert np.sqrt(np.mean(z_no_fit**2)) > np.sqrt(np.mean(z**2)) + 0.04


# ------------------------------------------------------------------------------------------
# Radial (frame-wide) background
# ------------------------------------------------------------------------------------------


def polar_panel(size: int = 240) -> tuple[PolarGrid, np.ndarray, np.ndarray]:
    """One square panel with the beam near its middle; returns grid, rho, phi."""
    ss, fs = np.mgrid[0:size, 0:size] + 0.5
    x, y = fs - size / 2 - 3.3, ss - size / 2 + 1.7
    rho, phi = np.hypot(x, y), np.arctan2(y, x)
    return PolarGrid(rho={"p": rho}, phi={"p": phi}), rho, phi


def ring_background(rho: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Diffuse + a water-like ring (sigma 15 px) with a cos(2 phi) polarisation factor."""
    pol = 1.0 - 0.08 * (rho / 120) ** 2 * (1 + np.cos(2 * phi)) / 2
    return pol * (6.0 + 15.0 * np.exp(-rho / 60) + 25.0 * np.exp(-0.5 * ((rho - 70) / 15) ** 2))


def test_radial_fit_recovers_a_ring_background_with_polarisation():
    rng = np.random.default_rng(3)
    grid, rho, phi = polar_panel()
    truth = ring_background(rho, phi)
    counts = rng.poisson(truth).astype(float)
    usable = np.ones(truth.shape, bool)
    fit = fit_radial_background({"p": counts}, {"p": usable}, grid, {"p": 1.0})
    model = fit.image("p")
    inner = (rho > 10) & (rho < 115)  # rings with a full circle of pixels
    err = (model - truth)[inner]
    # a few hundred pixels per ring: the model is far better than one pixel (sqrt(B) ~ 5)
    assert np.sqrt(np.mean(err**2)) < 0.35
    assert abs(err.mean()) < 0.05
    assert fit.excess["p"] == pytest.approx(1.0, abs=0.05)


def test_radial_fit_keeps_the_curvature_of_a_ring():
    """Noise-free: the local-quadratic smoothing over +-8 rings barely lowers the crest of a
    ring of width 15 px (a +-8-ring moving average would lower a 29-pixel disc by ~39)."""
    grid, rho, phi = polar_panel()
    truth = ring_background(rho, phi)
    fit = fit_radial_background(
        {"p": truth}, {"p": np.ones(truth.shape, bool)}, grid, {"p": 1.0}, clip_sigma=math.inf
    )
    model = fit.image("p")
    crest = (np.abs(rho - 70) < 2) & (rho < 115)
    assert abs(29 * (model - truth)[crest].mean()) < 1.5
    inner = (rho > 10) & (rho < 115)
    assert np.sqrt(np.mean((model - truth)[inner] ** 2)) < 0.03


def test_radial_fit_clips_unmasked_spots():
    rng = np.random.default_rng(4)
    grid, rho, phi = polar_panel()
    truth = ring_background(rho, phi)
    counts = rng.poisson(truth).astype(float)
    # 150 bright unpredicted spots (300 photons over ~9 pixels) not excluded from the fit
    ys, xs = rng.integers(10, 230, (2, 150))
    for y, x in zip(ys, xs):
        counts[y - 1 : y + 2, x - 1 : x + 2] += rng.poisson(33, (3, 3))
    usable = {"p": np.ones(truth.shape, bool)}
    inner = (rho > 10) & (rho < 115)
    bias = {}
    for clip in (3.0, math.inf):
        fit = fit_radial_background({"p": counts}, usable, grid, {"p": 1.0}, clip_sigma=clip)
        bias[clip] = (fit.image("p") - truth)[inner].mean()
    assert bias[math.inf] > 0.4  # ~ 150 * 300 photons / 50 000 pixels
    assert abs(bias[3.0]) < 0.1


def test_integrate_robust_radial_subtracts_the_model_exactly():
    n = 5
    values = np.arange(n * 11 * 11, dtype=float).reshape(n, 11, 11) % 17
    model = np.full(values.shape, 2.5)
    bgw = BackgroundWindows(
        model=model, pixel_var=np.full(values.shape, 2.5), model_var=np.full(values.shape, 0.01)
    )
    res = integrate_robust(make_boxes(values), RADII, 2.0, RobustOptions(), background=bgw)
    disc = disc_mask(5, 3)
    m = disc.sum()
    expected_i = np.where(disc, values, 0).sum(axis=(1, 2)) - 2.5 * m
    np.testing.assert_allclose(res.I, expected_i)
    expected_var = 2.0 * np.maximum(expected_i, 0) + 2.5 * m + (m * 0.1) ** 2
    np.testing.assert_allclose(res.sigma, np.sqrt(np.maximum(expected_var, 4.0)))
    np.testing.assert_allclose(res.background, 2.5)
    assert np.all(res.n_peak == m)


def test_partial_rings_at_edges_and_bad_pixels():
    rng = np.random.default_rng(9)
    n = 4
    values = rng.poisson(np.full((n, 2 * W + 1, 2 * W + 1), 20.0)).astype(float)
    on = np.ones(values.shape, bool)
    on[0, :, :5] = False  # box 0: the panel edge cuts the annulus, disc whole
    on[1, :, : W - 2] = False  # box 1: the edge cuts the peak disc
    bad = np.zeros(values.shape, bool)
    bad[2, W, W + 1] = True  # box 2: bad pixel in the disc
    bad[3, W, W + 5] = True  # box 3: bad pixel in the annulus only
    boxes = make_boxes(values, bad=bad, on_panel=on)
    res = integrate_robust(boxes, RADII, 1.0, RobustOptions(background="plane"))
    assert list(res.status) == [Status.OK, Status.OFF_PANEL, Status.BAD_PEAK_PIXEL, Status.OK]
    strict = integrate_robust(
        boxes, RADII, 1.0, RobustOptions(background="plane", partial_ok=False)
    )
    assert strict.status[0] == Status.OFF_PANEL  # CrystFEL's rule: whole box on the panel
    assert strict.status[3] == Status.OK


def test_options_are_validated():
    with pytest.raises(ValueError, match="unknown robust background 'clip'"):
        RobustOptions(background="clip")
    with pytest.raises(ValueError, match="bg_outer"):
        RobustOptions(bg_outer=0)
    assert RobustOptions().outer_radius == 8
    with pytest.raises(ValueError, match="needs the frame model"):
        integrate_robust(make_boxes(np.zeros((1, 11, 11))), RADII, 1.0, RobustOptions())


# ------------------------------------------------------------------------------------------
# ref-small: robust against crystfel on the same rows, radii and peak discs
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_tables(ref_small):
    from streamfilter.accuracy import compare_on_truth

    out = {}
    for name in ("r345", "r234"):
        cmp = compare_on_truth(
            ref_small / f"lyso_dev_{name}.stream",
            ref_small / "lyso_dev_truth.h5",
            perfect_background=True,
        )
        out[name] = (cmp, cmp.tables())
    return out


def ratio(tables, row: str, method: str = "robust") -> float:
    return getattr(tables[method], row).rms_error / getattr(tables["crystfel"], row).rms_error


def test_ref_small_r345_robust_beats_crystfel(ref_tables):
    cmp, tables = ref_tables["r345"]
    # measured 0.830 overall and 0.793 in the water shell (perfect background: 0.816, 0.788)
    assert ratio(tables, "overall") < 0.845
    assert ratio(tables, "water") < 0.80
    assert tables["robust"].overall.rms_z == pytest.approx(1.0, abs=0.1)
    assert tables["robust"].water.rms_z == pytest.approx(1.0, abs=0.1)
    assert tables["crystfel"].overall.rms_z > 1.2  # CrystFEL's sigma is too small
    # the same 11102 rows CrystFEL wrote, plus rows it drops at panel edges
    assert int(cmp.common(["crystfel", "robust"]).sum()) == 11102
    assert not np.any(cmp.written["crystfel"] & ~cmp.written["robust"])


def test_ref_small_r234_robust_beats_crystfel(ref_tables):
    _, tables = ref_tables["r234"]
    # measured 0.806 overall, 0.812 in the water shell: the water target of 0.80 is below
    # what even the true background gives with r1 = 2 (0.814)
    assert ratio(tables, "overall") < 0.82
    assert ratio(tables, "water") < 0.825
    assert ratio(tables, "water") < 1.01 * ratio(tables, "water", "perfect")
    assert tables["robust"].overall.rms_z == pytest.approx(1.0, abs=0.1)
