"""CrystFEL-identical rings integration on hand-made boxes: the spec's worked example, the
ring pixel counts, and every rule that decides whether and how a reflection is written."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from streamfilter.integrate import Status
from streamfilter.integrate.boxes import (
    BACKGROUND,
    IGNORED,
    PEAK,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
    ring_classes,
)
from streamfilter.integrate.rings import (
    integrate_rings,
    poisson_variance,
)

RADII_123 = (1.0, 2.0, 3.0)


def one_box(
    values: np.ndarray,
    *,
    bad: np.ndarray | None = None,
    overlap: np.ndarray | None = None,
    panel_shape: tuple[int, int] = (21, 21),
    centre: tuple[int, int] = (10, 10),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A panel with ``values`` (a (2W+1)^2 box) pasted around ``centre`` = (fs, ss)."""
    w = values.shape[0] // 2
    image = np.zeros(panel_shape, np.float32)
    cf, cs = centre
    image[cs - w : cs + w + 1, cf - w : cf + w + 1] = values
    badmap = np.zeros(panel_shape, bool)
    if bad is not None:
        badmap[cs - w : cs + w + 1, cf - w : cf + w + 1] = bad
    ov = np.zeros(panel_shape, np.int16)
    if overlap is not None:
        ov[cs - w : cs + w + 1, cf - w : cf + w + 1] = overlap
    return image, badmap, ov


def integrate_one(values, radii=RADII_123, g=5.0, *, centre=(10, 10), **kw):
    bad = kw.pop("bad", None)
    overlap = kw.pop("overlap", None)
    shape = kw.pop("panel_shape", (21, 21))
    image, badmap, ov = one_box(values, bad=bad, overlap=overlap, panel_shape=shape, centre=centre)
    boxes = gather_boxes(
        image, badmap, np.array([centre[0]]), np.array([centre[1]]), int(radii[2]), ov
    )
    return integrate_rings(boxes, radii, g, **kw)


def worked_example_box(peak_values=(60, 30, 30, 30, 30), diagonal=1000.0) -> np.ndarray:
    """Spec section 5.4: r = 1,2,3; ten background pixels read 10 and ten read 12."""
    cls = ring_classes(1, 2, 3, 3)
    box = np.full((7, 7), 5000.0, np.float32)  # corners beyond r3: ignored, any value
    bg_q, bg_p = np.nonzero(cls == BACKGROUND)
    assert bg_q.size == 20
    box[bg_q[::2], bg_p[::2]] = 10.0
    box[bg_q[1::2], bg_p[1::2]] = 12.0
    centre, *neighbours = peak_values
    box[3, 3] = centre
    for (q, p), v in zip([(2, 3), (4, 3), (3, 2), (3, 4)], neighbours, strict=True):
        box[q, p] = v
    for q, p in [(2, 2), (2, 4), (4, 2), (4, 4)]:  # d^2 = 2: between the rings
        box[q, p] = diagonal
    return box


def row_text(res, i=0) -> str:
    return "%10.2f %10.2f %10.2f %10.2f" % (res.I[i], res.sigma[i], res.peak[i], res.background[i])


# -- ring geometry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "radii, m, n, ignored",
    [
        ((1, 2, 3), 5, 20, 24),
        ((2, 3, 5), 13, 56, 52),
        ((3, 4, 5), 29, 36, 56),
        ((3, 4, 6), 29, 68, 72),
        ((4, 5, 7), 49, 80, 96),
        ((5, 6, 8), 81, 88, 120),
    ],
)
def test_ring_pixel_counts_match_spec_table(radii, m, n, ignored):
    cls = ring_classes(*radii, radii[2])
    assert cls.shape == (2 * radii[2] + 1,) * 2
    assert (cls == PEAK).sum() == m
    assert (cls == BACKGROUND).sum() == n
    assert (cls == IGNORED).sum() == ignored


