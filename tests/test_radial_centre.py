"""The radial background near the beam: rings without usable pixels are not extrapolated to,
and a reflection there is flagged (BACKGROUND_UNDETERMINED) instead of written with a huge
sigma."""

from __future__ import annotations

import re

import numpy as np
import pytest

from streamfilter.integrate import Status
from streamfilter.integrate.background import PolarGrid, fit_radial_background


def centred_panel(size: int = 160) -> PolarGrid:
    """One square panel with the beam on it (lab 0, 0 at pixel (80.3, 79.7))."""
    ss, fs = np.mgrid[0:size, 0:size] + 0.5
    x, y = fs - size / 2 - 0.3, ss - size / 2 + 0.3
    return PolarGrid(rho={"p": np.hypot(x, y)}, phi={"p": np.arctan2(y, x)})


def test_rings_without_usable_pixels_near_the_beam_have_no_model():
    rng = np.random.default_rng(11)
    grid = centred_panel()
    rho, phi = grid.rho["p"], grid.phi["p"]
    truth = 20.0 + 30.0 * np.exp(-rho / 25.0) + 2.0 * np.cos(phi)
    counts = rng.poisson(truth).astype(float)
    # a found peak on the beam and reflections around it: nothing usable inside rho = 7
    usable = rho >= 7.0
    fit = fit_radial_background({"p": counts}, {"p": usable}, grid, {"p": 1.0})
    model, pixel_var, model_var = fit.evaluate("p", rho, phi)
    # before: rings 0-6 got a quadratic extrapolated from outside (c0 < 0 at rho = 0) and
    # a model variance of 1e9 pixel variances from their empty normal matrix
    assert not fit.fitted[:7].any() and fit.fitted[7:60].all()
    assert np.isnan(model[rho < 6.5]).all()
    seen = np.isfinite(model)
    assert np.all(model_var[seen] < pixel_var[seen])  # the model beats one pixel everywhere
    near = seen & (rho < 12)
    assert np.abs(model - truth)[near].max() < 5.0


def test_sparse_rings_take_the_model_variance_of_their_neighbours():
    grid = centred_panel()
    rho = grid.rho["p"]
    truth = np.full(rho.shape, 20.0)
    usable = rho >= 5.0
    # ring 30 keeps only 3 pixels: too few to weigh in the smoothing (2 per coefficient)
    ring30 = np.flatnonzero((np.floor(rho) == 30).ravel())
    usable.ravel()[ring30[3:]] = False
    fit = fit_radial_background({"p": truth}, {"p": usable}, grid, {"p": 1.0})
    assert fit.fitted[30]
    q = fit.q_cell
    assert q[30].max() <= max(q[29].max(), q[31].max()) + 1e-12
    assert q[30].max() < 0.1  # before: its own 3-pixel fit, ridge-limited, ~ 28


# ------------------------------------------------------------------------------------------
# A frame with the beam on a panel and a found peak on the beam
# ------------------------------------------------------------------------------------------

SHIFT = 40.0  # px of panel p1 below the beam


@pytest.fixture(scope="module")
def beam_in_view(tmp_path_factory):
    """A synthetic set whose panel p1 holds the beam, 40 px above its lower edge (p0 below
    it); frame 3 has reflections 5.6 px from the beam."""
    import streamfilter.synth.layouts as layouts
    from streamfilter.synth import SynthConfig, generate
    from streamfilter.synth.config import geometry_text

    def geometry(config):
        text = geometry_text(config)
        h = config.panel_height
        text = re.sub(r"p1/corner_y = \S+", f"p1/corner_y = {-SHIFT - 0.3:.1f}", text)
        return re.sub(r"p0/corner_y = \S+", f"p0/corner_y = {-SHIFT - 12.3 - h:.1f}", text)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layouts, "geometry_text", geometry)
        return generate(tmp_path_factory.mktemp("beam"), SynthConfig(seed=5, n_frames=4))


def _integrate(data_set, method: str) -> list[tuple[np.ndarray, ...]]:
    """(I, sigma, status, rho) of every reflection, with an extra found peak on the beam."""
    from streamfilter.integrate import FoundPeaks
    from streamfilter.pipeline import FrameIntegrator, Integration, config_for
    from streamfilter.stream import read_stream

    out = []
    with read_stream(data_set.stream_path) as reader:
        config = config_for(reader.header, str(data_set.stream_path))
        source = config.frame_source()
        run = FrameIntegrator(source.detector, Integration(method, config.int_radius))
        for chunk in reader:
            if not chunk.crystals:
                continue
            frame = source.load(chunk.filename, chunk.event)
            energy = chunk.photon_energy_eV
            pred = run.predict(frame, chunk.crystals, energy, chunk.beam_bandwidth)
            p1 = run.layout.panels[1]
            pk = chunk.peaks
            peaks = FoundPeaks(
                np.append(pk.fs, -p1.corner_x + p1.min_fs),
                np.append(pk.ss, SHIFT + 0.3 + p1.min_ss),
                np.append(np.asarray(pk.panel).astype(str), p1.name),
            )
            grid = run.layout.polar_grid(getattr(frame, "header", None))
            for r in run.integrate(frame, pred, energy, peaks):
                rho = np.array([
                    grid.rho[name][int(ss) - run.layout.panels[int(name[1])].min_ss, int(fs)]
                    for name, fs, ss in zip(r.panel, r.fs, r.ss, strict=True)
                ])  # fmt: skip
                out.append((r.I, r.sigma, r.status, rho))
    return [np.concatenate(c) for c in zip(*out, strict=True)]


@pytest.mark.parametrize("method", ["robust", "profile"])
def test_no_absurd_sigma_with_the_beam_in_view(beam_in_view, method):
    intensity, sigma, status, rho = _integrate(beam_in_view, method)
    ok = status == Status.OK
    assert ok.sum() > 300
    # before: the two reflections at rho = 5.6 were written with sigma ~ 2e5 (background
    # model extrapolated into rings the found peak on the beam had emptied)
    near = rho < 8
    assert near.any()
    assert np.all((status[near] == Status.OK) | (status[near] == Status.BACKGROUND_UNDETERMINED))
    assert (status[near] == Status.BACKGROUND_UNDETERMINED).any()
    # no written row has a sigma far above that of rows of similar intensity
    i_ok, s_ok = intensity[ok], sigma[ok]
    edges = np.quantile(i_ok, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(edges[1:-1], i_ok, side="right"), 0, 9)
    for b in range(10):
        sel = which == b
        assert s_ok[sel].max() < 10 * np.median(s_ok[sel])
