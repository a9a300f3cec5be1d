"""Writing a whole simulated data set: :func:`generate`."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import StreamfilterError
from ..geometry import GeometryWarning, parse_geometry
from ..stream.writer import atomic_output
from .canvas import make_canvas
from .chunks import header_text
from .config import SynthConfig, cell_text
from .files import write_truth
from .layouts import Layout, eiger_gaps, make_layout
from .physics import (
    BACKGROUND_COLUMNS,
    asu_list,
    background_components,
    bad_pixels,
    intensity_table,
    layout_bad_pixels,
    layout_components,
    layout_max_one_over_d_invA,
    max_one_over_d_invA,
)
from .simulate import Scene, frame_info, simulate_frame
from .truth import Truth, TruthCrystals, TruthReflections, collect_truth, stack_truth
from .writers import FrameFiles


@dataclass
class SynthDataset:
    """What :func:`generate` wrote, and the truth (also saved in ``truth_path``).

    ``h5_path`` is the first frame file (the HDF5 file, the EIGER master or the first CBF
    file), ``frame_paths`` every frame file (data and mask files included)."""

    directory: Path
    stream_path: Path
    h5_path: Path
    geometry_path: Path
    cell_path: Path
    truth_path: Path
    config: SynthConfig
    truth: Truth = field(repr=False)
    frame_paths: list[Path] = field(default_factory=list)


def generate(directory: str | Path, config: SynthConfig | None = None) -> SynthDataset:
    """Simulate a data set and write it into ``directory`` (created if needed).

    Writes ``<name>.stream``, the frames (``<name>.h5`` for the two-panel layout; see
    :mod:`.layouts` for the others), ``<name>.geom``, ``<name>.cell`` and
    ``<name>_truth.h5`` (existing files of those names are replaced).  The stream names its
    frames by paths relative to ``directory``, so resolve them from there.

    Parameters
    ----------
    directory : path-like
    config : SynthConfig, optional
        Defaults to ``SynthConfig()`` (seed 0, 20 frames, the two-panel layout).

    Returns
    -------
    SynthDataset
        Paths of the files and the :class:`Truth`.
    """
    config = config or SynthConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scene = make_scene(config)
    paths = {
        k: directory / f"{config.name}{ext}"
        for k, ext in (("stream", ".stream"), ("geom", ".geom"), ("cell", ".cell"),
                       ("truth", "_truth.h5"))
    }
    paths["geom"].write_text(scene.layout.geometry)
    paths["cell"].write_text(cell_text(config))
    intensities = asu_list(scene.table, config, scene.q_max)
    truth, frame_files = _write_frames(directory, paths, scene, intensities)
    write_truth(paths["truth"], truth)
    return SynthDataset(directory, paths["stream"], frame_files[0], paths["geom"],
                        paths["cell"], paths["truth"], config, truth, frame_files)


def make_scene(config: SynthConfig) -> Scene:
    """Parse the layout's geometry and prepare what every frame shares."""
    geometry = None
    if config.layout == "geometry":
        try:
            geometry = Path(str(config.geometry_file)).read_text()
        except OSError as e:
            raise StreamfilterError(f"{config.geometry_file}: cannot read: {e}") from e
    layout = make_layout(config, geometry)
    with warnings.catch_warnings():  # max_adu, when asked for, is meant
        warnings.simplefilter("ignore", GeometryWarning)
        detector = parse_geometry(layout.geometry, f"{config.name}.geom")
    canvas = make_canvas(detector)
    if layout.name == "two-panel":
        components = background_components(detector, config, canvas.shape)
        q_max = max_one_over_d_invA(detector, config) * 1.001
        dead, hot = bad_pixels(config, canvas.shape)
    else:
        header = _nominal_header(layout, config)
        components = layout_components(detector, config, canvas, header)
        q_max = layout_max_one_over_d_invA(detector, config, header) * 1.01
        dead, hot = layout_bad_pixels(config, detector, canvas)
        if layout.name == "geometry":  # a user geometry says nothing of masks
            dead[:], hot[:] = False, False
        if layout.name == "eiger16m":
            rows, cols = eiger_gaps(*canvas.shape, config.shrink)
            for s in rows:
                dead[s, :] = True
            for s in cols:
                dead[:, s] = True
            hot &= ~dead
    bad = dead | hot
    bad_panels = {p.name: bad[canvas.window(p)] for p in detector.panels}
    table = intensity_table(config, q_max)
    return Scene(config, layout, detector, canvas, components, table, dead, hot, bad_panels,
                 q_max)