def test_ring_classes_use_integer_distances_with_inclusive_bounds():
    cls = ring_classes(1, 2, 3, 3)
    # d^2 = 1 is peak (<= r1^2), d^2 = 2 ignored, d^2 = 4 and 9 background, d^2 = 10 ignored
    assert cls[3, 4] == PEAK and cls[4, 4] == IGNORED
    assert cls[3, 5] == BACKGROUND and cls[3, 6] == BACKGROUND
    assert cls[4, 6] == IGNORED and cls[0, 0] == IGNORED


def test_central_pixel_is_truncation_of_panel_relative_position():
    cf, cs = central_pixels(np.array([2.0, 2.999, 3.0]), np.array([0.0, 7.5, 7.9999]))
    assert cf.tolist() == [2, 2, 3] and cs.tolist() == [0, 7, 7]


# -- the worked example (spec 5.4) ------------------------------------------------------------


def test_worked_example_numbers():
    res = integrate_one(worked_example_box(), g=5.0)
    assert res.status[0] == Status.OK
    assert res.I[0] == 125.0
    assert res.sigma[0] == pytest.approx(math.sqrt(630.0), rel=0, abs=1e-12)
    assert row_text(res) == "    125.00      25.10      60.00      11.00"
    assert (res.n_peak[0], res.n_background[0]) == (5, 20)


def test_worked_example_weak_and_negative_variants():
    flat = integrate_one(worked_example_box((12, 11, 11, 11, 10)), g=5.0)
    assert flat.I[0] == 0.0
    assert row_text(flat) == "      0.00       5.48      12.00      11.00"  # sqrt(25 + 5)
    neg = integrate_one(worked_example_box((8, 8, 8, 8, 8)), g=5.0)
    assert neg.I[0] == -15.0
    assert row_text(neg) == "    -15.00       8.94      12.00      11.00"  # sqrt(75 + 5)
    assert neg.status[0] == Status.OK  # I/sigma = -1.68: plausible


# -- rejection and exclusion rules ----------------------------------------------------------


def test_box_must_lie_entirely_on_the_panel():
    box = worked_example_box()
    image, bad, ov = one_box(box, centre=(3, 10))
    boxes = gather_boxes(image, bad, np.array([3, 2, 17, 18]), np.array([10, 10, 17, 10]), 3, ov)
    res = integrate_rings(boxes, RADII_123, 5.0)
    # r3 = 3 pixels of clearance needed: centre 3 and 17 fit in a 21-pixel panel, 2 and 18 not
    assert res.status.tolist() == [Status.OK, Status.OFF_PANEL, Status.OK, Status.OFF_PANEL]
    assert np.isnan(res.I[1]) and np.isnan(res.I[3])


def test_bad_peak_pixel_rejects_in_012_and_is_excluded_before():
    bad = np.zeros((7, 7), bool)
    bad[3, 4] = True  # a peak neighbour reading 30
    res = integrate_one(worked_example_box(), bad=bad)
    assert res.status[0] == Status.BAD_PEAK_PIXEL
    old = integrate_one(worked_example_box(), bad=bad, reject_bad_peak=False)
    assert old.status[0] == Status.OK
    assert old.n_peak[0] == 4 and old.I[0] == 150.0 - 4 * 11.0


def test_bad_background_or_ignored_pixel_is_only_excluded():
    bad = np.zeros((7, 7), bool)
    cls = ring_classes(1, 2, 3, 3)
    q, p = np.nonzero(cls == BACKGROUND)
    bad[q[1], p[1]] = True  # one of the pixels reading 12
    bad[0, 0] = True  # ignored corner
    bad[2, 2] = True  # ignored diagonal
    res = integrate_one(worked_example_box(), bad=bad)
    assert res.status[0] == Status.OK
    assert res.n_background[0] == 19
    assert res.background[0] == pytest.approx(208.0 / 19, abs=1e-12)
    assert res.I[0] == pytest.approx(180.0 - 5 * (208.0 / 19), abs=1e-12)


