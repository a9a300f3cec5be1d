"""A small simulated serial-crystallography data set with known truth.

:func:`generate` writes, from a seed, everything a CrystFEL user would have after
``indexamajig``, plus the answers:

* ``<name>.h5``: a multi-event HDF5 file, ``/entry/data/data`` of shape
  ``(n_frames, 2 * panel_height, panel_width)`` (two panels stacked along ss in **one** array,
  like ``ref-small``), gzip + shuffle or bitshuffle-LZ4 (``hdf5plugin``), and a bad-pixel
  mask ``/entry/data/mask`` (uint8, shared by all frames);
* ``<name>.geom``: the CrystFEL geometry (``dim0 = %``, ``mask0_goodbits``/``badbits``);
* ``<name>.cell``: the target unit cell;
* ``<name>.stream``: a format-2.3 stream in indexamajig's layout whose crystals carry the
  **true** orientations and whose reflection rows are a CrystFEL-identical ``rings``
  integration (:func:`streamfilter.pipeline.integrate_frame`, ``crystfel``) of the noisy
  frames at the predicted positions (:func:`streamfilter.predict.predict_reflections`);
* ``<name>_truth.h5``: the noise-free Bragg image and background of every frame, the true
  intensity of every spot, the crystals and the full intensity list (see :class:`Truth`).

The physics, per frame (all image values in photons until the final gain):

* 0, 1 or 2 crystals of a lysozyme-like tetragonal P cell in uniformly random orientations;
* every reflection predicted on a panel gets a 2-D Gaussian spot (pixel-integrated, standard
  deviation ``spot_sigma_px``) centred on its predicted position, holding
  ``true_I = scale * I_full(hkl) * partiality`` photons, where ``I_full`` follows Wilson
  statistics (``I0 * exp(-B / (2 d^2)) * E``, E unit-exponential, one value per 4/mmm
  equivalence class, P4(3)2(1)2 absences zero) and ``partiality`` is CrystFEL's excitation
  weight (clipped to 1) from the prediction;
* a smooth background: water ring (Gaussian in q = 1/d around ``water_ring_A``), diffuse
  ``exp(-q / 0.12)`` term, linear slopes in lab x and y, and a flat level;
* Poisson noise on ``bragg + background``; dead pixels (a column and a block) read 0, hot
  pixels 20000-65000 ADU; pixel values are photons times ``adu_per_photon``.

Coordinates follow CrystFEL: positions are **data-array** coordinates (fs, ss) with pixel i
spanning [i, i + 1) (centre i + 0.5); arrays are indexed ``[ss, fs]``.  Panel-relative
positions are ``fs - min_fs``, ``ss - min_ss``.

Every random draw comes from ``numpy.random.default_rng([seed, stream_id, frame])``, so frame
i is the same whatever ``n_frames`` is, and the same seed gives the same stream bytes.

Run ``python -m streamfilter.synth DIR --seed 1 --name example`` to write a data set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

import h5py
import hdf5plugin
import numpy as np

from . import __version__
from .errors import StreamfilterError
from .frames import Frame
from .geometry import Detector, GeometryWarning, parse_geometry
from .integrate.boxes import gather_window
from .predict import photon_energy_to_wavelength, predict_reflections
from .stream import PeakTable, ReflectionTable, format_peaks, format_reflections
from .stream.tables import PEAK_HEADER_23, REFLECTION_HEADER_23
from .stream.writer import atomic_output

__all__ = [
    "SynthConfig",
    "SynthDataset",
    "Truth",
    "TruthReflections",
    "TruthCrystals",
    "generate",
    "load_truth",
    "geometry_text",
]

DATA_PATH = "/entry/data/data"
MASK_PATH = "/entry/data/mask"
#: Mask bits: every working pixel has MASK_GOOD set (``mask0_goodbits``); hot pixels also
#: have MASK_BAD (``mask0_badbits``); dead pixels have neither.
MASK_GOOD = 0x4
MASK_BAD = 0x1
PANEL_NAMES = ("p0", "p1")
# Sub-stream ids of the random generators: default_rng([seed, id, frame]).
_RNG_FRAME, _RNG_DETECTOR, _RNG_INTENSITIES = 1, 2, 3


@dataclass
class SynthConfig:
    """Parameters of a simulated data set.  Units are in the names or stated here.

    Attributes
    ----------
    seed : int
        Seed of every random draw.
    n_frames : int
        Number of frames (events ``//0`` ... ``//n-1`` of one HDF5 file).
    name : str
        Stem of the file names (``<name>.stream``, ``<name>.h5`` ...).
    panel_width, panel_height : int
        Pixels of each of the two panels along fs and ss.  Both panels live in one array of
        shape ``(2 * panel_height, panel_width)``: rows ``0 .. h-1`` are ``p0`` (below the
        beam), rows ``h .. 2h-1`` are ``p1`` (above it).
    gap_px : float
        Gap between the panels in the lab frame (pixels); the beam passes through it.
    pixel_size_m : float
        Pixel pitch (m); the geometry's ``res`` is its inverse.
    clen_m : float
        Camera length (m).
    photon_energy_eV : float
        Beam energy (eV).
    bandwidth : float
        ``beam_bandwidth`` (fraction), as indexamajig writes it by default.
    cell_A : (float, float, float)
        Tetragonal cell a = b, c in Angstrom (angles 90 degrees, lattice P).
    profile_radius_nm : (float, float)
        Range of the crystals' ``profile_radius`` (nm^-1), uniform.
    wilson_B_A2 : float
        Overall B factor of the true intensities (A^2).
    intensity_scale : float
        ``I0``: mean full intensity at 1/d = 0, photons.
    crystal_scale : (float, float)
        Range of the per-crystal scale factor, uniform.
    spot_sigma_px : (float, float)
        Range of the per-crystal spot standard deviation (pixels), uniform.
    water_ring_A, water_width_invA : float
        Water-ring position (d, Angstrom) and Gaussian width in q = 1/d (A^-1).
    water_level, diffuse_level, flat_level : (float, float)
        Ranges (photons/pixel) of the per-frame water-ring peak, diffuse-scatter level (at
        q = 0, decaying as ``exp(-q / 0.12 A^-1)``) and flat level, uniform.
    slope : float
        Per-frame slopes along lab x and y are uniform in [-slope, slope] photons/pixel
        across half the detector.
    adu_per_photon : float
        Detector gain: pixel value = photons * gain.  Integer gains give int32 data,
        other gains float32.
    max_adu : float or None
        Saturation level written to the geometry (None: no ``max_adu`` line).
    int_radius : (int, int, int)
        ``--int-radius`` of the rings integration written in the stream.
    compression : str
        ``"gzip"`` (level 4 + shuffle, readable by any HDF5) or ``"bitshuffle-lz4"``
        (needs the hdf5plugin filters).
    hit_fraction : float
        Probability that a frame holds crystals (the rest are blank non-hits).
    multi_crystal_fraction : float
        Probability that a hit holds two crystals instead of one.
    n_hot_pixels : int
        Hot pixels (masked, 20000-65000 ADU per frame).
    peak_min_snr : float
        A spot enters the chunk's peak list when ``true_I / sqrt(true_I + 29 * bg) >= this``
        (29 = pixels of a radius-3 disc) and its disc holds no bad pixel.
    """

    seed: int = 0
    n_frames: int = 20
    name: str = "synth"
    panel_width: int = 256
    panel_height: int = 256
    gap_px: float = 12.0
    pixel_size_m: float = 172e-6
    clen_m: float = 0.075
    photon_energy_eV: float = 12000.0
    bandwidth: float = 1e-8
    cell_A: tuple[float, float] = (79.1, 37.9)
    profile_radius_nm: tuple[float, float] = (0.004, 0.006)
    wilson_B_A2: float = 15.0
    intensity_scale: float = 2000.0
    crystal_scale: tuple[float, float] = (0.6, 1.4)
    spot_sigma_px: tuple[float, float] = (0.9, 1.2)
    water_ring_A: float = 3.2
    water_width_invA: float = 0.035
    water_level: tuple[float, float] = (22.0, 34.0)
    diffuse_level: tuple[float, float] = (12.0, 20.0)
    flat_level: tuple[float, float] = (5.0, 8.0)
    slope: float = 2.0
    adu_per_photon: float = 1.0
    max_adu: float | None = None
    int_radius: tuple[int, int, int] = (3, 4, 5)
    compression: str = "gzip"
    hit_fraction: float = 0.85
    multi_crystal_fraction: float = 0.2
    n_hot_pixels: int = 20
    peak_min_snr: float = 5.0

    def __post_init__(self) -> None:
        if self.compression not in ("gzip", "bitshuffle-lz4"):
            raise ValueError(
                f"compression must be 'gzip' or 'bitshuffle-lz4', not {self.compression!r}"
            )
        if self.n_frames < 1:
            raise ValueError("n_frames must be at least 1")
        if self.adu_per_photon <= 0:
            raise ValueError("adu_per_photon must be positive")
        r = tuple(int(x) for x in self.int_radius)
        if len(r) != 3 or not (0 < r[0] <= r[1] <= r[2]):
            raise ValueError(
                f"int_radius must be three integers r1 <= r2 <= r3, not {self.int_radius!r}"
            )
        self.int_radius = r  # type: ignore[assignment]
        for name in (
            "cell_A",
            "profile_radius_nm",
            "crystal_scale",
            "spot_sigma_px",
            "water_level",
            "diffuse_level",
            "flat_level",
        ):
            setattr(self, name, tuple(float(x) for x in getattr(self, name)))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SynthConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


# --------------------------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------------------------


@dataclass
class TruthReflections:
    """Every predicted reflection of every crystal (written to the stream or not).

    Attributes
    ----------
    frame, crystal : int32 arrays
        Frame (event) number and crystal number within the frame (0-based).
    h, k, l : int32 arrays
        Miller indices in the crystal's (true) setting, as in the stream.
    panel : int32 array
        Panel index (0 = ``p0``, 1 = ``p1``).
    fs, ss : float64 arrays
        Predicted spot centre in **data-array** coordinates (pixel-corner convention), as
        the stream prints it with ``%6.1f`` (full precision here).
    one_over_d : float64 array
        1/d in nm^-1.
    partiality : float64 array
        CrystFEL's excitation weight of the prediction, clipped to [0, 1].
    I_full : float64 array
        The reflection's full intensity (photons, before crystal scale and partiality).
    true_I : float64 array
        Photons in the whole spot: ``scale * I_full * partiality``.  Pixels of the spot that
        fall off the panel are lost from the image (only near panel edges).
    """

    frame: np.ndarray
    crystal: np.ndarray
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - the Miller index
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    one_over_d: np.ndarray
    partiality: np.ndarray
    I_full: np.ndarray  # noqa: N815
    true_I: np.ndarray  # noqa: N815

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def take(self, index: np.ndarray) -> TruthReflections:
        """Rows selected by a boolean mask or an index array."""
        return TruthReflections(
            **{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}
        )


@dataclass
class TruthCrystals:
    """The crystals, one row each.

    ``astar, bstar, cstar`` are (n, 3) reciprocal vectors in nm^-1 in the lab frame, exactly
    the values printed in the stream (rounded to 7 decimals before anything was predicted);
    ``profile_radius`` nm^-1 as printed; ``scale`` the crystal's intensity scale;
    ``spot_sigma_px`` the spots' Gaussian standard deviation (pixels).
    """

    frame: np.ndarray
    crystal: np.ndarray
    astar: np.ndarray
    bstar: np.ndarray
    cstar: np.ndarray
    profile_radius: np.ndarray
    scale: np.ndarray
    spot_sigma_px: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass
class Truth:
    """The answers of a simulated data set (what :func:`load_truth` reads back).

    Attributes
    ----------
    config : SynthConfig
    bragg : float32 array (n_frames, ss, fs)
        Noise-free Bragg photons per pixel of the whole data array (multiples of
        :data:`BRAGG_QUANTUM`).
    background_components : dict of str to float32 array (ss, fs)
        Background basis maps ``diffuse``, ``water``, ``slope_x``, ``slope_y``.
    background_coeffs : float64 array (n_frames, 5)
        Per-frame coefficients, columns :data:`BACKGROUND_COLUMNS` (photons/pixel).  The
        background of a frame is :func:`background_image` of the two (see
        :meth:`background_of` and :attr:`background`).  ``bragg + background`` (in float64)
        is exactly the Poisson mean of each pixel; the stored frame is that draw times
        ``adu_per_photon``, then dead and hot pixels overwritten.
    dead, hot : bool arrays (ss, fs)
        The bad pixels (flagged in the mask; dead read 0, hot 20000-65000 ADU).
    reflections : TruthReflections
    crystals : TruthCrystals
    intensities : dict of str to ndarray
        The full intensity list in the 4/mmm asymmetric unit (``h >= k >= 0, l >= 0``):
        ``h, k, l`` (int32) and ``I`` (photons, zero for P4(3)2(1)2 absences), down to the
        highest resolution any pixel sees.
    panel_names : tuple of str
    panel_min_ss, panel_max_ss, panel_min_fs, panel_max_fs : tuple of int
        Inclusive panel ranges in the data array.
    adu_per_photon : float
    """

    config: SynthConfig
    bragg: np.ndarray
    background_components: dict[str, np.ndarray]
    background_coeffs: np.ndarray
    dead: np.ndarray
    hot: np.ndarray
    reflections: TruthReflections
    crystals: TruthCrystals
    intensities: dict[str, np.ndarray]
    panel_names: tuple[str, ...]
    panel_min_fs: tuple[int, ...]
    panel_max_fs: tuple[int, ...]
    panel_min_ss: tuple[int, ...]
    panel_max_ss: tuple[int, ...]
    adu_per_photon: float = 1.0

    @property
    def n_frames(self) -> int:
        return int(self.bragg.shape[0])

    def background_of(self, frame: int) -> np.ndarray:
        """float32 (ss, fs): noise-free background photons per pixel of one frame."""
        return background_image(self.background_components, self.background_coeffs[frame])

    @cached_property
    def background(self) -> np.ndarray:
        """float32 (n_frames, ss, fs): noise-free background of every frame (photons)."""
        return np.stack([self.background_of(i) for i in range(self.n_frames)])

    def mean_photons(self, frame: int) -> np.ndarray:
        """float64 (ss, fs): the exact Poisson mean of every pixel of one frame (photons)."""
        return self.bragg[frame].astype(np.float64) + self.background_of(frame).astype(np.float64)

    def rows_of(self, frame: int, crystal: int | None = None) -> np.ndarray:
        """Indices into :attr:`reflections` of one frame (and crystal)."""
        sel = self.reflections.frame == frame
        if crystal is not None:
            sel &= self.reflections.crystal == crystal
        return np.flatnonzero(sel)

    def lookup(
        self, frame: int, crystal: int, h: np.ndarray, k: np.ndarray, l: np.ndarray
    ) -> np.ndarray:  # noqa: E741
        """Row index in :attr:`reflections` of each (h, k, l) of a crystal; -1 if absent."""
        rows = self.rows_of(frame, crystal)
        t = self.reflections
        table = {
            (int(a), int(b), int(c)): int(r)
            for a, b, c, r in zip(t.h[rows], t.k[rows], t.l[rows], rows, strict=True)
        }
        return np.array(
            [
                table.get((int(a), int(b), int(c)), -1)
                for a, b, c in zip(np.ravel(h), np.ravel(k), np.ravel(l), strict=True)
            ],
            dtype=np.int64,
        )

    def bragg_in_disc(self, radius: float, rows: np.ndarray | None = None) -> np.ndarray:
        """True Bragg photons within ``radius`` of each reflection's position.

        Sums ``bragg`` over the pixels of the reflection's own panel whose **centres**
        (i + 0.5) lie within ``radius`` pixels of its (fs, ss): the quantity T that the
        ref-small README compares stream intensities with (r1 for the peak disc).

        Parameters
        ----------
        radius : float
            Pixels.
        rows : int array, optional
            Indices into :attr:`reflections` (default: all).

        Returns
        -------
        float64 array, photons (multiply by ``adu_per_photon`` to compare with ADU).
        """
        t = self.reflections
        rows = np.arange(len(t)) if rows is None else np.asarray(rows)
        out = np.zeros(rows.shape[0])
        half = int(math.ceil(radius)) + 1
        d = np.arange(-half, half + 1)
        for f in np.unique(t.frame[rows]):
            for p in range(len(self.panel_names)):
                sel = np.flatnonzero((t.frame[rows] == f) & (t.panel[rows] == p))
                if sel.size == 0:
                    continue
                r = rows[sel]
                ss0, ss1 = self.panel_min_ss[p], self.panel_max_ss[p] + 1
                fs0, fs1 = self.panel_min_fs[p], self.panel_max_fs[p] + 1
                img = self.bragg[f, ss0:ss1, fs0:fs1]
                fs, ss = t.fs[r] - fs0, t.ss[r] - ss0
                cfs, css = np.floor(fs).astype(np.int64), np.floor(ss).astype(np.int64)
                win, on = gather_window(img, cfs, css, half, 0.0)
                dx = cfs[:, None, None] + d[None, None, :] + 0.5 - fs[:, None, None]
                dy = css[:, None, None] + d[None, :, None] + 0.5 - ss[:, None, None]
                inside = on & (dx * dx + dy * dy <= radius * radius)
                out[sel] = np.where(inside, win.astype(np.float64), 0.0).sum(axis=(1, 2))
        return out


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


# --------------------------------------------------------------------------------------------
# Geometry, cell, intensities
# --------------------------------------------------------------------------------------------


def geometry_text(config: SynthConfig) -> str:
    """The CrystFEL geometry of the simulated detector (two panels in one array).

    ``p0`` covers data rows ``0 .. h-1`` and lies below the beam, ``p1`` covers rows
    ``h .. 2h-1`` above it; ``fs = +x``, ``ss = +y`` for both; the beam (lab 0, 0) passes
    through the gap of ``gap_px`` pixels between them.
    """
    w, h = config.panel_width, config.panel_height
    cx = -(w / 2.0) - 0.3
    y0 = -(h + config.gap_px / 2.0) + 0.3
    y1 = config.gap_px / 2.0 + 0.3
    gain = config.adu_per_photon
    lines = [
        f"; streamfilter.synth {__version__}: simulated detector, seed {config.seed}",
        f"; 2 x ({w} fs x {h} ss) panels stored in ONE array (rows 0-{h - 1} = p0, "
        f"{h}-{2 * h - 1} = p1); frames stacked along dim0",
        "",
        f"photon_energy = {config.photon_energy_eV:g} eV",
        f"clen = {config.clen_m:g}",
        f"res = {1.0 / config.pixel_size_m:.6f}   ; 1/{config.pixel_size_m:g} m",
        f"adu_per_photon = {gain:g}",
        *([f"max_adu = {config.max_adu:g}"] if config.max_adu is not None else []),
        "",
        f"data = {DATA_PATH}",
        "dim0 = %",
        "dim1 = ss",
        "dim2 = fs",
        "",
        f"; bad pixels: bit {MASK_BAD:#x} set (hot) or bit {MASK_GOOD:#x} clear (dead)",
        f"mask0_data = {MASK_PATH}",
        f"mask0_goodbits = {MASK_GOOD:#x}",
        f"mask0_badbits = {MASK_BAD:#x}",
        "",
    ]
    for i, (name, cy) in enumerate(zip(PANEL_NAMES, (y0, y1), strict=True)):
        lines += [
            f"{name}/min_fs = 0",
            f"{name}/max_fs = {w - 1}",
            f"{name}/min_ss = {i * h}",
            f"{name}/max_ss = {(i + 1) * h - 1}",
            f"{name}/corner_x = {cx:.1f}",
            f"{name}/corner_y = {cy:.1f}",
            f"{name}/fs = +1.0x",
            f"{name}/ss = +1.0y",
            "",
        ]
    return "\n".join(lines)


def cell_text(config: SynthConfig) -> str:
    """The target unit cell as a CrystFEL cell file (tetragonal P, unique axis c)."""
    a, c = config.cell_A
    return (
        "CrystFEL unit cell file version 1.0\n\n"
        "lattice_type = tetragonal\ncentering = P\nunique_axis = c\n\n"
        f"a = {a:.2f} A\nb = {a:.2f} A\nc = {c:.2f} A\n"
        "al = 90.00 deg\nbe = 90.00 deg\nga = 90.00 deg\n"
    )


def _max_one_over_d_invA(detector: Detector, config: SynthConfig) -> float:
    """Largest 1/d (A^-1) seen by any panel corner."""
    lam = photon_energy_to_wavelength(config.photon_energy_eV) * 1e10
    best = 0.0
    for p in detector.panels:
        for fs, ss in ((0, 0), (p.width, 0), (0, p.height), (p.width, p.height)):
            x, y = p.lab_xy(fs, ss)
            r = math.hypot(float(x), float(y)) / p.res
            two_theta = math.atan2(r, config.clen_m)
            best = max(best, 2.0 * math.sin(two_theta / 2.0) / lam)
    return best


def _intensity_table(config: SynthConfig, q_max: float) -> np.ndarray:
    """Full intensities (photons) on a dense grid ``[H, K, L]`` of 4/mmm representatives.

    ``I[max(|h|,|k|), min(|h|,|k|), |l|]`` is the intensity of (h, k, l).  Entries with
    ``K > H`` are unused; beyond ``q_max`` (A^-1) they are 0.
    """
    a, c = config.cell_A
    hmax = int(q_max * a) + 1
    lmax = int(q_max * c) + 1
    rng = np.random.default_rng([config.seed, _RNG_INTENSITIES])
    e = rng.exponential(size=(hmax + 1, hmax + 1, lmax + 1))
    hh, kk, ll = np.meshgrid(
        np.arange(hmax + 1), np.arange(hmax + 1), np.arange(lmax + 1), indexing="ij"
    )
    q2 = (hh**2 + kk**2) / a**2 + ll**2 / c**2  # (1/d)^2 in A^-2
    table = config.intensity_scale * np.exp(-config.wilson_B_A2 * q2 / 2.0) * e
    absent = ((kk == 0) & (ll == 0) & (hh % 2 == 1)) | ((hh == 0) & (kk == 0) & (ll % 4 != 0))
    table[absent | (q2 > q_max**2)] = 0.0
    table[0, 0, 0] = 0.0
    return table


def _lookup_intensity(
    table: np.ndarray, h: np.ndarray, k: np.ndarray, ell: np.ndarray
) -> np.ndarray:
    """Full intensity of each (h, k, l) from :func:`_intensity_table` (0 beyond its range)."""
    ah, ak = np.abs(h), np.abs(k)
    big, small, al = np.maximum(ah, ak), np.minimum(ah, ak), np.abs(ell)
    inside = (big < table.shape[0]) & (al < table.shape[2])
    out = np.zeros(h.shape, dtype=np.float64)
    out[inside] = table[big[inside], small[inside], al[inside]]
    return out


def _asu_list(table: np.ndarray, config: SynthConfig, q_max: float) -> dict[str, np.ndarray]:
    a, c = config.cell_A
    hh, kk, ll = np.meshgrid(*(np.arange(n) for n in table.shape), indexing="ij")
    q2 = (hh**2 + kk**2) / a**2 + ll**2 / c**2
    keep = (kk <= hh) & (q2 <= q_max**2) & (q2 > 0)
    return {
        "h": hh[keep].astype(np.int32),
        "k": kk[keep].astype(np.int32),
        "l": ll[keep].astype(np.int32),
        "I": table[keep],
    }


# --------------------------------------------------------------------------------------------
# Per-frame simulation
# --------------------------------------------------------------------------------------------


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation matrix (from a uniform unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _printed(values: np.ndarray, fmt: str) -> np.ndarray:
    """Values rounded exactly as the stream prints them (so re-reading gives the same)."""
    return np.array([float(fmt % v) for v in np.ravel(values)]).reshape(np.shape(values))


def _make_crystal(config: SynthConfig, rng: np.random.Generator) -> SimpleNamespace:
    """A crystal with the attributes the prediction reads (nm^-1 throughout)."""
    a_nm, c_nm = config.cell_A[0] / 10.0, config.cell_A[1] / 10.0
    rot = _random_rotation(rng)
    recip = rot @ np.diag([1.0 / a_nm, 1.0 / a_nm, 1.0 / c_nm])  # columns a*, b*, c*
    astar, bstar, cstar = (_printed(recip[:, i], "%+.7f") for i in range(3))
    return SimpleNamespace(
        astar=astar,
        bstar=bstar,
        cstar=cstar,
        profile_radius=float("%.5f" % rng.uniform(*config.profile_radius_nm)),
        det_shift_mm=(0.0, 0.0),
        centering="P",
        resolution_limit=None,
        reflections=None,
        scale=float(rng.uniform(*config.crystal_scale)),
        spot_sigma_px=float(rng.uniform(*config.spot_sigma_px)),
    )


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), pure numpy."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


#: Spot pixel values are multiples of this (photons), so the noise-free Bragg image is
#: exactly representable, sparse, and each spot's photons add up exactly.
BRAGG_QUANTUM = 1.0 / 64.0


def _add_spots(
    image: np.ndarray, fs: np.ndarray, ss: np.ndarray, photons: np.ndarray, sigma: float
) -> np.ndarray:
    """Add pixel-integrated 2-D Gaussian spots to one panel image (float64, [ss, fs]).

    ``fs, ss`` are panel-relative centres (pixel i spans [i, i+1)).  Each spot's pixel values
    are ``photons`` times the Gaussian's integral over the pixel (normalised over the
    (2K+1)^2 stamp, K = ceil(5 sigma)), rounded to multiples of :data:`BRAGG_QUANTUM`.  Stamp
    pixels off the panel are dropped (nothing crosses to another panel).

    Returns
    -------
    float64 array
        Photons in each whole (rounded) spot, on and off the panel: the true intensity.
    """
    if fs.size == 0:
        return np.zeros(0)
    h, w = image.shape
    half = int(math.ceil(5.0 * sigma))
    offs = np.arange(-half, half + 2)  # pixel edges relative to the central pixel
    cfs, css = np.floor(fs).astype(np.int64), np.floor(ss).astype(np.int64)
    wx = np.diff(_norm_cdf((cfs[:, None] + offs[None, :] - fs[:, None]) / sigma), axis=1)
    wy = np.diff(_norm_cdf((css[:, None] + offs[None, :] - ss[:, None]) / sigma), axis=1)
    stamp = wy[:, :, None] * wx[:, None, :]
    stamp *= (photons / stamp.sum(axis=(1, 2)))[:, None, None]
    stamp = np.round(stamp / BRAGG_QUANTUM) * BRAGG_QUANTUM
    px = cfs[:, None, None] + offs[None, None, :-1]
    py = css[:, None, None] + offs[None, :-1, None]
    px, py = np.broadcast_to(px, stamp.shape), np.broadcast_to(py, stamp.shape)
    on = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    np.add.at(image.reshape(-1), py[on] * w + px[on], stamp[on])
    return stamp.sum(axis=(1, 2))


BACKGROUND_COLUMNS = ("diffuse", "water", "slope_x", "slope_y", "flat")


def _background_components(
    detector: Detector, config: SynthConfig, shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """The background basis maps (float32, whole data array, values at pixel centres).

    ``diffuse = exp(-q / 0.12)`` and ``water = exp(-((q - 1/water_ring_A) / width)^2 / 2)``
    with q = 1/d in A^-1; ``slope_x = x / (panel_width / 2)`` and
    ``slope_y = y / (panel_height + gap / 2)`` with x, y the lab position in pixels (beam at
    0, 0).  The flat term is 1 everywhere and not stored.
    """
    lam_a = photon_energy_to_wavelength(config.photon_energy_eV) * 1e10
    x = np.zeros(shape)
    y = np.zeros(shape)
    for p in detector.panels:
        px, py = p.lab_xy(np.arange(p.width)[None, :] + 0.5, np.arange(p.height)[:, None] + 0.5)
        x[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = px
        y[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = py
    two_theta = np.arctan2(np.hypot(x, y) * config.pixel_size_m, config.clen_m)
    q = 2.0 * np.sin(two_theta / 2.0) / lam_a
    q0 = 1.0 / config.water_ring_A
    maps = {
        "diffuse": np.exp(-q / 0.12),
        "water": np.exp(-0.5 * ((q - q0) / config.water_width_invA) ** 2),
        "slope_x": x / (config.panel_width / 2.0),
        "slope_y": y / (config.panel_height + config.gap_px / 2.0),
    }
    return {k: v.astype(np.float32) for k, v in maps.items()}


def background_image(components: dict[str, np.ndarray], coeffs: np.ndarray) -> np.ndarray:
    """One frame's noise-free background (photons/pixel, float32) from its five coefficients.

    ``float32(sum_j coeffs[j] * float64(component_j) + coeffs[flat])``, in the order of
    :data:`BACKGROUND_COLUMNS`; only IEEE additions and multiplications, so re-computing it
    from the stored components gives the same bits on any machine.
    """
    bg = coeffs[0] * components["diffuse"].astype(np.float64)
    bg = bg + coeffs[1] * components["water"].astype(np.float64)
    bg = bg + coeffs[2] * components["slope_x"].astype(np.float64)
    bg = bg + coeffs[3] * components["slope_y"].astype(np.float64)
    return (bg + coeffs[4]).astype(np.float32)


def _background_coeffs(config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    c_diffuse = rng.uniform(*config.diffuse_level)
    c_water = rng.uniform(*config.water_level)
    c_sx, c_sy = rng.uniform(-config.slope, config.slope, size=2)
    c_flat = rng.uniform(*config.flat_level)
    return np.array([c_diffuse, c_water, c_sx, c_sy, c_flat])


@dataclass
class _FrameResult:
    counts: np.ndarray  # stored pixel values (ADU)
    bragg: np.ndarray
    bg_coeffs: np.ndarray
    crystals: list
    preds: list  # per crystal: (Predictions, I_full, true_I)
    chunk: bytes


def _simulate_frame(
    i: int,
    config: SynthConfig,
    detector: Detector,
    components: dict[str, np.ndarray],
    table: np.ndarray,
    dead: np.ndarray,
    hot: np.ndarray,
    bad_panels: dict[str, np.ndarray],
) -> _FrameResult:
    rng = np.random.default_rng([config.seed, _RNG_FRAME, i])
    u = rng.random()
    n_xtal = (
        0
        if u >= config.hit_fraction
        else (2 if u < config.hit_fraction * config.multi_crystal_fraction else 1)
    )
    bragg = np.zeros(dead.shape, dtype=np.float64)
    crystals, preds = [], []
    for _ in range(n_xtal):
        xtal = _make_crystal(config, rng)
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
        i_full = _lookup_intensity(table, pr.h, pr.k, pr.l)
        expected = xtal.scale * i_full * np.clip(pr.partiality, 0.0, 1.0)
        true_i = np.zeros(len(pr))
        for pn, p in enumerate(detector.panels):
            sel = pr.panel == pn
            view = bragg[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1]
            true_i[sel] = _add_spots(
                view, pr.fs[sel], pr.ss[sel], expected[sel], xtal.spot_sigma_px
            )
        crystals.append(xtal)
        preds.append((pr, i_full, true_i))
    bragg32 = bragg.astype(np.float32)
    coeffs = _background_coeffs(config, rng)
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
    from .pipeline.frame import integrate_frame

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
    chunk = _chunk_text(i, config, crystals, results, peaks, per_xtal_peaks)
    return _FrameResult(counts, bragg32, coeffs, crystals, preds, chunk)


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


def _resolution_estimate(one_over_d: np.ndarray) -> float:
    """CrystFEL's ``estimate_peak_resolution`` outlier cut on sorted 1/d values."""
    if one_over_d.size == 0:
        return 0.0
    v = np.sort(one_over_d)
    ncut = v.size // 50
    if ncut < 2:
        ncut = 0
    return float(v[v.size - 1 - ncut])


