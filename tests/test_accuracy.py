"""Accuracy against the truth: T, per-shell tables, and ref-small's published figures."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from streamfilter.analysis.accuracy import (
    accuracy_table,
    compare_on_truth,
    format_side_by_side,
    stream_on_truth,
    true_counts_near,
    true_disc_counts,
    truth_background,
)
from streamfilter.crystal import invA, one_over_d


def test_true_disc_counts_sums_the_integration_disc():
    bragg = np.arange(20 * 30, dtype=float).reshape(20, 30)  # [ss, fs]
    cfs, css = np.array([10, 0]), np.array([5, 19])
    got = true_disc_counts(bragg, cfs, css, 2.0)
    d = np.arange(-2, 3)
    disc = d[:, None] ** 2 + d[None, :] ** 2 <= 4  # 13 pixels
    assert got[0] == bragg[3:8, 8:13][disc].sum()
    # at a corner only the on-panel part counts
    corner = np.zeros_like(bragg)
    corner[17:20, 0:3] = bragg[17:20, 0:3]
    assert got[1] == sum(
        corner[19 + a, 0 + b] for a in d for b in d if a * a + b * b <= 4 and 19 + a < 20 and b >= 0
    )
    # bad pixels and pixels shared with another predicted disc are left out
    usable = np.ones_like(bragg, bool)
    usable[5, 10] = False
    overlap = np.ones_like(bragg, np.int16)
    overlap[4, 11] = 2
    got2 = true_disc_counts(bragg, cfs[:1], css[:1], 2.0, usable=usable, overlap=overlap)
    assert got2[0] == got[0] - bragg[5, 10] - bragg[4, 11]
    # real radius 2.9 uses the integer disc of 2 (CrystFEL truncates the ring radii)
    assert true_disc_counts(bragg, cfs[:1], css[:1], 2.9)[0] == got[0]


def test_true_counts_near_uses_pixel_centres():
    bragg = np.zeros((10, 10))
    bragg[4, 6] = 100.0  # pixel fs=6, ss=4 spans [6, 7) x [4, 5), centre (6.5, 4.5)
    assert true_counts_near(bragg, np.array([6.5]), np.array([4.5]), 0.0)[0] == 100.0
    assert true_counts_near(bragg, np.array([7.1]), np.array([4.5]), 0.5)[0] == 0.0
    assert true_counts_near(bragg, np.array([7.1]), np.array([4.5]), 0.6)[0] == 100.0  # <=
    assert true_counts_near(bragg, np.array([6.0]), np.array([4.0]), 0.70)[0] == 0.0
    assert true_counts_near(bragg, np.array([6.0]), np.array([4.0]), 0.71)[0] == 100.0


def test_resolution_from_reciprocal_vectors():
    astar = np.array([0.1, 0.0, 0.0])  # nm^-1: a = 10 nm = 100 A
    bstar = np.array([0.0, 0.2, 0.0])
    cstar = np.array([0.0, 0.0, 0.5])
    q = invA(one_over_d(
        np.array([1, 0, 3]), np.array([0, 1, 4]), np.array([0, 0, 0]), astar, bstar, cstar
    ))
    np.testing.assert_allclose(q, [0.01, 0.02, 0.1 * math.hypot(0.3, 0.8)])


def test_accuracy_table_shells_and_statistics():
    d = np.array([10.0, 6.0, 5.0, 3.5, 3.2, 2.95, 2.9, 1.9, 3.0])
    T = np.array([100.0, 50, 40, 30, 20, 10, 5, 1, 7])  # noqa: N806
    I = T + np.array([3.0, -4, 0, 2, 2, -2, 1, 1, 0])  # noqa: N806
    sigma = np.array([3.0, 2, 1, 1, 2, 2, 1, 1, np.nan])
    tab = accuracy_table(I, sigma, T, 10.0 / d)  # 1/d in nm^-1
    by = {s.label: s for s in tab.rows()}
    # d_min <= d < d_max: 6.0 is in inf-6.00, 3.5 in 4.50-3.50, 2.95 in the water shell
    assert by["inf-6.00"].n == 2
    assert by["inf-6.00"].rms_error == pytest.approx(math.sqrt(12.5))
    assert by["inf-6.00"].rms_z == pytest.approx(math.sqrt((1 + 4) / 2))
    assert by["inf-6.00"].mean_error == pytest.approx(-0.5)
    assert (by["6.00-4.50"].n, by["6.00-4.50"].rms_error) == (1, 0.0)
    assert (by["4.50-3.50"].n, by["4.50-3.50"].rms_error) == (1, 2.0)
    assert by["3.50-2.95"].n == 2  # 3.2 and 2.95; the NaN-sigma row (d = 3.0) is left out
    assert by["3.50-2.95"].mean_error == 0.0
    assert by["water"] == type(by["water"])(
        "water", 3.5, 2.95, 2, by["3.50-2.95"].rms_error, by["3.50-2.95"].rms_z, 0.0
    )
    assert by["2.95-2.60"].n == 1 and by["2.00-0.00"].n == 1
    assert tab.overall.n == 8
    assert tab.overall.rms_error == pytest.approx(math.sqrt((9 + 16 + 4 + 4 + 4 + 1 + 1) / 8))
    assert by["2.35-2.15"].n == 0 and math.isnan(by["2.35-2.15"].rms_error)
    text = tab.format_table()
    assert "water" in text and "inf-6.00" in text
    json.dumps(tab.to_dict())  # JSON-clean: inf and NaN become None
    assert tab.to_dict()["shells"][0]["d_max"] is None


def test_side_by_side_ratios():
    rng = np.random.default_rng(2)
    T = rng.uniform(0, 500, 400)  # noqa: N806
    q = 10.0 * rng.uniform(0.1, 0.5, 400)  # 1/d in nm^-1
    noise = rng.normal(size=400)
    a = accuracy_table(T + 10 * noise, np.full(400, 10.0), T, q)
    b = accuracy_table(T + 5 * noise, np.full(400, 10.0), T, q)
    text = format_side_by_side({"crystfel": a, "robust": b}, "crystfel")
    overall = next(line for line in text.splitlines() if line.strip().startswith("all"))
    assert overall.split()[-1] == "0.500"


def test_truth_background_reads_both_layouts(tmp_path):
    comps = {"diffuse": np.full((2, 3), 2.0), "water": np.arange(6.0).reshape(2, 3)}
    coeffs = np.array([[1.0, 0.5, 3.0], [2.0, 1.0, 1.0]])
    with h5py.File(tmp_path / "a.h5", "w") as f:  # ref-small layout
        f["bragg"] = np.zeros((2, 2, 3), np.float32)
        for k, v in comps.items():
            f[f"background/components/{k}"] = v
        f["background/component_order"] = np.array([b"diffuse", b"water", b"flat"])
        f["background/coeffs"] = coeffs
        f["background/polarisation_factor"] = np.full((2, 3), 0.5)
        got = truth_background(f, 1)
    np.testing.assert_allclose(got, 0.5 * (2 * 2.0 + 1.0 * comps["water"] + 1.0))
    with h5py.File(tmp_path / "b.h5", "w") as f:  # streamfilter.synth layout
        f["bragg"] = np.zeros((2, 2, 3), np.float32)
        for k, v in comps.items():
            f[f"background/components/{k}"] = v
        f["background/coeffs"] = coeffs
        f["background/coeffs"].attrs["columns"] = ["diffuse", "water", "flat"]
        got = truth_background(f, 0)
    np.testing.assert_allclose(got, 1 * 2.0 + 0.5 * comps["water"] + 3.0)


def test_synth_robust_beats_crystfel(tmp_path):
    """On a simulated set (fixed seed) the robust background approaches the true one."""
    from streamfilter.synth import SynthConfig, generate

    ds = generate(tmp_path, SynthConfig(seed=3, n_frames=8))
    cmp = compare_on_truth(ds.stream_path, ds.truth_path, perfect_background=True)
    tables = cmp.tables()
    ov = {m: t.overall for m, t in tables.items()}
    assert ov["robust"].n > 1000
    assert ov["robust"].rms_error < 0.92 * ov["crystfel"].rms_error
    assert ov["robust"].rms_error < 1.04 * ov["perfect"].rms_error
    assert ov["robust"].rms_z == pytest.approx(1.0, abs=0.1)
    assert ov["crystfel"].rms_z > 1.1


# ------------------------------------------------------------------------------------------
# ref-small: our truth code reproduces obs_accuracy.txt
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n, cc, slope, mean, rms, rms_z, n_strong, median",
    [
        ("r345", 11102, 0.9987, 0.991, -3.97, 33.3, 1.274, 4179, 0.990),
        ("r234", 11262, 0.9971, 0.970, -9.59, 46.6, 1.478, 3898, 0.971),
    ],
)
def test_stream_figures_match_obs_accuracy(
    ref_small, name, n, cc, slope, mean, rms, rms_z, n_strong, median
):
    s = stream_on_truth(ref_small / f"lyso_dev_{name}.stream", ref_small / "lyso_dev_truth.h5")
    assert s["n"] == n
    assert round(s["cc"], 4) == cc
    assert round(s["slope"], 3) == slope
    assert round(s["mean_error"], 2) == mean
    assert round(s["rms_error"], 1) == rms
    assert round(s["rms_z"], 3) == rms_z
    assert s["n_strong"] == n_strong
    assert round(s["median_ratio_strong"], 3) == median


def test_stream_figures_within_4px_match_obs_accuracy(ref_small):
    truth = ref_small / "lyso_dev_truth.h5"
    for name, cc4, med4 in (("r345", 0.9984, 0.974), ("r234", 0.9967, 0.835)):
        s = stream_on_truth(ref_small / f"lyso_dev_{name}.stream", truth, radius=4.0)
        assert round(s["cc"], 4) == cc4
        assert round(s["median_ratio_strong"], 3) == med4
