"""Writing a whole simulated data set: :func:`generate`."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..geometry import Detector, GeometryWarning, parse_geometry
from ..stream.writer import atomic_output
from .chunks import header_text
from .config import SynthConfig, cell_text, geometry_text
from .files import create_frame_datasets, write_truth
from .physics import (
    BACKGROUND_COLUMNS,
    asu_list,
    background_components,
    bad_pixels,
    intensity_table,
    max_one_over_d_invA,
)
from .simulate import simulate_frame
from .truth import Truth, TruthCrystals, TruthReflections, collect_truth, stack_truth


@dataclass
class SynthDataset:
    """What :func:`generate` wrote, and the truth (also saved in ``truth_path``)."""

    directory: Path
    stream_path: Path
    h5_path: Path
    geometry_path: Path
    cell_path: Path
    truth_path: Path
    config: SynthConfig
    truth: Truth = field(repr=False)


def generate(directory: str | Path, config: SynthConfig | None = None) -> SynthDataset:
    """Simulate a data set and write it into ``directory`` (created if needed).

    Writes ``<name>.stream``, ``<name>.h5``, ``<name>.geom``, ``<name>.cell`` and
    ``<name>_truth.h5`` (existing files of those names are replaced).  The stream names its
    frames by the relative file name ``<name>.h5``, so resolve it from ``directory``.

    Parameters
    ----------
    directory : path-like
    config : SynthConfig, optional
        Defaults to ``SynthConfig()`` (seed 0, 20 frames).

    Returns
    -------
    SynthDataset
        Paths of the files and the :class:`Truth`.
    """
    config = config or SynthConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    geom = geometry_text(config)
    with warnings.catch_warnings():  # max_adu, when asked for, is meant
        warnings.simplefilter("ignore", GeometryWarning)
        detector = parse_geometry(geom, f"{config.name}.geom")
    shape = (2 * config.panel_height, config.panel_width)
    components = background_components(detector, config, shape)
    q_max = max_one_over_d_invA(detector, config) * 1.001
    table = intensity_table(config, q_max)
    dead, hot = bad_pixels(config, shape)

    paths = {
        k: directory / f"{config.name}{ext}"
        for k, ext in (
            ("stream", ".stream"),
            ("h5", ".h5"),
            ("geom", ".geom"),
            ("cell", ".cell"),
            ("truth", "_truth.h5"),
        )
    }
    paths["geom"].write_text(geom)
    paths["cell"].write_text(cell_text(config))
    intensities = asu_list(table, config, q_max)
    truth = _write_frames(paths, config, geom, detector, components, table, intensities,
                          (dead, hot))
    write_truth(paths["truth"], truth)
    return SynthDataset(
        directory,
        paths["stream"],
        paths["h5"],
        paths["geom"],
        paths["cell"],
        paths["truth"],
        config,
        truth,
    )


def _write_frames(
    paths: dict[str, Path],
    config: SynthConfig,
    geom: str,
    detector: Detector,
    components: dict[str, np.ndarray],
    table: np.ndarray,
    intensities: dict[str, np.ndarray],
    defects: tuple[np.ndarray, np.ndarray],
) -> Truth:
    """Simulate every frame into the HDF5 file and the stream; returns the truth.

    ``table`` is the full-intensity grid of :func:`~.physics.intensity_table`,
    ``intensities`` its asymmetric-unit list, ``defects`` the (dead, hot) pixel maps."""
    dead, hot = defects
    shape = dead.shape
    bad = dead | hot
    bad_panels = {
        p.name: bad[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] for p in detector.panels
    }
    n = config.n_frames
    bragg = np.zeros((n, *shape), np.float32)
    coeffs = np.zeros((n, len(BACKGROUND_COLUMNS)))
    refl_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthReflections)}
    xtal_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthCrystals)}
    with h5py.File(paths["h5"], "w") as h5, atomic_output(paths["stream"]) as stream:
        data = create_frame_datasets(h5, config, dead, hot)
        stream.write(header_text(config, geom))
        for i in range(n):
            fr = simulate_frame(i, config, detector, components, table, dead, hot, bad_panels)
            data[i] = fr.counts
            bragg[i], coeffs[i] = fr.bragg, fr.bg_coeffs
            stream.write(fr.chunk)
            for c, (xtal, (pr, i_full, true_i)) in enumerate(
                zip(fr.crystals, fr.preds, strict=True)
            ):
                collect_truth(refl_cols, xtal_cols, i, c, xtal, pr, i_full, true_i, detector)
    return Truth(
        config=config,
        bragg=bragg,
        background_components=components,
        background_coeffs=coeffs,
        dead=dead,
        hot=hot,
        reflections=TruthReflections(**stack_truth(refl_cols, TruthReflections)),
        crystals=TruthCrystals(**stack_truth(xtal_cols, TruthCrystals)),
        intensities=intensities,
        panel_names=tuple(p.name for p in detector.panels),
        panel_min_fs=tuple(p.min_fs for p in detector.panels),
        panel_max_fs=tuple(p.max_fs for p in detector.panels),
        panel_min_ss=tuple(p.min_ss for p in detector.panels),
        panel_max_ss=tuple(p.max_ss for p in detector.panels),
        adu_per_photon=float(config.adu_per_photon),
    )