def _cell_parameters(astar: np.ndarray, bstar: np.ndarray, cstar: np.ndarray) -> tuple:
    real = np.linalg.inv(np.array([astar, bstar, cstar])).T  # rows a, b, c in nm
    a, b, c = (float(np.linalg.norm(v)) for v in real)

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return math.degrees(math.acos(float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v))))

    return a, b, c, angle(real[1], real[2]), angle(real[0], real[2]), angle(real[0], real[1])


def _chunk_text(
    i: int,
    config: SynthConfig,
    crystals: list,
    results: list,
    peaks: PeakTable,
    per_xtal_peaks: list,
) -> bytes:
    indexed = bool(crystals)
    peak_res = _resolution_estimate(peaks.one_over_d)
    out = [
        "----- Begin chunk -----",
        f"Image filename: {config.name}.h5",
        f"Event: //{i}",
        f"Image serial number: {i + 1}",
        f"hit = {1 if len(peaks) > 0 else 0}",
        f"indexed_by = {'synth' if indexed else 'none'}",
    ]
    if indexed:
        out.append("n_indexing_tries = 1")
    out += [
        f"photon_energy_eV = {config.photon_energy_eV:f}",
        "beam_divergence = 0.00e+00 rad",
        f"beam_bandwidth = {config.bandwidth:.2e} (fraction)",
        f"average_camera_length = {config.clen_m:f} m",
        f"num_peaks = {len(peaks)}",
        f"peak_resolution = {peak_res:f} nm^-1 or "
        + (f"{10.0 / peak_res:f} A" if peak_res > 0 else "inf A"),
        "Peaks from peak search",
    ]
    text = (
        "\n".join(out).encode()
        + b"\n"
        + PEAK_HEADER_23
        + format_peaks(peaks)
        + b"End of peak list\n"
    )
    for xtal, res, pk in zip(crystals, results, per_xtal_peaks, strict=True):
        text += _crystal_text(xtal, res, pk)
    return text + b"----- End chunk -----\n"


