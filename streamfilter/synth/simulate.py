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
from .canvas import Canvas
from .chunks import chunk_text
from .config import RNG_FRAME, RNG_HEADER, SynthConfig
from .layouts import Layout
from .physics import (
    add_spots,
    background_coeffs,
    background_image,
    lookup_intensity,
    make_crystal,
)


@dataclass
class FrameResult:
    counts: np.ndarray  # stored pixel values (ADU), canvas layout
    bragg: np.ndarray
    bg_coeffs: np.ndarray
    crystals: list
    preds: list  # per crystal: (Predictions, I_full, true_I)
    chunk: bytes
    info: FrameInfo


@dataclass
class Scene:
    """What every frame of a data set shares: the layout, its parsed geometry and canvas,
    the background basis maps, the intensity table and the bad pixels (canvas bool maps;
    ``bad_panels`` per panel name); built by :func:`~.dataset.make_scene`."""

    config: SynthConfig
    layout: Layout
    detector: Detector
    canvas: Canvas
    components: dict[str, np.ndarray]
    table: np.ndarray
    dead: np.ndarray
    hot: np.ndarray
    bad_panels: dict[str, np.ndarray]
    q_max: float = 0.0  # 1/d (A^-1) of the intensity table's edge


@dataclass
class FrameInfo:
    """One frame's file name and event (as the stream names them), its photon energy (eV),
    average camera length (m, clen + coffset), HDF5 header values (``{path: value}``, for
    per-event geometries) and gain (ADU per photon)."""

    filename: str
    event: str
    photon_energy_eV: float
    clen_m: float
    header: dict[str, float]
    gain: float
    energy_path: str | None = None  # the header path of the photon energy, if any


def frame_info(i: int, scene: Scene) -> FrameInfo:
    """File name, event, beam and gain of frame ``i``; per-event header values (CSPAD:
    camera-length encoder -473.5 +- 0.5 mm, photon energy +- 10 eV) come from their own
    random stream, so the other draws do not depend on the layout."""
    config, layout, det = scene.config, scene.layout, scene.detector
    if layout.name == "two-panel":
        return FrameInfo(f"{config.name}.h5", f"//{i}", config.photon_energy_eV,
                         config.clen_m, {}, config.adu_per_photon)
    header: dict[str, float] = {}
    if layout.header_paths:
        rng = np.random.default_rng([config.seed, RNG_HEADER, i])
        header[layout.header_paths["clen"]] = round(-473.5 + rng.uniform(-0.5, 0.5), 3)
        header[layout.header_paths["photon_energy"]] = round(
            config.photon_energy_eV + rng.uniform(-10.0, 10.0), 2)
    energy = (det.photon_energy_eV(header) if det.photon_energy is not None
              else config.photon_energy_eV)
    clens = [det.clen_m(header) + p.coffset for p in det.panels]
    p0 = det.panels[0]
    gain = (p0.adu_per_eV * energy if p0.adu_per_eV is not None
            else (p0.adu_per_photon if p0.adu_per_photon is not None else 1.0))
    filename, event = {
        "hdf5": (f"{config.name}.h5", f"//{i}"),
        "cxi": (f"{config.name}.cxi", f"//{i}"),
        "eiger": (f"{config.name}_master.h5", f"//{i}"),
        "cbf": (f"cbf/{config.name}_{i + 1:05d}.cbf", "//"),
    }[layout.file_format]
    return FrameInfo(filename, event, energy, float(np.mean(clens)), header, float(gain),
                     layout.header_paths.get("photon_energy"))