def _nominal_header(layout: Layout, config: SynthConfig) -> dict[str, float]:
    """Per-event header values at the centre of their ranges (for the background maps)."""
    if not layout.header_paths:
        return {}
    return {layout.header_paths["clen"]: -473.5,
            layout.header_paths["photon_energy"]: config.photon_energy_eV}


def _write_frames(
    directory: Path, paths: dict[str, Path], scene: Scene, intensities: dict[str, np.ndarray]
) -> tuple[Truth, list[Path]]:
    """Simulate every frame into the frame files and the stream; returns the truth and the
    frame files written."""
    config, detector, canvas = scene.config, scene.detector, scene.canvas
    n = config.n_frames
    bragg_shape = canvas.shape if config.truth_bragg else (0, 0)
    bragg = np.zeros((n, *bragg_shape), np.float32)
    coeffs = np.zeros((n, len(BACKGROUND_COLUMNS)))
    per_frame = {k: np.zeros(n) for k in ("photon_energy_eV", "clen_m", "adu_per_photon")}
    refl_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthReflections)}
    xtal_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthCrystals)}
    masks = detector.panels[0].masks
    gain = frame_info(0, scene).gain
    files = FrameFiles(directory, config, scene.layout, canvas,
                       masks[0].data if masks else "/entry/data/mask", scene.dead, scene.hot,
                       integer=float(gain).is_integer())
    files.set_covered(canvas.covered(detector))
    with files, atomic_output(paths["stream"]) as stream:
        stream.write(header_text(config, scene.layout.geometry))
        for i in range(n):
            fr = simulate_frame(i, scene)
            files.write(i, fr.counts, fr.info)
            if config.truth_bragg:
                bragg[i] = fr.bragg
            coeffs[i] = fr.bg_coeffs
            for key in per_frame:
                per_frame[key][i] = {"photon_energy_eV": fr.info.photon_energy_eV,
                                     "clen_m": fr.info.clen_m,
                                     "adu_per_photon": fr.info.gain}[key]
            stream.write(fr.chunk)
            for c, (xtal, (pr, i_full, true_i)) in enumerate(
                zip(fr.crystals, fr.preds, strict=True)
            ):
                collect_truth(refl_cols, xtal_cols, i, c, xtal, pr, i_full, true_i, detector)
    truth = Truth(
        config=config,
        bragg=bragg,
        background_components=scene.components,
        background_coeffs=coeffs,
        dead=scene.dead,
        hot=scene.hot,
        reflections=TruthReflections(**stack_truth(refl_cols, TruthReflections)),
        crystals=TruthCrystals(**stack_truth(xtal_cols, TruthCrystals)),
        intensities=intensities,
        panel_names=tuple(p.name for p in detector.panels),
        panel_min_fs=tuple(p.min_fs for p in detector.panels),
        panel_max_fs=tuple(p.max_fs for p in detector.panels),
        panel_min_ss=tuple(p.min_ss for p in detector.panels),
        panel_max_ss=tuple(p.max_ss for p in detector.panels),
        adu_per_photon=float(per_frame["adu_per_photon"][0]),
        panel_canvas_ss0=canvas.ss0,
        frames=per_frame,
    )
    return truth, files.paths
