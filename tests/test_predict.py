"""Reflection prediction like indexamajig: positions against CrystFEL's printed ones on
ref-small, and the geometry of the construction on synthetic detectors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from streamfilter.geometry import parse_geometry
from streamfilter.predict.crystfel import (
    MIN_PARTIALITY,
    photon_energy_to_wavelength,
    positions_for,
    predict_reflections,
)
from streamfilter.predict.threshold import threshold_radius_for
from streamfilter.stream import read_stream

RADIUS_PRINT_TOL = 5e-6  # profile_radius is printed with 5 decimals (nm^-1)


def printed(values: np.ndarray) -> np.ndarray:
    return np.array(["%6.1f" % v for v in values])


def last_digit_steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.rint(np.abs(a.astype(float) - b.astype(float)) * 10).astype(int)


@pytest.fixture(scope="module", params=["r345", "r234"])
def ref_stream(request, ref_small):
    with read_stream(ref_small / f"lyso_dev_{request.param}.stream") as reader:
        det = parse_geometry(reader.header.geometry_text)
        chunks = [(c.photon_energy_eV, c.beam_bandwidth, list(c.crystals)) for c in reader]
    return det, chunks


def test_positions_of_written_rows_match_printed(ref_stream):
    det, chunks = ref_stream
    n = exact = 0
    steps = []
    for energy, bw, crystals in chunks:
        for x in crystals:
            t = x.reflections
            pn, fs, ss = positions_for(
                t.h, t.k, t.l, x.astar, x.bstar, x.cstar, energy, det, x.det_shift_mm,
                profile_radius=x.profile_radius, bandwidth=bw,
            )  # fmt: skip
            assert (pn >= 0).all()
            names = np.array([det.panels[i].name for i in pn])
            assert (names == t.panel).all()
            min_fs = np.array([det.panels[i].min_fs for i in pn])
            min_ss = np.array([det.panels[i].min_ss for i in pn])
            ours_fs, ours_ss = printed(fs + min_fs), printed(ss + min_ss)
            ok = (ours_fs == printed(t.fs)) & (ours_ss == printed(t.ss))
            n += len(t)
            exact += int(ok.sum())
            steps += last_digit_steps(ours_fs[~ok], t.fs[~ok]).tolist()
            steps += last_digit_steps(ours_ss[~ok], t.ss[~ok]).tolist()
    assert exact / n >= 0.998, f"{exact}/{n}"
    # the rest are rounding ties at .x5: off by exactly one in the last printed digit
    assert set(steps) <= {0, 1}


def test_every_written_row_is_in_the_prediction_set(ref_stream):
    """predict_reflections reproduces CrystFEL's set up to the printed precision of R."""
    det, chunks = ref_stream
    n = found = found_nominal = 0
    for energy, bw, crystals in chunks:
        for x in crystals:
            t = x.reflections
            kw = {"bandwidth": bw, "det_shift_mm": x.det_shift_mm, "centering": x.centering}
            wide = predict_reflections(
                x.astar, x.bstar, x.cstar, energy, det,
                profile_radius=x.profile_radius + RADIUS_PRINT_TOL, **kw,
            )  # fmt: skip
            nominal = predict_reflections(
                x.astar, x.bstar, x.cstar, energy, det, profile_radius=x.profile_radius, **kw
            )  # fmt: skip
            rows = set(zip(t.h.tolist(), t.k.tolist(), t.l.tolist(), strict=True))
            n += len(rows)
            found += len(rows & set(zip(wide.h.tolist(), wide.k.tolist(), wide.l.tolist())))
            found_nominal += len(
                rows & set(zip(nominal.h.tolist(), nominal.k.tolist(), nominal.l.tolist()))
            )
            # sorted like a CrystFEL RefList
            key = np.lexsort((nominal.l, nominal.k, nominal.h))
            assert (key == np.arange(len(nominal))).all()
    assert found == n
    assert found_nominal >= n - 8  # a handful sit within the rounding of R of the cut


