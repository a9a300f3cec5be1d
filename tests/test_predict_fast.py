"""The prediction's shortcuts against the plain computation.

The geometry is computed once per detector and frame header values; rays that miss every
panel are left out of the exact solve (``_Geometry.may_hit``), which must never drop a ray
that lands on a panel, nor change a predicted position by a bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamfilter.geometry import parse_geometry
from streamfilter.predict import crystfel as predict
from streamfilter.predict import predict_reflections
from tests.test_predict import TILTED, random_lattice

HEADER_CLEN = TILTED.replace("clen = 0.1", "clen = /entry/clen mm")


def test_geometry_is_built_once_per_run_and_header_values():
    from streamfilter.pipeline import FrameIntegrator, Integration

    det = parse_geometry(HEADER_CLEN)
    run = FrameIntegrator(det, Integration("crystfel"))
    a = run.geometry({"/entry/clen": 100.0})
    assert run.geometry({"/entry/clen": 100.0}) is a
    b = run.geometry({"/entry/clen": 120.0})
    assert b is not a and b.panels[0].cnz > a.panels[0].cnz
    assert not a.columns.flags.writeable  # shared by every crystal


@pytest.mark.parametrize("shift_mm", [(0.0, 0.0), (0.7, -1.3), (-25.0, 40.0)])
def test_may_hit_keeps_every_ray_that_lands(shift_mm):
    """Rays aimed all over and around both (tilted) panels, many within a pixel of an edge:
    every ray _locate puts on a panel passes the pre-filter, and most others do not."""
    det = parse_geometry(TILTED)
    geometry = predict.prediction_geometry(det, None)
    rng = np.random.default_rng(8)
    shift_m = (shift_mm[0] * 1e-3, shift_mm[1] * 1e-3)
    rays = []
    for p, g in enumerate(geometry.panels):
        n = 4000
        fs = np.r_[rng.uniform(-20, g.w + 20, n), rng.choice([0.0, g.w, -1e-9, g.w - 1e-9], n)]
        ss = np.r_[rng.uniform(-20, g.h + 20, n), rng.uniform(0, g.h, n)]
        mats = geometry.locate_matrices(shift_m)[p]
        # a point of the panel plane, seen from the sample at a random distance along the ray
        point = mats @ np.stack([np.ones(fs.size), fs, ss])
        rays.append(point * rng.uniform(0.5, 2.0, fs.size))
    x, y, zk = np.concatenate(rays, axis=1) * 1e8  # any scale: rays are directions
    with np.errstate(divide="ignore", invalid="ignore"):
        panel, _, _ = predict._locate(x, y, zk, geometry, shift_m)
        near = geometry.may_hit(x, y, zk, shift_m)
    assert (panel >= 0).sum() > 4000
    assert near[panel >= 0].all()
    assert (~near).sum() > 1000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_prediction_is_the_same_without_the_pre_filter(seed, monkeypatch):
    det = parse_geometry(TILTED)
    lat = random_lattice(seed)
    kw = dict(profile_radius=0.01, bandwidth=0.002, det_shift_mm=(0.4, -0.9))
    fast = predict_reflections(lat.astar, lat.bstar, lat.cstar, 9000.0, det, **kw)
    everything = lambda self, x, *a: np.ones(x.shape[0], bool)  # noqa: E731
    monkeypatch.setattr(predict.PredictionGeometry, "may_hit", everything)
    plain = predict_reflections(lat.astar, lat.bstar, lat.cstar, 9000.0, det, **kw)
    assert len(fast) > 50
    for name in ("h", "k", "l", "panel", "fs", "ss", "one_over_d", "partiality", "kpred"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name), name)