def _crystal_text(xtal: SimpleNamespace, res, peak_one_over_d: np.ndarray) -> bytes:
    cell = _cell_parameters(xtal.astar, xtal.bstar, xtal.cstar)
    limit = _resolution_estimate(peak_one_over_d)
    if limit <= 0:
        ok = np.isfinite(res.I)
        q = np.zeros(0)
        if ok.any():
            recip = np.array([xtal.astar, xtal.bstar, xtal.cstar])
            hkl = np.stack([res.h[ok], res.k[ok], res.l[ok]], axis=1).astype(np.float64)
            q = np.linalg.norm(hkl @ recip, axis=1)
        limit = float(q.max()) if q.size else 1.0
    w = res.written
    table = ReflectionTable(
        res.h[w],
        res.k[w],
        res.l[w],
        res.I[w],
        res.sigma[w],
        res.peak[w],
        res.background[w],
        res.fs[w],
        res.ss[w],
        res.panel[w].astype(str),
    )

    def vec(v: np.ndarray) -> str:
        return " ".join(f"{x:+9.7f}" for x in v)

    lines = [
        "--- Begin crystal",
        "Cell parameters {:7.5f} {:7.5f} {:7.5f} nm, {:7.5f} {:7.5f} {:7.5f} deg".format(*cell),
        f"astar = {vec(xtal.astar)} nm^-1",
        f"bstar = {vec(xtal.bstar)} nm^-1",
        f"cstar = {vec(xtal.cstar)} nm^-1",
        "lattice_type = tetragonal",
        "centering = P",
        "unique_axis = c",
        f"profile_radius = {xtal.profile_radius:.5f} nm^-1",
        "predict_refine/det_shift x = 0.000 y = 0.000 mm",
        f"diffraction_resolution_limit = {limit:.2f} nm^-1 or {10.0 / limit:.2f} A",
        f"num_reflections = {len(table)}",
        f"num_saturated_reflections = {res.n_saturated}",
        f"num_implausible_reflections = {res.n_implausible}",
        "Reflections measured after indexing",
    ]
    return (
        ("\n".join(lines) + "\n").encode()
        + REFLECTION_HEADER_23
        + format_reflections(table)
        + b"End of reflections\n--- End crystal\n"
    )


