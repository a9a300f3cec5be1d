"""The shortcuts of the whole-frame crystfel path against the plain definitions.

``disc_index`` (disc pixels of every prediction in one flat index space, most of them
without a float -> int cast per pixel) against CrystFEL's per-pixel truncation, on positions
chosen to break it: next to integers, next to panel edges, off the panel, on panels of
different widths.  ``_integrate_flat`` (all panels at once, one gather for peak and
background pixels) against ``integrate_rings`` panel by panel, with bad pixels, max_adu, a
saturation map and ``-grad``.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from streamfilter.geometry import parse_geometry
from streamfilter.integrate import layout, rings
from streamfilter.integrate.boxes import central_pixels, disc_cover, overlap_map
from streamfilter.integrate.layout import DetectorLayout
from streamfilter.integrate.model import CrystalPredictions, Status


def two_panels(width_a: int, width_b: int, max_adu: float | None = None) -> str:
    sat = f"max_adu = {max_adu}\n" if max_adu is not None else ""
    return (
        f"clen = 0.08\nres = 10000\nadu_per_photon = 2\nphoton_energy = 9000\n{sat}"
        f"a/min_fs = 0\na/max_fs = {width_a - 1}\na/min_ss = 0\na/max_ss = 99\n"
        "a/corner_x = -100\na/corner_y = -110\na/fs = x\na/ss = y\n"
        f"b/min_fs = 0\nb/max_fs = {width_b - 1}\nb/min_ss = 100\nb/max_ss = 179\n"
        "b/corner_x = -100\nb/corner_y = 10\nb/fs = x\nb/ss = y\n"
    )


def frame_pixels(det, seed: int = 0, saturation: bool = False):
    rng = np.random.default_rng(seed)
    data, bad, sat = {}, {}, {}
    for p in det.panels:
        data[p.name] = rng.poisson(10.0, (p.height, p.width)).astype(np.float32)
        bad[p.name] = rng.random((p.height, p.width)) < 0.02
        sat[p.name] = np.full((p.height, p.width), 17.0, np.float32)
    frame = SimpleNamespace(data=data, bad=bad, saturation=sat if saturation else None)
    return frame, DetectorLayout(det).frame_pixels(frame, 9000.0)


def tricky_positions(rng, n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions uniform over (and a little beyond) the panel, plus integers, the doubles
    just below and above them, and positions next to the edges."""
    ints = rng.integers(0, max(width, height), n).astype(np.float64)
    pick = [
        rng.uniform(-3, width + 3, n),
        ints, np.nextafter(ints, -np.inf), np.nextafter(ints, np.inf),
        ints + (1 - 2.0**-21), ints + (1 - 2.0**-40),
        rng.choice([0.0, 0.5, 2.999999, 3.0, width - 3.5, width - 4.0, width - 0.1], n),
    ]  # fmt: skip
    fs = np.concatenate(pick)
    ss = np.concatenate([rng.permutation(p) * (height / width) for p in pick])
    ss = np.where(rng.random(ss.size) < 0.3, np.nextafter(np.floor(ss) + 1, -np.inf), ss)
    return fs, ss


def reference_disc_index(fp, panel, fs, ss, r1):
    """The definition: every disc pixel cast as C does, checked against its panel."""
    pf, ps = disc_cover(fs, ss, r1)
    w, h = fp.width[panel][:, None], fp.height[panel][:, None]
    on = (pf >= 0) & (pf < w) & (ps >= 0) & (ps < h)
    return np.where(on, fp.offset[panel][:, None] + ps * w + pf, fp.size)


@pytest.mark.parametrize("widths", [(120, 120), (120, 90)])
@pytest.mark.parametrize("r1", [1.0, 2.5, 3.0, 4.2])
def test_disc_index_equals_crystfel_truncation(widths, r1):
    det = parse_geometry(two_panels(*widths))
    _, fp = frame_pixels(det)
    rng = np.random.default_rng(int(r1 * 10) + widths[1])
    fs_a, ss_a = tricky_positions(rng, 200, widths[0], 100)
    fs_b, ss_b = tricky_positions(rng, 200, widths[1], 80)
    fs, ss = np.r_[fs_a, fs_b], np.r_[ss_a, ss_b]
    panel = np.r_[np.zeros(fs_a.size, np.int64), np.ones(fs_b.size, np.int64)]
    got = layout.disc_index(fp, panel, fs, ss, r1)
    np.testing.assert_array_equal(got, reference_disc_index(fp, panel, fs, ss, r1))
    # and the counts are overlap_map's, panel by panel (the sink slot aside)
    counts = layout.overlap_counts(
        fp, [SimpleNamespace(panel=panel, fs=fs, ss=ss)], r1
    )  # fmt: skip
    for i, p in enumerate(det.panels):
        sel = panel == i
        want = overlap_map((p.height, p.width), fs[sel], ss[sel], r1)
        start = fp.offset[i]
        np.testing.assert_array_equal(counts[start : start + want.size], want.ravel())


