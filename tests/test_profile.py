"""Profile fitting (``--method profile``): profiles, fits, sigma, and accuracy vs the truth."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from streamfilter.accuracy import compare_on_truth
from streamfilter.errors import StreamfilterError
from streamfilter.integrate.profile import (
    ProfileOptions,
    fit_profile_intensities,
    fit_reference_profile,
    pixel_gaussian,
    profile_error_covariance,
)
from streamfilter.integrate.robust import RobustOptions, disc_mask
from streamfilter.pipeline import integrate_frame

W = 5


def supersampled_gaussian(off_fs: float, off_ss: float, sf: float, sq: float) -> np.ndarray:
    """The pixel integrals of a 2-D Gaussian by brute force: 40 x 40 samples per pixel."""
    k = 40
    sub = (np.arange(k) + 0.5) / k - 0.5
    x = (np.arange(-W, W + 1)[:, None] + sub[None, :]).ravel()  # sample positions, px
    gx = np.exp(-0.5 * ((x - off_fs) / sf) ** 2).reshape(2 * W + 1, k).sum(1)
    gy = np.exp(-0.5 * ((x - off_ss) / sq) ** 2).reshape(2 * W + 1, k).sum(1)
    return np.outer(gy, gx) / (2 * math.pi * sf * sq * k * k)


def test_pixel_gaussian_integrates_over_pixels_at_the_subpixel_position():
    # prediction at panel fs = 10.8, ss = 20.3: central pixel (10, 20), whose centre is
    # (10.5, 20.5), so the spot sits +0.3 px along fs and -0.2 px along ss from it
    got = pixel_gaussian(np.array([10.8 - 10 - 0.5]), np.array([20.3 - 20 - 0.5]), 1.1, 0.8, W)
    want = supersampled_gaussian(0.3, -0.2, 1.1, 0.8)
    np.testing.assert_allclose(got[0], want, atol=2e-5)
    assert got.shape == (1, 2 * W + 1, 2 * W + 1)
    assert got[0].sum() == pytest.approx(1.0, abs=1e-5)  # the box holds +-5 sigma
    # [ss, fs] indexing: the spot leans to +fs (column W + 1) and to -ss (row W - 1)
    assert got[0, W, W + 1] > got[0, W, W - 1]
    assert got[0, W - 1, W] > got[0, W + 1, W]


def spots(
    rng: np.random.Generator, n: int, sf: float, sq: float, dfs: float, dss: float,
    intensity: np.ndarray, background: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Poisson boxes of Gaussian spots at random sub-pixel predictions (spot centre =
    prediction + (dfs, dss)) on a flat background; returns counts, the true spot images and
    the predictions' offsets from the central pixels' centres."""
    off_fs, off_ss = rng.uniform(-0.5, 0.5, (2, n))
    true = intensity[:, None, None] * pixel_gaussian(off_fs + dfs, off_ss + dss, sf, sq, W)
    counts = rng.poisson(true + background).astype(np.float64)
    return counts, true, off_fs, off_ss


def test_reference_profile_recovers_width_and_offset_of_strong_spots():
    rng = np.random.default_rng(11)
    counts, _, off_fs, off_ss = spots(rng, 60, 1.15, 0.85, 0.20, -0.15, np.full(60, 2000.0), 20)
    y = counts - 20.0
    use = np.broadcast_to(disc_mask(W, 4), y.shape)
    prof = fit_reference_profile(y, 20.0 + np.maximum(y, 0), use, off_fs, off_ss)
    assert prof.sigma_fs == pytest.approx(1.15, abs=0.051)
    assert prof.sigma_ss == pytest.approx(0.85, abs=0.051)
    assert prof.dfs == pytest.approx(0.20, abs=0.051)
    assert prof.dss == pytest.approx(-0.15, abs=0.051)
    assert prof.n_spots == 60