def _header_text(config: SynthConfig, geom: str) -> bytes:
    r = ",".join(str(x) for x in config.int_radius)
    n = config.name
    lines = [
        "CrystFEL stream format 2.3",
        f"Generated by streamfilter.synth {__version__} (simulated data, seed {config.seed})",
        f"indexamajig -i {n}.lst -g {n}.geom -o {n}.stream -p {n}.cell --indexing=synth "
        f"--integration=rings --int-radius={r}",
        "----- Begin geometry file -----",
        geom.rstrip("\n"),
        "----- End geometry file -----",
        "----- Begin unit cell -----",
        cell_text(config).rstrip("\n"),
        "; Please note: this is the target unit cell.",
        "; The actual unit cells produced by indexing depend on many other factors.",
        "----- End unit cell -----",
        "Indexing methods selected: synth",
    ]
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------------------------
# Detector defects and files
# --------------------------------------------------------------------------------------------


def _bad_pixels(config: SynthConfig, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Dead column (in p1), dead 6x6 block (in p0) and random hot pixels, fixed per seed."""
    rng = np.random.default_rng([config.seed, _RNG_DETECTOR])
    n_ss, n_fs = shape
    h = config.panel_height
    dead = np.zeros(shape, dtype=bool)
    col = int(rng.integers(n_fs // 4, 3 * n_fs // 4))
    dead[h + h // 6 : h + (5 * h) // 6, col] = True
    bss, bfs = int(rng.integers(h // 4, 3 * h // 4)), int(rng.integers(n_fs // 8, n_fs // 3))
    dead[bss : bss + 6, bfs : bfs + 6] = True
    hot = np.zeros(shape, dtype=bool)
    flat = rng.choice(n_ss * n_fs, size=config.n_hot_pixels, replace=False)
    hot.reshape(-1)[flat] = True
    hot &= ~dead
    return dead, hot


def _compression_kwargs(config: SynthConfig) -> dict:
    if config.compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    return dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))


def _write_truth(path: Path, truth: Truth) -> None:
    gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    n, n_ss, n_fs = truth.bragg.shape
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = f"streamfilter.synth {__version__}"
        f.attrs["config"] = truth.config.to_json()
        f.attrs["units"] = (
            "photons (times adu_per_photon for ADU); positions in data-array "
            "pixels, pixel i spans [i, i+1)"
        )
        f.attrs["adu_per_photon"] = truth.adu_per_photon
        f.attrs["panel_names"] = list(truth.panel_names)
        for key in ("panel_min_fs", "panel_max_fs", "panel_min_ss", "panel_max_ss"):
            f.attrs[key] = list(getattr(truth, key))
        f.create_dataset("bragg", data=truth.bragg, chunks=(1, n_ss, n_fs), **gz)
        for key, arr in truth.background_components.items():
            f.create_dataset(f"background/components/{key}", data=arr, **gz)
        f.create_dataset("background/coeffs", data=truth.background_coeffs, track_times=False)
        f["background/coeffs"].attrs["columns"] = list(BACKGROUND_COLUMNS)
        f.create_dataset("bad_pixels/dead", data=truth.dead, **gz)
        f.create_dataset("bad_pixels/hot", data=truth.hot, **gz)
        for group, obj in (("reflections", truth.reflections), ("crystals", truth.crystals)):
            for fld in dataclasses.fields(obj):
                f.create_dataset(f"{group}/{fld.name}", data=getattr(obj, fld.name), **gz)
        for key, arr in truth.intensities.items():
            f.create_dataset(f"intensities/{key}", data=arr, **gz)


def load_truth(path: str | Path) -> Truth:
    """Read the truth of a simulated data set.

    Parameters
    ----------
    path : path-like
        The ``<name>_truth.h5`` file, or a directory holding exactly one such file.

    Returns
    -------
    Truth
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*_truth.h5"))
        if len(found) != 1:
            raise StreamfilterError(
                f"{path}: expected one *_truth.h5 file, found "
                f"{len(found)} ({', '.join(p.name for p in found)})"
            )
        path = found[0]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise StreamfilterError(f"{path}: cannot open the truth file: {e}") from e
    with f:
        if "config" not in f.attrs:
            raise StreamfilterError(f"{path}: not a streamfilter.synth truth file")
        cols = {
            g: {k: f[g][k][()] for k in f[g]} for g in ("reflections", "crystals", "intensities")
        }
        return Truth(
            config=SynthConfig.from_json(f.attrs["config"]),
            bragg=f["bragg"][()],
            background_components={k: v[()] for k, v in f["background/components"].items()},
            background_coeffs=f["background/coeffs"][()],
            dead=f["bad_pixels/dead"][()],
            hot=f["bad_pixels/hot"][()],
            reflections=TruthReflections(**cols["reflections"]),
            crystals=TruthCrystals(**cols["crystals"]),
            intensities=cols["intensities"],
            panel_names=tuple(str(x) for x in f.attrs["panel_names"]),
            panel_min_fs=tuple(int(x) for x in f.attrs["panel_min_fs"]),
            panel_max_fs=tuple(int(x) for x in f.attrs["panel_max_fs"]),
            panel_min_ss=tuple(int(x) for x in f.attrs["panel_min_ss"]),
            panel_max_ss=tuple(int(x) for x in f.attrs["panel_max_ss"]),
            adu_per_photon=float(f.attrs["adu_per_photon"]),
        )


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


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
    components = _background_components(detector, config, shape)
    q_max = _max_one_over_d_invA(detector, config) * 1.001
    table = _intensity_table(config, q_max)
    dead, hot = _bad_pixels(config, shape)
    mask = np.full(shape, MASK_GOOD, dtype=np.uint8)
    mask[dead] = 0
    mask[hot] |= MASK_BAD
    bad = dead | hot
    bad_panels = {
        p.name: bad[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] for p in detector.panels
    }

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

    n = config.n_frames
    integer_gain = float(config.adu_per_photon).is_integer()
    bragg = np.zeros((n, *shape), np.float32)
    coeffs = np.zeros((n, len(BACKGROUND_COLUMNS)))
    refl_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthReflections)}
    xtal_cols: dict[str, list] = {f.name: [] for f in dataclasses.fields(TruthCrystals)}
    with h5py.File(paths["h5"], "w") as h5, atomic_output(paths["stream"]) as stream:
        data = h5.create_dataset(
            DATA_PATH,
            shape=(n, *shape),
            dtype=np.int32 if integer_gain else np.float32,
            chunks=(1, *shape),
            track_times=False,
            **_compression_kwargs(config),
        )
        h5.create_dataset(MASK_PATH, data=mask, track_times=False, **_compression_kwargs(config))
        stream.write(_header_text(config, geom))
        for i in range(n):
            fr = _simulate_frame(i, config, detector, components, table, dead, hot, bad_panels)
            data[i] = fr.counts
            bragg[i], coeffs[i] = fr.bragg, fr.bg_coeffs
            stream.write(fr.chunk)
            for c, (xtal, (pr, i_full, true_i)) in enumerate(
                zip(fr.crystals, fr.preds, strict=True)
            ):
                _collect(refl_cols, xtal_cols, i, c, xtal, pr, i_full, true_i, detector)
    truth = Truth(
        config=config,
        bragg=bragg,
        background_components=components,
        background_coeffs=coeffs,
        dead=dead,
        hot=hot,
        reflections=TruthReflections(**_stack(refl_cols, TruthReflections)),
        crystals=TruthCrystals(**_stack(xtal_cols, TruthCrystals)),
        intensities=_asu_list(table, config, q_max),
        panel_names=tuple(p.name for p in detector.panels),
        panel_min_fs=tuple(p.min_fs for p in detector.panels),
        panel_max_fs=tuple(p.max_fs for p in detector.panels),
        panel_min_ss=tuple(p.min_ss for p in detector.panels),
        panel_max_ss=tuple(p.max_ss for p in detector.panels),
        adu_per_photon=float(config.adu_per_photon),
    )
    _write_truth(paths["truth"], truth)
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


