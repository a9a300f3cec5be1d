"""Detector layouts of simulated data sets: the geometry text and the file format of each.

A :class:`Layout` is a CrystFEL geometry (text, written next to the frames as
``<name>.geom`` and into the stream's geometry block) plus the way its frames are stored:

* ``two-panel``: the default 2-panel detector of :func:`~.config.geometry_text`;
* ``cspad``: CSPAD-like, 64 ASICs (185 ss x 194 fs) in a Cheetah CXI file (1480 x 1552),
  four quadrants rotated by 90 degrees and every 2x1 tilted; ``clen`` and
  ``photon_energy`` are per-event header arrays (``/LCLS/detector_1/EncoderValue`` in mm,
  ``/LCLS/photon_energy_eV``), ``coffset`` adds 0.5732 m, a per-event mask (uint16, any bit
  bad) and ADU from ``adu_per_eV``;
* ``agipd``: AGIPD-1M-like, ``(frame, 16, 512, 128)`` float32 with ``dim1`` the module,
  128 panels (8 ASICs of 64 x 128 per module), per-frame uint32 mask in the same layout;
* ``lpd``: LPD-1M-like, ``(frame, 16, 256, 256)`` with 256 tiles of 32 x 128;
* ``jungfrau16m``: JUNGFRAU-16M-like, 32 modules of 512 x 1024 stacked along ss in one
  ``(frame, 16384, 1024)`` int32 array (16.8 Mpixel), bad pixels in an external
  ``mask0_file``;
* ``eiger16m``: EIGER-16M-like native files: ``<name>_master.h5`` whose
  ``/entry/data/data_000001`` is an external link to ``<name>_data_000001.h5``
  (bitshuffle-LZ4 through hdf5plugin), ``pixel_mask`` in the master (4150 x 4371, one
  panel, module gaps marked in the mask);
* ``pilatus``: PILATUS-6M-like crop of 3 x 5 modules (487 x 195) in 1475 x 1043 mini-CBF
  files written with fabio (byte-offset, ``-1`` in the gaps, ``-2`` on bad pixels,
  ``flag_lessthan = 0``), one file per frame;
* ``geometry``: any CrystFEL geometry file given by the user, frames written as HDF5 in the
  geometry's own ``data``/``dim`` layout.

``shrink`` divides every panel's pixel counts (and the pixels per metre) by an integer, so a
layout keeps its panel structure and solid angle with fewer, larger pixels (for fast tests).
Geometry coordinates are CrystFEL's: lab x, y in pixels, ``corner_x/y`` the outer corner of
the panel's first pixel, beam at (0, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import __version__
from .config import SynthConfig, geometry_text

#: The built-in layouts, in the order ``streamfilter synth --layout`` lists them.
LAYOUT_NAMES = ("two-panel", "cspad", "agipd", "lpd", "jungfrau16m", "eiger16m", "pilatus")

CSPAD_CLEN_PATH = "/LCLS/detector_1/EncoderValue"
CSPAD_ENERGY_PATH = "/LCLS/photon_energy_eV"
CSPAD_COFFSET_M = 0.573224
CSPAD_ADU_PER_EV = 0.00338


@dataclass
class Layout:
    """A detector layout: its geometry text and how its frames are stored.

    Attributes
    ----------
    name : str
        One of :data:`LAYOUT_NAMES` or ``"geometry"``.
    geometry : str
        CrystFEL geometry text.
    file_format : str
        ``"hdf5"`` (one multi-event file), ``"cxi"`` (hdf5 plus per-event header arrays, a
        per-event mask and a soft link), ``"eiger"`` (master + external-link data file) or
        ``"cbf"`` (one mini-CBF file per frame).
    mask : str or None
        How bad pixels are stored: ``"mask"`` (one mask array in the image file, bits as in
        :mod:`.config`), ``"static"`` (one array, non-zero = bad), ``"per-event"`` (one per
        frame in the data's layout, non-zero = bad), ``"mask-file"`` (non-zero = bad, in
        ``<name>_mask.h5``), ``"flag"`` (pixel value -2, gaps -1) or None (none stored).
    header_paths : dict of str to str
        ``{"clen": path, "photon_energy": path}`` for per-event header arrays (CXI).
    """

    name: str
    geometry: str
    file_format: str = "hdf5"
    mask: str | None = "mask"
    header_paths: dict[str, str] = field(default_factory=dict)


def make_layout(config: SynthConfig, geometry: str | None = None) -> Layout:
    """The layout of ``config.layout`` (``geometry``: the text of a user geometry file)."""
    name = config.layout
    if name == "geometry":
        if geometry is None:
            raise ValueError("layout 'geometry' needs the geometry text")
        return Layout(name, geometry, "hdf5", mask=None)
    builders = {
        "two-panel": lambda c: Layout(name, geometry_text(c)),
        "cspad": _cspad,
        "agipd": _agipd,
        "lpd": _lpd,
        "jungfrau16m": _jungfrau,
        "eiger16m": _eiger,
        "pilatus": _pilatus,
    }
    if name not in builders:
        raise ValueError(f"unknown layout {name!r}; choose from {', '.join(LAYOUT_NAMES)}")
    return builders[name](config)


def _head(config: SynthConfig, what: str, res: float, extra: list[str]) -> list[str]:
    return [
        f"; streamfilter.synth {__version__}: simulated {what}, seed {config.seed}, "
        f"shrink {config.shrink}",
        "",
        f"res = {res / config.shrink:.6f}",
        *extra,
        "",
    ]


def _panel(name: str, rng_fs: tuple[int, int], rng_ss: tuple[int, int], corner: tuple,
           fs: tuple[float, float], ss: tuple[float, float], extra: tuple = ()) -> list[str]:
    return [
        *(f"{name}/{line}" for line in extra),
        f"{name}/min_fs = {rng_fs[0]}",
        f"{name}/max_fs = {rng_fs[1]}",
        f"{name}/min_ss = {rng_ss[0]}",
        f"{name}/max_ss = {rng_ss[1]}",
        f"{name}/corner_x = {corner[0]:.3f}",
        f"{name}/corner_y = {corner[1]:.3f}",
        f"{name}/fs = {fs[0]:+.6f}x {fs[1]:+.6f}y",
        f"{name}/ss = {ss[0]:+.6f}x {ss[1]:+.6f}y",
        "",
    ]


def _rot(angle_deg: float, x: float, y: float) -> tuple[float, float]:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return c * x - s * y, s * x + c * y


def _cspad(config: SynthConfig) -> Layout:
    """4 quadrants x 8 2x1s x 2 ASICs; quadrant q holds data columns q*388 .. q*388+387,
    2x1 k rows k*185 .. k*185+184 (the CXI "cxiformat" arrangement)."""
    k_ = config.shrink
    a_ss, a_fs = 185 // k_, 194 // k_
    gap = 4.0 / k_
    lines = _head(config, "CSPAD-like detector (64 ASICs, Cheetah CXI)", 9090.91, [
        f"adu_per_eV = {CSPAD_ADU_PER_EV}",
        f"clen = {CSPAD_CLEN_PATH}",
        f"coffset = {CSPAD_COFFSET_M}",
        f"photon_energy = {CSPAD_ENERGY_PATH}",
        "dim0 = %", "dim1 = ss", "dim2 = fs",
        "data = /entry_1/data_1/data",
        "mask = /entry_1/data_1/mask",
        "mask_good = 0x0000",
        "mask_bad = 0xffff",
    ])
    tilt = [0.27, -0.19, 0.41, -0.33, 0.12, -0.45, 0.22, -0.08]
    for q in range(4):
        for two in range(8):
            # in the quadrant's frame: 2x1s in 4 rows of 2, long axis (fs) along x
            qx = 20.0 / k_ + (two % 2) * (2 * a_fs + 3 * gap)
            qy = 20.0 / k_ + (two // 2) * (a_ss + 3 * gap)
            ang = 90.0 * q + tilt[two]
            fs = _rot(ang, 1.0, 0.0)
            ss = _rot(ang, 0.0, 1.0)
            for a in range(2):
                cx, cy = _rot(90.0 * q, qx + a * (a_fs + gap), qy)
                ss0 = two * a_ss
                fs0 = q * 2 * a_fs + a * a_fs
                lines += _panel(f"q{q}a{2 * two + a}", (fs0, fs0 + a_fs - 1),
                                (ss0, ss0 + a_ss - 1), (cx, cy), fs, ss)
    return Layout("cspad", "\n".join(lines), "cxi", "per-event",
                  {"clen": CSPAD_CLEN_PATH, "photon_energy": CSPAD_ENERGY_PATH})


def _modules(config: SynthConfig, what: str, res: float, n_mod: int, n_tiles: int,
             tile: tuple[int, int], tiles_fs: int, data: str, extra: list[str]) -> list[str]:
    """``n_mod`` modules in a ``(frame, n_mod, ss, fs)`` array (``dim1`` = module), each of
    ``n_tiles`` tiles of ``tile = (ss, fs)`` pixels, ``tiles_fs`` tiles side by side along
    fs; module m's ss runs along +x, fs along -y, modules in 4 quadrants around the beam."""
    k_ = config.shrink
    t_ss, t_fs = tile[0] // k_, tile[1] // k_
    gap = 2.0 / k_
    lines = _head(config, what, res, [
        f"data = {data}", "dim0 = %", "dim1 = 0", "dim2 = ss", "dim3 = fs", *extra,
    ])
    per_quad = n_mod // 4
    rows = n_tiles // tiles_fs
    mod_x = rows * (t_ss + gap)  # module length along x
    mod_y = tiles_fs * (t_fs + gap)
    for m in range(n_mod):
        q, j = divmod(m, per_quad)
        x0 = (15.0 / k_) if q in (0, 3) else -(15.0 / k_) - mod_x
        step = mod_y + 4 * gap
        # fs runs along -y: the corner is the module's top edge
        y0 = 10.0 / k_ + (per_quad - j) * step if q in (0, 1) else -10.0 / k_ - j * step
        for t in range(n_tiles):
            r, c = t % rows, t // rows
            ss0, fs0 = r * t_ss, c * t_fs
            corner = (x0 + r * (t_ss + gap), y0 - c * (t_fs + gap))
            lines += _panel(f"p{m}a{t}", (fs0, fs0 + t_fs - 1), (ss0, ss0 + t_ss - 1),
                            corner, (0.0, -1.0), (1.0, 0.0), (f"dim1 = {m}",))
    return lines