def test_weighted_fit_beats_the_sum_on_weak_spots_with_calibrated_sigma():
    """With the right profile, a weak spot on a background of 25 photons/pixel: the fit's
    error is sqrt(b / sum p**2) instead of the sum's sqrt(m b), and sigma says so."""
    rng = np.random.default_rng(5)
    n, b = 4000, 25.0
    intensity = rng.uniform(0, 150, n)
    counts, true, off_fs, off_ss = spots(rng, n, 1.0, 1.0, 0.0, 0.0, intensity, b)
    disc = np.broadcast_to(disc_mask(W, 3), counts.shape)
    shape = pixel_gaussian(off_fs, off_ss, 1.0, 1.0, W)
    prof = shape / np.where(disc, shape, 0).sum(axis=(1, 2))[:, None, None]
    y = counts - b
    t = np.where(disc, true, 0).sum(axis=(1, 2))
    summed = np.where(disc, y, 0).sum(axis=(1, 2))
    fitted, sigma, coef = fit_profile_intensities(
        y, np.full(y.shape, b), np.zeros(y.shape), disc, prof, 1.0, summed, n_iter=1
    )
    rms_sum = np.sqrt(np.mean((summed - t) ** 2))
    rms_fit = np.sqrt(np.mean((fitted - t) ** 2))
    # measured 0.729 (29 disc pixels against 1 / sum p**2 = 13.1, plus the spots' own
    # Poisson noise, which no weighting removes)
    assert rms_fit < 0.75 * rms_sum
    assert np.sqrt(np.mean(((fitted - t) / sigma) ** 2)) == pytest.approx(1.0, abs=0.05)
    assert abs(np.mean(fitted - t)) < 0.1 * rms_fit  # unbiased
    np.testing.assert_allclose((coef * y).sum(axis=(1, 2)), fitted, rtol=1e-9, atol=1e-9)
    # the profile is normalised over the disc: a noise-free spot gives exactly its disc sum
    exact, _, _ = fit_profile_intensities(
        true, np.full(y.shape, b), np.zeros(y.shape), disc, prof, 1.0, t
    )
    np.testing.assert_allclose(exact, t, rtol=1e-9)


def test_profile_error_covariance_removes_the_noise_and_finds_a_shape_error():
    rng = np.random.default_rng(8)
    n, b = 3000, 20.0
    counts, true, off_fs, off_ss = spots(rng, n, 1.0, 1.0, 0.0, 0.0, np.full(n, 800.0), b)
    disc = np.broadcast_to(disc_mask(W, 3), counts.shape)
    shape = pixel_gaussian(off_fs, off_ss, 1.0, 1.0, W)
    prof = shape / np.where(disc, shape, 0).sum(axis=(1, 2))[:, None, None]
    y = counts - b
    var = b + np.maximum(true, 0)
    exact = profile_error_covariance(y, var, disc, disc, prof)
    # the right profile: only noise, which the estimate removes (raw e e^T is ~100x larger)
    c = prof.reshape(n, -1)[0]
    assert abs(c @ exact @ c) < 2e-5
    # spots 10 % wider or narrower than the profile at random: a real shape error
    width = np.where(rng.random(n) < 0.5, 0.9, 1.1)
    true2 = 800.0 * pixel_gaussian(off_fs, off_ss, width, width, W)
    y2 = rng.poisson(true2 + b) - b
    wrong = profile_error_covariance(y2, b + true2, disc, disc, prof)
    e = np.where(disc, true2 / np.where(disc, true2, 0).sum(axis=(1, 2))[:, None, None] - prof, 0)
    want = (e.reshape(n, -1).T @ e.reshape(n, -1)) / n
    assert c @ wrong @ c == pytest.approx(c @ want @ c, rel=0.15)
    assert c @ wrong @ c > 20 * abs(c @ exact @ c)


def test_options_are_checked():
    with pytest.raises(ValueError, match="radial"):
        ProfileOptions(robust=RobustOptions(background="plane"))
    with pytest.raises(ValueError):
        ProfileOptions(min_strong=0)


# ------------------------------------------------------------------------------------------
# Synthetic data set (fixed seed): accuracy against the truth, and the written stream
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    from streamfilter.synth import SynthConfig, generate

    return generate(tmp_path_factory.mktemp("synth"), SynthConfig(seed=3, n_frames=8))


def test_synth_profile_beats_robust_and_crystfel(synth_set):
    cmp = compare_on_truth(
        synth_set.stream_path,
        synth_set.truth_path,
        extra={"profile": functools.partial(integrate_frame, "profile")},
    )
    tables = cmp.tables()
    ov = {m: t.overall for m, t in tables.items()}
    wa = {m: t.water for m, t in tables.items()}
    assert ov["profile"].n == ov["robust"].n > 1500
    # measured: overall 0.774 of crystfel (robust 0.832, so 0.930 of robust), water shell
    # 0.704 (robust 0.797: 0.883)
    assert ov["profile"].rms_error < 0.79 * ov["crystfel"].rms_error
    assert ov["profile"].rms_error < 0.95 * ov["robust"].rms_error
    assert wa["profile"].rms_error < 0.91 * wa["robust"].rms_error
    assert ov["profile"].rms_z == pytest.approx(1.0, abs=0.1)  # measured 0.996