def test_threshold_radius_brackets_the_cut(ref_stream):
    det, chunks = ref_stream
    energy, bw, (x, *_) = chunks[0]
    r = x.profile_radius
    wide = predict_reflections(
        x.astar, x.bstar, x.cstar, energy, det, profile_radius=2 * r, bandwidth=bw
    )
    rs = threshold_radius_for(
        wide.h, wide.k, wide.l, x.astar, x.bstar, x.cstar, energy, bw, 0.5 * r, 2 * r
    )
    nominal = predict_reflections(
        x.astar, x.bstar, x.cstar, energy, det, profile_radius=r, bandwidth=bw
    )
    chosen = set(zip(wide.h[rs <= r].tolist(), wide.k[rs <= r].tolist(), wide.l[rs <= r].tolist()))
    assert chosen == set(zip(nominal.h.tolist(), nominal.k.tolist(), nominal.l.tolist()))
    assert (nominal.partiality >= MIN_PARTIALITY).all()


# -- synthetic geometry ---------------------------------------------------------------------

TILTED = """
clen = 0.1
res = 10000
adu_per_photon = 1
photon_energy = 9000
a/min_fs = 0
a/max_fs = 299
a/min_ss = 0
a/max_ss = 199
a/corner_x = -150.5
a/corner_y = -220.25
a/fs = 0.9998x +0.02y
a/ss = -0.02x +0.9998y
a/coffset = 0.002
b/min_fs = 0
b/max_fs = 299
b/min_ss = 200
b/max_ss = 399
b/corner_x = -140
b/corner_y = 10
b/fs = 0.99x +0.1z
b/ss = 1.0y
"""


@dataclass
class Lattice:
    astar: np.ndarray
    bstar: np.ndarray
    cstar: np.ndarray


def random_lattice(seed: int, a_nm=(6.0, 7.0, 8.0)) -> Lattice:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    recip = q / np.asarray(a_nm)[:, None]
    return Lattice(recip[0], recip[1], recip[2])


def test_positions_lie_on_the_diffracted_ray_with_det_shift():
    det = parse_geometry(TILTED)
    lat = random_lattice(1)
    shift_mm = (0.12, -0.05)
    energy = 9000.0
    pred = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, energy, det,
        profile_radius=0.01, bandwidth=0.002, det_shift_mm=shift_mm,
    )  # fmt: skip
    assert len(pred) > 20 and set(pred.panel.tolist()) == {0, 1}
    k = 1.0 / photon_energy_to_wavelength(energy)
    recip = np.array([lat.astar, lat.bstar, lat.cstar]) * 1e9
    q = np.stack([pred.h, pred.k, pred.l], axis=1) @ recip
    for i in range(len(pred)):
        p = det.panels[pred.panel[i]]
        corner = np.array(
            [
                p.corner_x + shift_mm[0] * 1e-3 * p.res,
                p.corner_y + shift_mm[1] * 1e-3 * p.res,
                (det.clen_m() + p.coffset) * p.res,
            ]
        )
        lab = corner + pred.fs[i] * np.array(p.fs) + pred.ss[i] * np.array(p.ss)
        ray = q[i] + np.array([0.0, 0.0, pred.kpred[i]])
        cross = np.cross(lab / np.linalg.norm(lab), ray / np.linalg.norm(ray))
        assert np.linalg.norm(cross) < 1e-12
        assert 0 <= pred.fs[i] < p.width and 0 <= pred.ss[i] < p.height
    # the spot is placed on a sphere within the spectrum (sigma = bandwidth * k)
    assert np.abs(pred.kpred / k - 1).max() < 3 * 0.002
    assert np.abs(pred.kpred / k - 1).max() > 1e-6  # ... not on the central one