def predictions(det, rng, n: int):
    """Random predictions on both panels (panel-relative), boxes on and off the panels."""
    out = []
    for i, p in enumerate(det.panels):
        out.append(
            (np.full(n, i), rng.uniform(-2, p.width + 2, n), rng.uniform(-2, p.height + 2, n))
        )
    panel, fs, ss = (np.concatenate(a) for a in zip(*out))
    return CrystalPredictions(
        np.arange(panel.size, dtype=np.int32), np.zeros(panel.size, np.int32),
        np.zeros(panel.size, np.int32), panel, fs, ss,
    )  # fmt: skip


@pytest.mark.parametrize(
    "widths, max_adu, saturation, gradient, keep_saturated",
    [
        ((120, 120), None, False, False, False),
        ((120, 90), None, False, False, False),
        ((120, 120), 22.0, False, False, False),
        ((120, 120), 22.0, True, True, True),
        ((120, 90), None, True, True, False),
    ],
)
def test_flat_path_equals_panel_by_panel(widths, max_adu, saturation, gradient, keep_saturated):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "max_adu is set"
        det = parse_geometry(two_panels(*widths, max_adu))
    frame, fp = frame_pixels(det, seed=3, saturation=saturation)
    pred = predictions(det, np.random.default_rng(7), 150)
    radii = (2.5, 4.0, 6.0)
    panels = list(det.panels)
    flat = rings._integrate_flat(
        pred, fp, layout.overlap_counts(fp, [pred], radii[0]), radii, gradient, keep_saturated,
        True,
    )  # fmt: skip
    maps = layout.overlap_maps(panels, [pred], radii[0])
    by_panel = rings._integrate_panels(
        pred, frame, panels, maps, 9000.0, radii, gradient, keep_saturated, True
    )
    written = flat.status == 0
    assert written.sum() > 40 and (flat.status != 0).sum() > 20
    if max_adu is not None or saturation:
        assert (flat.status == Status.SATURATED).any() or flat.saturated.any()
    for name in ("status", "saturated", "I", "sigma", "peak", "background"):
        np.testing.assert_array_equal(getattr(flat, name), getattr(by_panel, name), name)
    ok = flat.status != Status.OFF_PANEL
    np.testing.assert_array_equal(flat.n_peak[ok], by_panel.n_peak[ok])
    np.testing.assert_array_equal(flat.n_background[ok], by_panel.n_background[ok])


def test_frame_layout_is_shared_but_gains_follow_the_energy():
    det = parse_geometry(two_panels(120, 90).replace("adu_per_photon = 2", "adu_per_eV = 0.001"))
    frame, _ = frame_pixels(det)
    run = DetectorLayout(det)
    a = run.frame_pixels(frame, 9000.0)
    b = run.frame_pixels(frame, 12000.0)
    assert a.offset is b.offset and a.width is b.width  # one layout per run
    np.testing.assert_array_equal(a.gain, [9.0, 9.0])
    np.testing.assert_array_equal(b.gain, [12.0, 12.0])
    assert a.size == 120 * 100 + 90 * 80 and not a.offset.flags.writeable
    # the frame source's flat read of panels stacked along ss is used without a copy; the
    # panels of a frame without one are joined
    whole = np.arange(180 * 120, dtype=np.float32).reshape(180, 120)
    same = parse_geometry(two_panels(120, 120))
    panels = {"a": whole[:100], "b": whole[100:]}
    stacked = SimpleNamespace(data=panels, bad={"a": None, "b": None}, saturation=None,
                              flat_data=whole.reshape(-1))  # fmt: skip
    fp = DetectorLayout(same).frame_pixels(stacked, 9000.0)
    assert np.shares_memory(fp.image, whole) and fp.image.size == whole.size
    apart = SimpleNamespace(data=panels, bad=stacked.bad, saturation=None)
    np.testing.assert_array_equal(DetectorLayout(same).frame_pixels(apart, 9000.0).image,
                                  whole.reshape(-1))  # fmt: skip
    assert math.isinf(fp.max_adu[0])
    assert central_pixels(np.array([2.9]), np.array([0.1]))[0][0] == 2