def test_frames_without_enough_strong_spots_keep_the_robust_sums(synth_set):
    never = functools.partial(integrate_frame, "profile", options=ProfileOptions(min_isigma=1e9))
    cmp = compare_on_truth(synth_set.stream_path, synth_set.truth_path, extra={"none": never})
    np.testing.assert_array_equal(cmp.I["none"], cmp.I["robust"])
    np.testing.assert_array_equal(cmp.sigma["none"], cmp.sigma["robust"])
    np.testing.assert_array_equal(cmp.written["none"], cmp.written["robust"])


def test_reintegrated_profile_stream_is_valid_and_keeps_robust_columns(synth_set, tmp_path):
    from streamfilter import reintegrate
    from streamfilter.stream import read_stream
    from streamfilter.stream.validate import crystfel_problems

    out = {}
    for method in ("robust", "profile"):
        path = tmp_path / f"{method}.stream"
        s = reintegrate(str(synth_set.stream_path), str(path), method=method)
        data = path.read_bytes()
        assert crystfel_problems(data, path.name) == []
        assert b"nan" not in data.lower()
        rows = []
        with read_stream(path) as reader:
            for chunk in reader:
                for x in chunk.crystals:
                    t = x.reflections
                    assert x.n_rows == len(t)  # counters consistent with the rows
                    rows += [
                        ((chunk.event, h, k, l), (i, sg, pk, bg))  # noqa: E741
                        for h, k, l, i, sg, pk, bg in zip(  # noqa: E741
                            t.h, t.k, t.l, t.I, t.sigma, t.peak, t.background, strict=True
                        )
                    ]
        out[method] = dict(rows)
        assert s.counters["reflections_out"] == len(rows)
    rob, pro = out["robust"], out["profile"]
    both = rob.keys() & pro.keys()
    # the same rows (only I < -5 sigma may move), the same peak and background columns
    assert len(both) >= len(rob) - 3 and len(both) >= len(pro) - 3
    assert all(rob[k][2:] == pro[k][2:] for k in both)
    changed = sum(rob[k][0] != pro[k][0] for k in both)
    assert changed > 0.5 * len(both)  # most weak and medium spots are fitted


def test_pipeline_refuses_profile_with_a_local_background(synth_set, tmp_path):
    from streamfilter import reintegrate

    with pytest.raises(StreamfilterError, match="radial"):
        reintegrate(
            str(synth_set.stream_path), str(tmp_path / "o.stream"), method="profile",
            background="plane",
        )  # fmt: skip
    assert not (tmp_path / "o.stream").exists()


# ------------------------------------------------------------------------------------------
# ref-small: profile against crystfel and robust on the same rows, radii and peak discs
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref_tables(ref_small):
    out = {}
    for name in ("r345", "r234"):
        cmp = compare_on_truth(
            ref_small / f"lyso_dev_{name}.stream",
            ref_small / "lyso_dev_truth.h5",
            extra={"profile": functools.partial(integrate_frame, "profile", options=None)},
        )
        out[name] = cmp.tables()
    return out


def ratio(tables, row: str, method: str = "profile") -> float:
    return getattr(tables[method], row).rms_error / getattr(tables["crystfel"], row).rms_error


def test_ref_small_r345_profile(ref_tables):
    tables = ref_tables["r345"]
    # measured 0.752 overall, 0.688 in the water shell (robust 0.831 / 0.794)
    assert ratio(tables, "overall") < 0.765
    assert ratio(tables, "water") < 0.70
    assert tables["profile"].overall.n == 11102
    assert tables["profile"].overall.rms_z == pytest.approx(1.0, abs=0.1)  # 1.033
    assert tables["profile"].water.rms_z == pytest.approx(1.0, abs=0.1)  # 1.034


def test_ref_small_r234_profile_passes_the_water_target(ref_tables):
    tables = ref_tables["r234"]
    # measured 0.783 overall and 0.775 in the water shell: below the 0.80 target that no
    # summation reaches (robust 0.813, the true background 0.814)
    assert ratio(tables, "overall") < 0.795
    assert ratio(tables, "water") < 0.79
    assert ratio(tables, "water") < 0.97 * ratio(tables, "water", "robust")
    assert tables["profile"].overall.rms_z == pytest.approx(1.0, abs=0.1)  # 1.013
    assert tables["profile"].water.rms_z == pytest.approx(1.0, abs=0.1)  # 1.019