def _agipd(config: SynthConfig) -> Layout:
    lines = _modules(config, "AGIPD-1M-like detector (16 modules x 8 ASICs)", 5000.0, 16, 8,
                     (64, 128), 1, "/entry_1/instrument_1/detector_1/data", [
                         "mask = /entry_1/instrument_1/detector_1/mask",
                         "mask_good = 0x0", "mask_bad = 0xffff",
                         "photon_energy = 9300", "clen = 0.13", "adu_per_photon = 1",
                     ])
    return Layout("agipd", "\n".join(lines), "hdf5", "per-event")


def _lpd(config: SynthConfig) -> Layout:
    lines = _modules(config, "LPD-1M-like detector (16 modules x 16 tiles)", 2000.0, 16, 16,
                     (32, 128), 2, "/entry_1/instrument_1/detector_1/data", [
                         "mask = /entry_1/instrument_1/detector_1/mask",
                         "mask_good = 0x0", "mask_bad = 0xffff",
                         "photon_energy = 9300", "clen = 0.30", "adu_per_photon = 1",
                     ])
    return Layout("lpd", "\n".join(lines), "hdf5", "per-event")


def _jungfrau(config: SynthConfig) -> Layout:
    """32 modules (512 ss x 1024 fs) in 8 rows x 4 columns, stacked along ss in the array."""
    k_ = config.shrink
    m_ss, m_fs = 512 // k_, 1024 // k_
    gap = 36.0 / k_
    lines = _head(config, "JUNGFRAU-16M-like detector (32 modules)", 13333.3, [
        f"photon_energy = {config.photon_energy_eV:g}",
        "clen = 0.12", "adu_per_photon = 1",
        "data = /entry/data/data", "dim0 = %", "dim1 = ss", "dim2 = fs",
        "mask0_data = /data/mask",
        f"mask0_file = {config.name}_mask.h5",
        "mask0_goodbits = 0x0",
        "mask0_badbits = 0xffffffff",
    ])
    width = 4 * m_fs + 3 * gap
    height = 8 * m_ss + 7 * gap
    for m in range(32):
        row, col = divmod(m, 4)
        corner = (-width / 2 + col * (m_fs + gap) + 0.37,
                  -height / 2 + row * (m_ss + gap) + 0.21)
        lines += _panel(f"m{m}", (0, m_fs - 1), (m * m_ss, (m + 1) * m_ss - 1), corner,
                        (1.0, 0.0), (0.0, 1.0))
    return Layout("jungfrau16m", "\n".join(lines), "hdf5", "mask-file")