def test_overlap_mask_rules():
    cls = ring_classes(1, 2, 3, 3)
    q, p = np.nonzero(cls == BACKGROUND)
    # every background pixel inside some predicted disc: all excluded -> too few pixels
    res = integrate_one(worked_example_box(), overlap=np.ones((7, 7), np.int16))
    assert res.status[0] == Status.TOO_FEW_PIXELS and res.n_background[0] == 0

    ov = np.zeros((7, 7), np.int16)
    ov[cls == PEAK] = 1  # own disc only: nothing excluded
    ov[q[0], p[0]] = 1  # one background pixel in a neighbour's disc: excluded
    ov[3, 4] = 2  # one peak pixel shared with a neighbour's disc: excluded, not rejected
    res = integrate_one(worked_example_box(), overlap=ov)
    assert res.status[0] == Status.OK
    assert (res.n_peak[0], res.n_background[0]) == (4, 19)
    assert res.background[0] == pytest.approx(210.0 / 19, abs=1e-12)
    assert res.I[0] == pytest.approx(150.0 - 4 * res.background[0], abs=1e-12)
    # the ignored diagonal (1000s) may be covered by anything without effect
    ov[2, 2] = 3
    assert integrate_one(worked_example_box(), overlap=ov).I[0] == res.I[0]


def test_overlap_map_counts_discs_with_crystfel_truncation():
    # real-valued r1 = 1.5: offsets with dfs^2 + dss^2 <= 2.25 (a 3x3 square)
    ov = overlap_map((10, 10), np.array([4.7, 5.2]), np.array([4.1, 4.9]), 1.5)
    assert ov.sum() == 18 and ov[4, 4] == 2 and ov[4, 5] == 2 and ov[3, 3] == 1
    assert ov[3, 6] == 1 and ov[5, 6] == 1 and ov[4, 3] == 1 and not ov[6, :].any()
    # make_BgMask truncates pos + offset, so a disc hanging over the low edge folds onto 0
    edge = overlap_map((5, 5), np.array([0.5]), np.array([2.5]), 2.0)
    assert edge[2, 0] == 2  # dfs = -1 -> int(-0.5) = 0, and dfs = 0
    assert edge[2, :].tolist() == [2, 1, 1, 0, 0]


def test_too_few_pixels():
    bad = np.zeros((7, 7), bool)
    cls = ring_classes(1, 2, 3, 3)
    q, p = np.nonzero(cls == BACKGROUND)
    bad[q[:17], p[:17]] = True  # 3 background pixels left
    res = integrate_one(worked_example_box(), bad=bad)
    assert res.status[0] == Status.TOO_FEW_PIXELS and res.n_background[0] == 3
    ov = np.zeros((7, 7), np.int16)
    ov[2, 3] = ov[4, 3] = 2  # 3 peak pixels left
    res = integrate_one(worked_example_box(), overlap=ov)
    assert res.status[0] == Status.TOO_FEW_PIXELS and res.n_peak[0] == 3


# -- background models ------------------------------------------------------------------------


def plane_box(a=0.5, b=-0.25, c=20.0, w=3, peak=None) -> np.ndarray:
    q, p = np.mgrid[0 : 2 * w + 1, 0 : 2 * w + 1]
    box = (a * p + b * q + c).astype(np.float32)
    if peak is not None:
        box[w, w] += peak
    return box


def test_gradient_background_recovers_plane_and_subtracts_it():
    box = plane_box(peak=100.0)
    res = integrate_one(box, gradient=True, g=1.0)
    assert res.status[0] == Status.OK
    # plane under the 5 peak pixels sums to 5 * 20 (symmetric around the centre p=q=3 ...)
    plane_under_peak = 5 * (0.5 * 3 - 0.25 * 3 + 20.0)
    assert res.I[0] == pytest.approx(box[2:5, 2:5][ring_classes(1, 2, 3, 1) == PEAK].sum()
                                     - plane_under_peak, abs=1e-9)  # fmt: skip
    assert res.I[0] == pytest.approx(100.0, abs=1e-9)
    # background column: plain mean; sigma uses the variance about the plain mean
    cls = ring_classes(1, 2, 3, 3)
    bg = box[cls == BACKGROUND].astype(np.float64)
    assert res.background[0] == pytest.approx(bg.mean(), abs=1e-12)
    assert res.sigma[0] == pytest.approx(math.sqrt(100.0 + 5 * bg.var()), abs=1e-9)
    flat = integrate_one(box, gradient=False, g=1.0)
    assert flat.I[0] == pytest.approx(100.0 + (5 * (20.0 + 0.75) - 5 * bg.mean()), abs=1e-9)