def test_centring_absences_and_no_000():
    det = parse_geometry(TILTED)
    lat = random_lattice(2, (4.0, 4.0, 4.0))
    kw = {"profile_radius": 0.02, "bandwidth": 0.001}
    p_lat = predict_reflections(lat.astar, lat.bstar, lat.cstar, 9000.0, det, **kw)
    i_lat = predict_reflections(lat.astar, lat.bstar, lat.cstar, 9000.0, det, centering="I", **kw)
    assert ((i_lat.h + i_lat.k + i_lat.l) % 2 == 0).all()
    odd = (p_lat.h + p_lat.k + p_lat.l) % 2 != 0
    assert len(i_lat) == int((~odd).sum()) and odd.any()
    assert not ((p_lat.h == 0) & (p_lat.k == 0) & (p_lat.l == 0)).any()


def test_resolution_cut_and_excitation_cut():
    det = parse_geometry(TILTED)
    lat = random_lattice(3)
    full = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, det, profile_radius=0.01, bandwidth=0.001
    )
    cut = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, det, profile_radius=0.01, bandwidth=0.001,
        max_one_over_d=1.4e9,
    )  # fmt: skip
    assert len(cut) == int((full.one_over_d <= 1.4e9).sum()) < len(full)
    wider = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, det, profile_radius=0.02, bandwidth=0.001
    )
    assert set(zip(full.h.tolist(), full.k.tolist(), full.l.tolist())) < set(
        zip(wider.h.tolist(), wider.k.tolist(), wider.l.tolist())
    )
    # excitation error of every predicted reflection within ~1.7 R of the Ewald sphere
    k = 1.0 / photon_energy_to_wavelength(9000.0)
    recip = np.array([lat.astar, lat.bstar, lat.cstar]) * 1e9
    q = np.stack([full.h, full.k, full.l], axis=1) @ recip
    exerr = np.linalg.norm(q + [0, 0, k], axis=1) - k
    assert np.abs(exerr).max() <= 1.7 * math.hypot(0.01e9, 2 * 0.001 * k) * 1.01


def test_geometry_detector_shift_equals_crystal_det_shift():
    """``detector_shift_x/y`` (geometry, m) and ``predict_refine/det_shift`` (crystal, mm)
    both move every panel corner by shift / pixel_pitch."""
    lat = random_lattice(4)
    kw = {"profile_radius": 0.01, "bandwidth": 0.001}
    shifted = parse_geometry(TILTED + "detector_shift_x = 0.0003\ndetector_shift_y = -0.0002\n")
    via_geometry = predict_reflections(lat.astar, lat.bstar, lat.cstar, 9000.0, shifted, **kw)
    via_crystal = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, parse_geometry(TILTED),
        det_shift_mm=(0.3, -0.2), **kw,
    )  # fmt: skip
    assert len(via_geometry) > 20
    np.testing.assert_array_equal(via_geometry.h, via_crystal.h)
    np.testing.assert_allclose(via_geometry.fs, via_crystal.fs, atol=1e-9)
    np.testing.assert_allclose(via_geometry.ss, via_crystal.ss, atol=1e-9)
    plain = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, parse_geometry(TILTED), **kw
    )
    key = {(h, k, l): i for i, (h, k, l) in enumerate(zip(plain.h, plain.k, plain.l))}
    moved = [
        (via_crystal.fs[j] - plain.fs[key[hkl]], via_crystal.ss[j] - plain.ss[key[hkl]])
        for j, hkl in enumerate(zip(via_crystal.h, via_crystal.k, via_crystal.l))
        if hkl in key and via_crystal.panel[j] == 0 and plain.panel[key[hkl]] == 0
    ]
    # panel a: 100 um pixels, fs ~ +x, ss ~ +y: the spots move by about (-3, +2) pixels
    assert len(moved) > 10
    np.testing.assert_allclose(np.mean(moved, axis=0), (-3.0, 2.0), atol=0.2)


# -- the fast paths reproduce the plain algorithms bit for bit ---------------------------------