def _eiger(config: SynthConfig) -> Layout:
    """One panel of 4150 x 4371 (fs x ss) pixels; the module gaps are in the pixel mask."""
    k_ = config.shrink
    n_fs, n_ss = 4150 // k_, 4371 // k_
    lines = _head(config, "EIGER-16M-like detector (native master + data files)", 13333.3, [
        f"photon_energy = {config.photon_energy_eV:g}",
        "clen = 0.15", "adu_per_photon = 1",
        "data = /entry/data/data_000001", "dim0 = %", "dim1 = ss", "dim2 = fs",
        "mask = /entry/instrument/detector/detectorSpecific/pixel_mask",
        "mask_good = 0x0", "mask_bad = 0xffffffff",
    ])
    lines += _panel("e0", (0, n_fs - 1), (0, n_ss - 1), (-n_fs / 2 + 0.4, -n_ss / 2 + 0.3),
                    (1.0, 0.0), (0.0, 1.0))
    return Layout("eiger16m", "\n".join(lines), "eiger", "static")


def eiger_gaps(n_ss: int, n_fs: int, shrink: int) -> tuple[list[slice], list[slice]]:
    """Rows and columns of the EIGER-16M module gaps (514 x 1030 modules, 37 / 10 pixel
    gaps, scaled by ``shrink``)."""
    rows = [slice((514 + 37) * i - 37, (514 + 37) * i) for i in range(1, 8)]
    cols = [slice((1030 + 10) * i - 10, (1030 + 10) * i) for i in range(1, 4)]

    def scale(s: slice) -> slice:
        return slice(s.start // shrink, max(s.stop // shrink, s.start // shrink + 1))

    return [scale(s) for s in rows], [scale(s) for s in cols]


def _pilatus(config: SynthConfig) -> Layout:
    """3 x 5 PILATUS modules (487 fs x 195 ss, gaps 7 / 17 pixels) in one 1475 x 1043
    array; each module is a panel."""
    k_ = config.shrink
    m_fs, m_ss, g_fs, g_ss = 487 // k_, 195 // k_, max(7 // k_, 1), max(17 // k_, 1)
    lines = _head(config, "PILATUS-6M-like crop (3 x 5 modules, mini-CBF)", 5814.0, [
        f"photon_energy = {config.photon_energy_eV:g}",
        "clen = 0.130", "coffset = -0.000640", "adu_per_photon = 1",
        "flag_lessthan = 0",
    ])
    width, height = 3 * m_fs + 2 * g_fs, 5 * m_ss + 4 * g_ss
    for r in range(5):
        for c in range(3):
            fs0, ss0 = c * (m_fs + g_fs), r * (m_ss + g_ss)
            corner = (-width / 2 + fs0 - 0.31, -height / 2 + ss0 + 0.27)
            lines += _panel(f"m{r}{c}", (fs0, fs0 + m_fs - 1), (ss0, ss0 + m_ss - 1), corner,
                            (1.0, 0.0), (0.0, 1.0))
    return Layout("pilatus", "\n".join(lines), "cbf", "flag")
