"""One simulated frame: its crystals and spots, background and noise, the CrystFEL-identical
``rings`` integration at the predicted positions, its peak list and its stream chunk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..frames import Frame
from ..geometry import Detector
from ..integrate.boxes import gather_window
from ..predict import predict_reflections
from ..stream import PeakTable
from .chunks import chunk_text
from .config import RNG_FRAME, SynthConfig
from .physics import (
    add_spots,
    background_coeffs,
    background_image,
    lookup_intensity,
    make_crystal,
)


@dataclass
class FrameResult:
    counts: np.ndarray  # stored pixel values (ADU)
    bragg: np.ndarray
    bg_coeffs: np.ndarray
    crystals: list
    preds: list  # per crystal: (Predictions, I_full, true_I)
    chunk: bytes


def simulate_frame(
    i: int,
    config: SynthConfig,
    detector: Detector,
    components: dict[str, np.ndarray],
    table: np.ndarray,
    dead: np.ndarray,
    hot: np.ndarray,
    bad_panels: dict[str, np.ndarray],
) -> FrameResult:
    rng = np.random.default_rng([config.seed, RNG_FRAME, i])
    u = rng.random()
    n_xtal = (
        0
        if u >= config.hit_fraction
        else (2 if u < config.hit_fraction * config.multi_crystal_fraction else 1)
    )
    bragg = np.zeros(dead.shape, dtype=np.float64)
    crystals, preds = [], []
    for _ in range(n_xtal):
        xtal = make_crystal(config, rng)
        pr = predict_reflections(
            xtal.astar,
            xtal.bstar,
            xtal.cstar,
            config.photon_energy_eV,
            detector,
            profile_radius=xtal.profile_radius,
            bandwidth=config.bandwidth,
            centering="P",
        )
        i_full = lookup_intensity(table, pr.h, pr.k, pr.l)
        expected = xtal.scale * i_full * np.clip(pr.partiality, 0.0, 1.0)
        true_i = np.zeros(len(pr))
        for pn, p in enumerate(detector.panels):
            sel = pr.panel == pn
            view = bragg[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1]
            true_i[sel] = add_spots(
                view, pr.fs[sel], pr.ss[sel], expected[sel], xtal.spot_sigma_px
            )
        crystals.append(xtal)
        preds.append((pr, i_full, true_i))
    bragg32 = bragg.astype(np.float32)
    coeffs = background_coeffs(config, rng)
    bg32 = background_image(components, coeffs)
    photons = rng.poisson(bragg32.astype(np.float64) + bg32.astype(np.float64))
    gain = config.adu_per_photon
    if float(gain).is_integer():
        counts = (photons * int(gain)).astype(np.int32)
    else:
        counts = (photons * gain).astype(np.float32)
    counts[dead] = 0
    counts[hot] = rng.integers(20000, 65001, size=int(hot.sum()))

    frame = Frame(
        filename=f"{config.name}.h5",
        event=f"//{i}",
        path=Path(),
        data={
            p.name: counts[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1].astype(np.float32)
            for p in detector.panels
        },
        bad=bad_panels,
        saturation=None,
    )
    from ..pipeline.frame import integrate_frame

    results = integrate_frame(
        "crystfel",
        frame,
        detector,
        crystals,
        config.photon_energy_eV,
        config.int_radius,
        bandwidth=config.bandwidth,
        use_stream_rows=False,
    )
    peaks, per_xtal_peaks = _peak_list(config, detector, counts, bg32, preds, bad_panels, rng)
    chunk = chunk_text(i, config, crystals, results, peaks, per_xtal_peaks)
    return FrameResult(counts, bragg32, coeffs, crystals, preds, chunk)


def _peak_list(
    config: SynthConfig,
    detector: Detector,
    counts: np.ndarray,
    bg: np.ndarray,
    preds: list,
    bad_panels: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> tuple[PeakTable, list[np.ndarray]]:
    """The strong spots as a peak-search list (data-array coordinates, ADU).

    Positions are the true centres plus Gaussian noise of 0.1 px; intensities are the noisy
    counts in a 7x7 window minus the true background there.  Also returns the 1/d (nm^-1) of
    each crystal's peaks, for its resolution estimate.
    """
    rows, per_xtal = [], []
    gain = config.adu_per_photon
    for pr, _i_full, true_i in preds:
        mine = []
        for pn, p in enumerate(detector.panels):
            sel = np.flatnonzero(pr.panel == pn)
            if sel.size == 0:
                continue
            view = (slice(p.min_ss, p.max_ss + 1), slice(p.min_fs, p.max_fs + 1))
            cfs, css = np.floor(pr.fs[sel]).astype(int), np.floor(pr.ss[sel]).astype(int)
            bgw, on = gather_window(bg[view].astype(np.float64), cfs, css, 3)
            badw, _ = gather_window(bad_panels[p.name], cfs, css, 3, True)
            cw, _ = gather_window(counts[view].astype(np.float64), cfs, css, 3)
            local_bg = bgw[:, 3, 3]
            snr = true_i[sel] / np.sqrt(true_i[sel] + 29.0 * local_bg)
            strong = (snr >= config.peak_min_snr) & on.all(axis=(1, 2)) & ~badw.any(axis=(1, 2))
            k = sel[strong]
            noise = rng.normal(0.0, 0.1, size=(k.size, 2))
            net = (cw[strong] - gain * bgw[strong]).sum(axis=(1, 2))
            fs = pr.fs[k] + noise[:, 0] + p.min_fs
            ss = pr.ss[k] + noise[:, 1] + p.min_ss
            inv_d = pr.one_over_d[k] / 1e9
            rows.append((np.full(k.size, pn), fs, ss, inv_d, net))
            mine.append(inv_d)
        per_xtal.append(np.concatenate(mine) if mine else np.zeros(0))
    if rows:
        pn, fs, ss, inv_d, net = (np.concatenate(c) for c in zip(*rows, strict=True))
    else:
        pn, fs, ss, inv_d, net = (np.zeros(0) for _ in range(5))
    order = np.lexsort((fs, ss, pn))
    names = np.array([p.name for p in detector.panels])
    return PeakTable(
        fs[order],
        ss[order],
        inv_d[order],
        net[order],
        names[pn[order].astype(int)] if order.size else np.zeros(0, "U2"),
    ), per_xtal