_REFL_DTYPES = {
    "frame": np.int32,
    "crystal": np.int32,
    "h": np.int32,
    "k": np.int32,
    "l": np.int32,
    "panel": np.int32,
}


def _collect(
    refl: dict,
    xtals: dict,
    frame: int,
    crystal: int,
    xtal: SimpleNamespace,
    pr,
    i_full: np.ndarray,
    true_i: np.ndarray,
    detector: Detector,
) -> None:
    min_fs = np.array([p.min_fs for p in detector.panels], dtype=np.float64)
    min_ss = np.array([p.min_ss for p in detector.panels], dtype=np.float64)
    n = len(pr)
    refl["frame"].append(np.full(n, frame))
    refl["crystal"].append(np.full(n, crystal))
    for key in ("h", "k", "l", "panel"):
        refl[key].append(getattr(pr, key))
    refl["fs"].append(pr.fs + min_fs[pr.panel])
    refl["ss"].append(pr.ss + min_ss[pr.panel])
    refl["one_over_d"].append(pr.one_over_d / 1e9)
    refl["partiality"].append(np.clip(pr.partiality, 0.0, 1.0))
    refl["I_full"].append(i_full)
    refl["true_I"].append(true_i)
    xtals["frame"].append(np.array([frame]))
    xtals["crystal"].append(np.array([crystal]))
    for key in ("astar", "bstar", "cstar"):
        xtals[key].append(np.asarray(getattr(xtal, key))[None, :])
    for key in ("profile_radius", "scale", "spot_sigma_px"):
        xtals[key].append(np.array([getattr(xtal, key)]))