def test_gradient_steeper_than_bg_ok_allows_is_rejected():
    # |a| > |peak_height - bg_under_peak| / 10 -> rejected (only with -grad)
    box = plane_box(a=5.0, b=0.0, c=100.0, peak=20.0)
    assert integrate_one(box, gradient=True).status[0] == Status.BG_GRADIENT
    assert integrate_one(box, gradient=False).status[0] == Status.OK


# -- saturation ------------------------------------------------------------------------------


def test_saturation_counted_and_dropped_unless_sat():
    box = worked_example_box()
    drop = integrate_one(box, max_adu=59.0)
    assert drop.status[0] == Status.SATURATED and drop.saturated[0] and drop.n_saturated == 1
    assert np.isnan(drop.I[0])
    keep = integrate_one(box, max_adu=59.0, keep_saturated=True)
    assert keep.status[0] == Status.OK and keep.saturated[0] and keep.n_saturated == 1
    assert keep.I[0] == 125.0
    # strictly above max_adu; ignored pixels (the 1000s on the diagonal) never saturate
    assert integrate_one(box, max_adu=60.0).status[0] == Status.OK
    assert not integrate_one(box, max_adu=60.0).saturated[0]


def test_per_pixel_saturation_map_and_background_pixels():
    box = worked_example_box()
    image, bad, ov = one_box(box)
    sat = np.full(image.shape, np.inf, np.float32)
    sat[10, 12] = 11.5  # a background pixel (d^2 = 4) reading 10 or 12
    cf, cs = np.array([10]), np.array([10])
    boxes = gather_boxes(image, bad, cf, cs, 3, ov)
    win, _ = gather_window(sat, cf, cs, 3, np.inf)
    res = integrate_rings(boxes, RADII_123, 5.0, saturation=win)
    assert res.saturated[0] == (image[10, 12] > 11.5)


# -- implausible and the Poisson term ---------------------------------------------------------


def test_implausible_reflection_is_counted_not_written():
    box = worked_example_box((0, 0, 0, 0, 0))  # I = -55, sigma = sqrt(5*55 + 5) = 16.7
    assert integrate_one(box, g=5.0).status[0] == Status.OK
    res = integrate_one(box, g=0.01)  # sigma = sqrt(0.55 + 5) = 2.36
    assert res.status[0] == Status.IMPLAUSIBLE and res.n_implausible == 1
    assert res.I[0] == -55.0  # values are still reported for diagnostics


def test_poisson_branches():
    g = 4.0
    i = np.array([100.0, 3.9, -3.9, 0.0, -4.5, -100.0])
    assert poisson_variance(i, g).tolist() == [400.0, 16.0, 16.0, 16.0, 18.0, 400.0]


def test_poisson_edge_case_i_equals_minus_g_is_kept_as_crystfel_has_it():
    """At I == -g neither branch fires: sigma^2_Poisson = g*I = -g^2 (CrystFEL >= 0.11.1).

    We mimic it in this CrystFEL-identical mode.  With a flat background (var_bg = 0) sigma
    is NaN, and the row is written, since I < -5 NaN is false.
    """
    assert poisson_variance(np.array([-4.0]), 4.0).tolist() == [-16.0]
    box = np.full((7, 7), 10.0, np.float32)
    box[3, 3] = 9.0  # I = -1 with g = 1, flat background
    res = integrate_one(box, g=1.0)
    assert res.I[0] == -1.0 and math.isnan(res.sigma[0])
    assert res.status[0] == Status.OK


def test_sums_follow_crystfel_loop_order_in_double():
    # non-integer float32 data: the background mean is a sequential double sum in
    # fs-outer/ss-inner order divided by n, and I = sum_pk - mean * m
    rng = np.random.default_rng(7)
    box = rng.uniform(0, 100, (7, 7)).astype(np.float32)
    res = integrate_one(box, g=1.0)
    cls = ring_classes(1, 2, 3, 3)
    vals = box.T.astype(np.float64)  # [p, q] order
    ct = cls.T
    acc = 0.0
    for v in vals[ct == BACKGROUND]:
        acc += v
    mean = acc / 20
    pk = 0.0
    for v in vals[ct == PEAK]:
        pk += v
    assert res.background[0] == mean
    assert res.I[0] == pk - mean * 5