def whole_box_prediction(lat: Lattice, energy: float, det, r_nm: float, bw: float):
    """``predict_to_res`` as CrystFEL writes it: every (h, k, l) of the index box in h, k, l
    order, centring/000/resolution tests, ``check_reflection``, ``locate_peak``."""
    from streamfilter.predict.crystfel import (
        _excitation,
        _locate,
        _max_resolution,
        prediction_geometry,
        reciprocal_matrix,
    )

    recip = reciprocal_matrix(lat.astar, lat.bstar, lat.cstar)
    wavelength = photon_energy_to_wavelength(energy)
    geoms = prediction_geometry(det, None)
    mres = _max_resolution(geoms, wavelength)
    lim = [min(int(mres * np.linalg.norm(v)), 511) for v in np.linalg.inv(recip).T]
    h, k, l = (a.ravel() for a in np.meshgrid(*(np.arange(-m, m + 1) for m in lim), indexing="ij"))  # noqa: E741
    keep = ~((h == 0) & (k == 0) & (l == 0))
    h, k, l = h[keep], k[keep], l[keep]  # noqa: E741
    xl, yl, zl = (h * recip[0, i] + k * recip[1, i] + l * recip[2, i] for i in range(3))
    part, kpred = _excitation(xl, yl, zl, wavelength, bw, r_nm * 1e9)
    on = np.flatnonzero(~(part < MIN_PARTIALITY))
    with np.errstate(divide="ignore", invalid="ignore"):
        panel, fs, ss = _locate(xl[on], yl[on], zl[on] + kpred[on], geoms, (0.0, 0.0))
    hit = panel >= 0
    return h[on][hit], k[on][hit], l[on][hit], panel[hit], fs[hit], ss[hit], kpred[on][hit]


@pytest.mark.parametrize(
    "seed, cell, r_nm, bw",
    [
        (1, (6.0, 7.0, 8.0), 0.01, 0.002),
        (5, (9.0, 12.0, 10.0), 0.02, 1e-8),
        (6, (9.0, 12.0, 10.0), 0.02, 0.0),  # no bandwidth: the 'Laue' corner case
    ],
)
def test_prediction_equals_a_scan_of_the_whole_index_box(seed, cell, r_nm, bw):
    """The shell of candidates around the Ewald sphere loses nothing, and the prediction is
    the same to the last bit (positions included) as CrystFEL's scan of the whole box."""
    det = parse_geometry(TILTED)
    lat = random_lattice(seed, cell)
    ref = whole_box_prediction(lat, 9000.0, det, r_nm, bw)
    pred = predict_reflections(
        lat.astar, lat.bstar, lat.cstar, 9000.0, det, profile_radius=r_nm, bandwidth=bw
    )
    assert len(pred) >= 5
    for got, want in zip((pred.h, pred.k, pred.l, pred.panel, pred.fs, pred.ss, pred.kpred), ref):
        np.testing.assert_array_equal(got, want)


def test_candidate_shell_contains_every_box_point_near_the_sphere():
    from streamfilter.predict.crystfel import _candidate_indices

    rng = np.random.default_rng(3)
    for _ in range(60):
        real = np.diag(rng.uniform(2, 25, 3)) @ np.linalg.qr(rng.normal(size=(3, 3)))[0]
        real[1] += rng.normal(0, 2, 3)  # oblique cells too
        recip = np.linalg.inv(real).T * 1e9  # m^-1 (real in nm)
        kcen = 1.0 / rng.uniform(0.5e-10, 3e-10)
        mres = rng.uniform(0.1, 1.0) * kcen
        lim = tuple(min(int(mres * np.linalg.norm(v) * 1e-9), 25) for v in real)
        bound = float(rng.choice([1e5, 1e6, 1e7, 1e8]))
        box = np.meshgrid(*(np.arange(-m, m + 1) for m in lim), indexing="ij")
        h, k, l = (a.ravel() for a in box)  # noqa: E741
        q = np.stack([h, k, l], axis=1) @ recip
        near = np.abs(np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2 + (q[:, 2] + kcen) ** 2) - kcen) <= bound
        got = list(zip(*(a.tolist() for a in _candidate_indices(recip, lim, kcen, bound))))
        assert len(got) == len(set(got))  # no index twice
        assert set(zip(h[near].tolist(), k[near].tolist(), l[near].tolist())) <= set(got)