def _stack(cols: dict[str, list], cls: type) -> dict[str, np.ndarray]:
    out = {}
    for f in dataclasses.fields(cls):
        parts = cols[f.name]
        dtype = _REFL_DTYPES.get(f.name, np.float64)
        if parts:
            out[f.name] = np.concatenate(parts).astype(dtype)
        else:
            out[f.name] = np.zeros((0, 3) if f.name.endswith("star") else 0, dtype)
    return out


def _parse_triple(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected R1,R2,R3, got {text!r}")
    return tuple(int(x) for x in parts)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamfilter.synth DIR [options]``: write a simulated data set."""
    d = SynthConfig()
    p = argparse.ArgumentParser(
        prog="python -m streamfilter.synth",
        description="Write a simulated data set with known truth.",
    )
    p.add_argument("directory", help="output directory (created if needed)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-frames", type=int, default=d.n_frames)
    p.add_argument("--name", default=d.name, help="file-name stem (default %(default)s)")
    p.add_argument("--int-radius", type=_parse_triple, default=d.int_radius, metavar="R1,R2,R3")
    p.add_argument("--compression", choices=("gzip", "bitshuffle-lz4"), default=d.compression)
    p.add_argument("--adu-per-photon", type=float, default=d.adu_per_photon)
    p.add_argument("--max-adu", type=float, default=None)
    p.add_argument(
        "--panel-size",
        type=int,
        nargs=2,
        default=(d.panel_width, d.panel_height),
        metavar=("FS", "SS"),
        help="pixels of each panel (default 256 256)",
    )
    args = p.parse_args(argv)
    config = SynthConfig(
        seed=args.seed,
        n_frames=args.n_frames,
        name=args.name,
        int_radius=args.int_radius,
        compression=args.compression,
        adu_per_photon=args.adu_per_photon,
        max_adu=args.max_adu,
        panel_width=args.panel_size[0],
        panel_height=args.panel_size[1],
    )
    ds = generate(args.directory, config)
    t = ds.truth
    n_xtal = len(t.crystals)
    print(
        f"wrote {ds.stream_path}, {ds.h5_path.name}, {ds.geometry_path.name}, "
        f"{ds.cell_path.name}, {ds.truth_path.name}: {config.n_frames} frames, "
        f"{n_xtal} crystals, {len(t.reflections)} predicted reflections",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