def _spots(scene: Scene, info: FrameInfo, rng: np.random.Generator) -> tuple:
    """The frame's crystals, their predictions and the noise-free Bragg canvas (photons)."""
    config, detector = scene.config, scene.detector
    u = rng.random()
    n_xtal = (
        0
        if u >= config.hit_fraction
        else (2 if u < config.hit_fraction * config.multi_crystal_fraction else 1)
    )
    bragg = np.zeros(scene.canvas.shape, dtype=np.float64)
    crystals, preds = [], []
    for _ in range(n_xtal):
        xtal = make_crystal(config, rng)
        pr = predict_reflections(
            xtal.astar,
            xtal.bstar,
            xtal.cstar,
            info.photon_energy_eV,
            detector,
            profile_radius=xtal.profile_radius,
            bandwidth=config.bandwidth,
            centering="P",
            header_values=info.header or None,
        )
        i_full = lookup_intensity(scene.table, pr.h, pr.k, pr.l)
        expected = xtal.scale * i_full * np.clip(pr.partiality, 0.0, 1.0)
        true_i = np.zeros(len(pr))
        for pn, p in enumerate(detector.panels):
            sel = pr.panel == pn
            if sel.any():
                view = bragg[scene.canvas.window(p)]
                true_i[sel] = add_spots(
                    view, pr.fs[sel], pr.ss[sel], expected[sel], xtal.spot_sigma_px
                )
        crystals.append(xtal)
        preds.append((pr, i_full, true_i))
    return crystals, preds, bragg


def simulate_frame(i: int, scene: Scene) -> FrameResult:
    """Frame ``i``: spots, background, noise, bad pixels, its rings integration and chunk."""
    config, detector = scene.config, scene.detector
    info = frame_info(i, scene)
    rng = np.random.default_rng([config.seed, RNG_FRAME, i])
    crystals, preds, bragg = _spots(scene, info, rng)
    bragg32 = bragg.astype(np.float32)
    coeffs = background_coeffs(config, rng)
    bg32 = background_image(scene.components, coeffs)
    photons = rng.poisson(bragg32.astype(np.float64) + bg32.astype(np.float64))
    gain = info.gain
    if float(gain).is_integer():
        counts = (photons * int(gain)).astype(np.int32)
    else:
        counts = (photons * gain).astype(np.float32)
    counts[scene.dead] = 0
    counts[scene.hot] = rng.integers(20000, 65001, size=int(scene.hot.sum()))

    frame = Frame(
        filename=info.filename,
        event=info.event,
        path=Path(),
        data={p.name: counts[scene.canvas.window(p)].astype(np.float32)
              for p in detector.panels},
        bad=scene.bad_panels,
        saturation=None,
        header=dict(info.header),
    )
    from ..pipeline.frame import integrate_frame

    results = integrate_frame(
        "crystfel",
        frame,
        detector,
        crystals,
        info.photon_energy_eV,
        config.int_radius,
        bandwidth=config.bandwidth,
        use_stream_rows=False,
    )
    peaks, per_xtal_peaks = _peak_list(scene, counts, bg32, preds, gain, rng)
    chunk = chunk_text(i, config, info, crystals, results, peaks, per_xtal_peaks)
    return FrameResult(counts, bragg32, coeffs, crystals, preds, chunk, info)


def _peak_list(
    scene: Scene,
    counts: np.ndarray,
    bg: np.ndarray,
    preds: list,
    gain: float,
    rng: np.random.Generator,
) -> tuple[PeakTable, list[np.ndarray]]:
    """The strong spots as a peak-search list (data-array coordinates, ADU).

    Positions are the true centres plus Gaussian noise of 0.1 px; intensities are the noisy
    counts in a 7x7 window minus the true background there.  Also returns the 1/d (nm^-1) of
    each crystal's peaks, for its resolution estimate.
    """
    config, detector, bad_panels = scene.config, scene.detector, scene.bad_panels
    rows, per_xtal = [], []
    for pr, _i_full, true_i in preds:
        mine = []
        for pn, p in enumerate(detector.panels):
            sel = np.flatnonzero(pr.panel == pn)
            if sel.size == 0:
                continue
            view = scene.canvas.window(p)
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
        names[pn[order].astype(int)] if order.size else np.zeros(0, names.dtype),
    ), per_xtal