def plain_bisection(xl, yl, zl, wavelength, bw, r_lo, r_hi, iterations=60):
    """threshold_radius as first written: 60 halvings, check_reflection at every step."""
    from streamfilter.predict.crystfel import _excitation

    p_lo, _ = _excitation(xl, yl, zl, wavelength, bw, r_lo)
    p_hi, _ = _excitation(xl, yl, zl, wavelength, bw, r_hi)
    out = np.where(p_hi < MIN_PARTIALITY, np.inf, r_lo)
    todo = np.flatnonzero((p_lo < MIN_PARTIALITY) & ~(p_hi < MIN_PARTIALITY))
    lo, hi = np.full(todo.size, r_lo), np.full(todo.size, r_hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        p, _ = _excitation(xl[todo], yl[todo], zl[todo], wavelength, bw, mid)
        passes = ~(p < MIN_PARTIALITY)
        hi, lo = np.where(passes, mid, hi), np.where(passes, lo, mid)
    out[todo] = hi
    return out


@pytest.mark.parametrize("n", [1, 3, 8, 9, 60])  # Python-float path up to 8 points, numpy above
@pytest.mark.parametrize("r_lo, width, bw", [(3e6, 1e5, 1e-8), (1e5, 3e6, 1e-3), (0.0, 1e6, 1e-5)])
def test_threshold_radius_is_the_plain_bisection_bit_for_bit(n, r_lo, width, bw):
    from streamfilter.predict.crystfel import _excitation
    from streamfilter.predict.threshold import threshold_radius

    rng = np.random.default_rng(n)
    wavelength = 1.3e-10
    kcen = 1.0 / wavelength
    d = rng.normal(size=(40000, 3))
    d[:, 2] = -np.abs(d[:, 2]) * 0.3
    d /= np.linalg.norm(d, axis=1)[:, None]
    e = np.exp(rng.uniform(np.log(1.5), np.log(30.0), 40000)) * (r_lo + width)
    q = d * (kcen + e * rng.choice([-1.0, 1.0], 40000))[:, None]
    q[:, 2] -= kcen
    # n points whose cut lies inside [r_lo, r_lo + width], and a few outside it
    p_lo, _ = _excitation(*q.T, wavelength, bw, r_lo)
    p_hi, _ = _excitation(*q.T, wavelength, bw, r_lo + width)
    inside = np.flatnonzero((p_lo < MIN_PARTIALITY) & (p_hi >= MIN_PARTIALITY))
    outside = np.flatnonzero((p_lo >= MIN_PARTIALITY) | (p_hi < MIN_PARTIALITY))
    pick = np.r_[inside[:n], outside[:3]]
    assert inside.size >= n
    xl, yl, zl = q[pick].T.copy()
    want = plain_bisection(xl, yl, zl, wavelength, bw, r_lo, r_lo + width)
    got = threshold_radius(xl, yl, zl, wavelength, bw, r_lo, r_lo + width)
    np.testing.assert_array_equal(got, want)
    assert ((want[:n] > r_lo) & (want[:n] <= r_lo + width)).all()


def test_threshold_of_the_predicted_set_equals_threshold_for_their_indices():
    from streamfilter.predict.crystfel import _predict, prediction_geometry
    from streamfilter.predict.threshold import _threshold_radius_of_predicted

    det = parse_geometry(TILTED)
    lat = random_lattice(7, (9.0, 12.0, 10.0))
    r, tol = 0.01, 5e-4
    pred, terms = _predict(
        lat.astar, lat.bstar, lat.cstar, 9000.0, prediction_geometry(det), r + tol, 1e-8,
        (0.0, 0.0), math.inf, "P",
    )  # fmt: skip
    want = threshold_radius_for(
        pred.h, pred.k, pred.l, lat.astar, lat.bstar, lat.cstar, 9000.0, 1e-8, r - tol, r + tol
    )
    got = _threshold_radius_of_predicted(terms, (r - tol) * 1e9, (r + tol) * 1e9) * 1e-9
    assert (want > r - tol).sum() >= 5  # some are near the cut
    np.testing.assert_array_equal(got, want)
