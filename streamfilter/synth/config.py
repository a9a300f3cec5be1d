"""The parameters of a simulated data set (:class:`SynthConfig`), the fixed layout of its
files, and the geometry and cell files that follow from them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .. import __version__

DATA_PATH = "/entry/data/data"
MASK_PATH = "/entry/data/mask"
#: Mask bits: every working pixel has MASK_GOOD set (``mask0_goodbits``); hot pixels also
#: have MASK_BAD (``mask0_badbits``); dead pixels have neither.
MASK_GOOD = 0x4
MASK_BAD = 0x1
PANEL_NAMES = ("p0", "p1")
# Sub-stream ids of the random generators: default_rng([seed, id, frame]).
RNG_FRAME, RNG_DETECTOR, RNG_INTENSITIES, RNG_HEADER = 1, 2, 3, 4


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
    layout : str
        Detector layout (:mod:`.layouts`): ``"two-panel"`` (the detector described by
        ``panel_width`` ... ``gap_px`` above), a built-in like ``"cspad"``, or
        ``"geometry"`` (the CrystFEL geometry file ``geometry_file``).  For layouts other
        than ``two-panel`` the geometry sets pixel size, camera length and gain
        (``photon_energy_eV`` is used where the geometry takes it from the frames).
    shrink : int
        Divide the pixel counts of a built-in layout's panels (and its pixels per metre) by
        this, keeping the panel structure (for fast tests).
    geometry_file : str or None
        The geometry file of ``layout="geometry"``.
    truth_bragg : bool
        Keep the noise-free Bragg images in the truth (False for very large frames: the
        truth then holds everything but ``bragg``).
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
    layout: str = "two-panel"
    shrink: int = 1
    geometry_file: str | None = None
    truth_bragg: bool = True

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
        if int(self.shrink) < 1:
            raise ValueError("shrink must be a positive integer")
        if (self.layout == "geometry") != (self.geometry_file is not None):
            raise ValueError("geometry_file goes with layout 'geometry' (and only with it)")
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