# -- a whole frame with two crystals ----------------------------------------------------------

FRAME_GEOM = """
clen = 0.08
res = 10000
adu_per_photon = 2
photon_energy = 9000
p0/min_fs = 0
p0/max_fs = 255
p0/min_ss = 0
p0/max_ss = 255
p0/corner_x = -128
p0/corner_y = -128
p0/fs = x
p0/ss = y
p0/max_adu = 60
"""


def synthetic_crystal(seed: int, cell_nm: float = 12.0):
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    recip = q / cell_nm
    return SimpleNamespace(
        astar=recip[0], bstar=recip[1], cstar=recip[2], profile_radius=0.004,
        det_shift_mm=(0.0, 0.0), resolution_limit=None, centering="P", reflections=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_crystal_frame():
    from types import SimpleNamespace

    from streamfilter.geometry import parse_geometry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "max_adu is set": intended here
        det = parse_geometry(FRAME_GEOM)
    rng = np.random.default_rng(11)
    data = rng.poisson(8.0, (256, 256)).astype(np.float32)
    bad = np.zeros((256, 256), bool)
    bad[100:103, 40:200] = True
    frame = SimpleNamespace(data={"p0": data}, bad={"p0": bad}, saturation=None)
    return det, frame, [synthetic_crystal(1), synthetic_crystal(2)]


def test_frame_integration_masks_with_all_crystals(two_crystal_frame):
    from streamfilter.pipeline import integrate_frame
    from streamfilter.predict import predict_reflections

    det, frame, (a, b) = two_crystal_frame
    both = integrate_frame("crystfel", frame, det, [a, b], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)
    alone = integrate_frame("crystfel", frame, det, [a], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)
    ra, ra_alone = both[0], alone[0]
    assert len(ra) > 30 and len(both[1]) > 30
    assert (ra.h == ra_alone.h).all() and (ra.k == ra_alone.k).all()

    # the same numbers by hand: boxes with one overlap map from both crystals' predictions
    pa, pb = (
        predict_reflections(x.astar, x.bstar, x.cstar, 9000.0, det, profile_radius=0.004,
                            bandwidth=1e-8)
        for x in (a, b)
    )  # fmt: skip
    ov = overlap_map((256, 256), np.r_[pa.fs, pb.fs], np.r_[pa.ss, pb.ss], 2.0)
    cf, cs = central_pixels(pa.fs, pa.ss)
    boxes = gather_boxes(frame.data["p0"], frame.bad["p0"], cf, cs, 4, ov)
    manual = integrate_rings(boxes, (2.0, 3.0, 4.0), 2.0, max_adu=60.0)
    np.testing.assert_array_equal(manual.status, ra.status)
    np.testing.assert_array_equal(manual.I, ra.I)
    np.testing.assert_array_equal(manual.sigma, ra.sigma)
    np.testing.assert_array_equal(pa.fs, ra.fs)  # min_fs = 0

    # crystal b's discs change exactly the reflections of a whose boxes they reach
    near_b = np.array(
        [np.any((np.abs(pb.fs - f) < 7) & (np.abs(pb.ss - s) < 7)) for f, s in zip(pa.fs, pa.ss)]
    )
    same = (ra.status == ra_alone.status) & (
        (ra.I == ra_alone.I) | (np.isnan(ra.I) & np.isnan(ra_alone.I))
    )
    assert same[~near_b].all()
    assert not same[near_b].all()


def test_frame_saturation_counts_and_sat_flag(two_crystal_frame):
    from types import SimpleNamespace

    from streamfilter.pipeline import integrate_frame

    det, frame, (a, _) = two_crystal_frame
    res0 = integrate_frame("crystfel", frame, det, [a], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)[0]
    ok = np.flatnonzero(res0.written)[:5]
    data = frame.data["p0"].copy()
    data[res0.ss[ok].astype(int), res0.fs[ok].astype(int)] = 500.0  # above max_adu = 60
    hot = SimpleNamespace(data={"p0": data}, bad=frame.bad, saturation=None)
    drop = integrate_frame("crystfel", hot, det, [a], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)[0]
    assert drop.n_saturated == 5
    assert (drop.status[ok] == Status.SATURATED).all()
    keep = integrate_frame("crystfel",
        hot, det, [a], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8, keep_saturated=True
    )[0]
    assert keep.n_saturated == 5 and keep.written[ok].all()
    assert (keep.peak[ok] == 500.0).all()


# -- the vectorised kernel against plain loops -------------------------------------------------


def test_sequential_sums_are_c_loops_in_double():
    """Column sums add row after row from +0.0, for one column as for many (numpy would
    sum one contiguous column pairwise)."""
    from streamfilter.integrate.rings import _seq_sum

    rng = np.random.default_rng(2)
    for k, n in [(65, 1), (65, 2), (29, 3), (300, 17), (36, 400), (1, 5), (0, 4)]:
        x = rng.normal(0, 1, (k, n)) * 10.0 ** rng.integers(-8, 9, (k, n))
        want = []
        for col in x.T.tolist():
            acc = 0.0
            for v in col:
                acc += v
            want.append(acc)
        got = _seq_sum(x)
        assert got.dtype == np.float64
        assert got.tolist() == want


def rings_by_loops(values, bad, overlap, on, radii, g, max_adu, keep_saturated, reject_bad_peak):
    """One box integrated with CrystFEL's loops (p = fs outer, q = ss inner, doubles)."""
    r1, r2, r3 = (int(r) for r in radii)
    w = r3
    nan4 = (math.nan,) * 4
    if not on.all():
        return (Status.OFF_PANEL, *nan4)
    pk, bg = [], []
    for p in range(2 * w + 1):
        for q in range(2 * w + 1):
            d2 = (p - w) ** 2 + (q - w) ** 2
            if d2 > r3 * r3:
                continue
            is_bg = d2 >= r2 * r2
            is_pk = not is_bg and d2 <= r1 * r1
            if not (is_bg or is_pk):
                continue
            if is_pk and bad[q, p] and reject_bad_peak:
                return (Status.BAD_PEAK_PIXEL, *nan4)
            if bad[q, p] or overlap[q, p] > (1 if is_pk else 0):
                continue
            (pk if is_pk else bg).append(float(values[q, p]))
    if len(pk) < 4 or len(bg) < 4:
        return (Status.TOO_FEW_PIXELS, *nan4)
    s = 0.0
    for v in bg:
        s += v
    mean = s / len(bg)
    s = 0.0
    for v in pk:
        s += v
    intensity = s - mean * len(pk)
    s = 0.0
    for v in bg:
        s += (v - mean) * (v - mean)
    var_p = poisson_variance(np.array([intensity]), g)[0]
    sigma = (
        math.sqrt(var_p + len(pk) * (s / len(bg)))
        if var_p + len(pk) * (s / len(bg)) >= 0
        else math.nan
    )
    peak = max(pk + bg)
    if max(pk + bg) > max_adu and not keep_saturated:
        return (Status.SATURATED, *nan4)
    status = Status.IMPLAUSIBLE if intensity < -5.0 * sigma else Status.OK  # numbers kept
    return (status, intensity, sigma, peak, mean)


@pytest.mark.parametrize(
    "radii", [(1.0, 2.0, 3.0), (3.0, 4.0, 5.0), (2.5, 3.2, 6.9), (3.0, 3.0, 4.0)]
)
def test_integrate_rings_equals_crystfel_loops(radii):
    rng = np.random.default_rng(int(radii[2] * 10))
    shape = (40, 60)
    image = rng.normal(100.0, 30.0, shape).astype(np.float32)
    image[rng.random(shape) < 0.02] = 900.0  # above max_adu
    image[5, 5] = -200.0
    bad = rng.random(shape) < 0.01
    fs = rng.uniform(-3, shape[1] + 3, 120)
    ss = rng.uniform(-3, shape[0] + 3, 120)
    on = (fs >= 0) & (fs < shape[1]) & (ss >= 0) & (ss < shape[0])
    fs, ss = fs[on], ss[on]
    ov = overlap_map(shape, fs, ss, radii[0])
    cf, cs = central_pixels(fs, ss)
    boxes = gather_boxes(image, bad, cf, cs, int(radii[2]), ov)
    for keep_sat, reject in [(False, True), (True, False)]:
        res = integrate_rings(
            boxes, radii, 2.0, max_adu=800.0, keep_saturated=keep_sat, reject_bad_peak=reject
        )
        assert {Status.OK, Status.OFF_PANEL} <= set(res.status.tolist())
        for i in range(len(boxes)):
            want = rings_by_loops(
                boxes.values[i], boxes.bad[i], boxes.overlap[i], boxes.on_panel[i], radii, 2.0,
                800.0, keep_sat, reject,
            )  # fmt: skip
            got = (res.status[i], res.I[i], res.sigma[i], res.peak[i], res.background[i])
            assert got[0] == want[0]
            np.testing.assert_array_equal(np.array(got[1:]), np.array(want[1:]))


def test_windows_on_and_off_the_panel():
    """Windows wholly on the panel (gathered without clipping) and windows sticking out."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 1000, (30, 50)).astype(np.int32)
    for cf, cs in [([10, 25, 44], [5, 20, 24]), ([2, 25, 48], [1, 29, 12])]:
        cf, cs = np.array(cf), np.array(cs)
        win, on = gather_window(image, cf, cs, 5, fill=-1)
        assert win.dtype == image.dtype
        padded = np.pad(image, 5, constant_values=-1)
        for i in range(len(cf)):
            np.testing.assert_array_equal(win[i], padded[cs[i] : cs[i] + 11, cf[i] : cf[i] + 11])
            np.testing.assert_array_equal(on[i], win[i] != -1)


def test_overlap_map_equals_crystfel_disc_loop():
    rng = np.random.default_rng(5)
    shape = (30, 40)
    fs = np.r_[rng.uniform(0, 40, 60), [0.3, 39.9, 0.99999999]]
    ss = np.r_[rng.uniform(0, 30, 60), [0.2, 29.7, 15.0]]
    for r1 in (1.0, 2.5, 3.0, 4.2):
        want = np.zeros(shape, np.int16)
        ir = int(r1)
        for f, s in zip(fs, ss):
            for dss in range(-ir, ir + 1):
                for dfs in range(-ir, ir + 1):
                    if dfs * dfs + dss * dss > r1 * r1:
                        continue
                    pf, ps = int(f + dfs), int(s + dss)  # C's (int) truncation
                    if 0 <= pf < shape[1] and 0 <= ps < shape[0]:
                        want[ps, pf] += 1
        np.testing.assert_array_equal(overlap_map(shape, fs, ss, r1), want)


def test_frame_without_crystals_and_frame_arrays_off_the_geometry(two_crystal_frame):
    """No crystal: nothing to do.  Arrays whose shape disagrees with the geometry go through
    gather_boxes panel by panel and give the same numbers where the boxes agree."""
    from types import SimpleNamespace

    from streamfilter.pipeline import integrate_frame

    det, frame, (a, b) = two_crystal_frame
    assert integrate_frame("crystfel", frame, det, [], 9000.0, (2.0, 3.0, 4.0)) == []
    tall = SimpleNamespace(
        data=frame.data, bad={"p0": np.vstack([frame.bad["p0"], np.ones((3, 256), bool)])},
        saturation=None,
    )  # fmt: skip
    want = integrate_frame("crystfel", frame, det, [a, b], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)
    got = integrate_frame("crystfel", tall, det, [a, b], 9000.0, (2.0, 3.0, 4.0), bandwidth=1e-8)
    for x, y in zip(got, want, strict=True):
        assert len(x) > 30
        np.testing.assert_array_equal(x.status, y.status)
        np.testing.assert_array_equal(x.I, y.I)
        np.testing.assert_array_equal(x.sigma, y.sigma)
