"""CrystFEL detector geometry: the data model (:class:`Detector`, :class:`Panel`,
:class:`BadRegion`, :class:`MaskSpec`) and the errors and warnings of the parser.

Conventions used throughout (those of CrystFEL's ``crystfel_geometry(5)`` manual page and
``libcrystfel/src/detgeom.h``):

* **Data-array coordinates** (FS, SS) are positions within the 2-D slice of the HDF5 array
  that holds a panel.  All fs/ss numbers in streams, and ``min_fs`` ... ``max_ss`` in the
  geometry, are in this frame.  Panel bounds are **inclusive**: width = max_fs - min_fs + 1.
* **Panel-relative coordinates** are fs = FS - min_fs, ss = SS - min_ss.
* Pixel index i spans [i, i+1); its centre is at i + 0.5.  ``corner_x``/``corner_y`` is the
  outer corner of the first stored pixel, not its centre.
* Arrays are indexed ``[ss, fs]`` (slow scan first).
* Lab frame: x, y in pixels of the panel (multiply by 1/res for metres), +z along the beam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import StreamfilterError

__all__ = [
    "BadRegion",
    "Detector",
    "GeometryError",
    "GeometryWarning",
    "MaskSpec",
    "Panel",
    "UnknownPanelError",
]

#: h*c in eV * Angstrom, for wavelength <-> photon energy.
HC_EV_ANGSTROM = 12398.419843320026

# CrystFEL 0.12's constants (libcrystfel/src/utils.h), for the electron wavelength and the
# photon energy CrystFEL prints for it
_PLANCK = 6.62606896e-34  # J s
_C_VACUO = 299792458.0  # m/s
_ELECTRON_CHARGE = 1.6021773e-19  # C
_ELECTRON_MASS = 9.1093837015e-31  # kg


def electron_wavelength_m(volts: float) -> float:
    """Relativistic de Broglie wavelength (m) of electrons accelerated through ``volts`` V:
    lambda = h / sqrt(2 m e V*), V* = V (1 + e V / (2 m c^2)), with CrystFEL's constants
    (``el_V_to_lambda``); 200 kV gives 0.02508 A."""
    v_star = volts * (1.0 + volts * _ELECTRON_CHARGE / (2.0 * _ELECTRON_MASS * _C_VACUO**2))
    return _PLANCK / math.sqrt(2.0 * _ELECTRON_MASS * _ELECTRON_CHARGE * v_star)


#: CrystFEL supports mask0_ ... mask7_.
MAX_MASKS = 8


# ---------------------------------------------------------------------------------------------
# Errors


class GeometryError(StreamfilterError, ValueError):
    """A geometry file that cannot be used (a ValueError and a StreamfilterError).

    Attributes
    ----------
    source : str
        File name, or ``"<string>"`` / ``"<stream geometry>"``.
    line_no : int or None
        1-based line number of the offending statement (for a missing key: the line where the
        panel or bad region was first mentioned), None when no line applies.
    key : str or None
        The key concerned, e.g. ``"p0/corner_x"`` or ``"clen"``.
    message : str
        What is wrong.
    """

    def __init__(self, source: str, line_no: int | None, key: str | None, message: str):
        super().__init__(message, path=source, line_no=line_no, key=key)

    @property
    def source(self) -> str:
        return str(self.path)


class UnknownPanelError(GeometryError, KeyError):
    """A panel name that the geometry does not define (also a :class:`KeyError`)."""

    def __str__(self) -> str:
        return StreamfilterError.__str__(self)


class GeometryWarning(UserWarning):
    """Something in a geometry file that is accepted but probably not what was meant."""


# ---------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True)
class MaskSpec:
    """One of a panel's ``maskN_*`` definitions.

    Attributes
    ----------
    data : str
        HDF5 path of the mask array; may hold ``%`` path placeholders.
    file : str or None
        Separate mask file (``maskN_file``); None means the image file itself.
    goodbits, badbits : int
        A pixel is bad if ``(m & goodbits) != goodbits`` or ``(m & badbits) != 0``.
    """

    data: str
    file: str | None
    goodbits: int
    badbits: int


@dataclass
class Panel:
    """One detector panel.

    Attributes
    ----------
    name : str
        Panel name, as written in the stream's panel column.
    index : int
        Order of first mention in the geometry, 0-based.
    min_fs, max_fs, min_ss, max_ss : int
        Inclusive pixel range of the panel in **data-array** coordinates (within the 2-D slice
        of its array).
    corner_x, corner_y : float
        Lab position (pixels) of the outer corner of the first stored pixel (fs = ss = 0).
    fs, ss : tuple of float
        Lab vectors (x, y, z) in pixels for a +1 step along fs and ss.
    res : float
        Pixels per metre (1 / pixel pitch).
    coffset : float
        Extra z offset added to clen, metres.
    adu_per_photon, adu_per_eV : float or None
        Detector gain, used only for the Poisson part of sigma(I).  At most one is set: as in
        CrystFEL 0.10+, whichever is given last wins.
    max_adu : float
        Saturation level in ADU (+inf when absent).  Pixels strictly above it are saturated.
    data : str
        HDF5 path of the array holding the panel; may hold ``%`` path placeholders.
    dims : tuple
        Role of each array axis, slowest first: ``'ss'``, ``'fs'``, ``'%'`` (frame
        placeholder, filled from the event) or an int (fixed index).
    masks : tuple of MaskSpec
        ``mask0_*`` ... ``mask7_*`` in order.
    saturation_map, saturation_map_file : str or None
        Per-pixel saturation map (HDF5 path) and the file holding it (None: image file).
    flag_lessthan, flag_morethan, flag_equal : float or None
        Value flags (strict inequalities; ``flag_equal`` compares the value rounded to the
        nearest integer).  If a kind is given several times only the last is shown here;
        :attr:`flags` holds them all.
    mask_edge_pixels : int
        Width of a border of the panel that is marked bad.
    no_index : bool
        Whole panel bad.
    flags : tuple of (str, float)
        Every flag statement in order, kind one of ``'lessthan'``, ``'morethan'``, ``'equal'``.
    clen : float or str or None
        Per-panel camera length (metres, or an HDF5 path in mm), only in geometry files for
        CrystFEL <= 0.10; None otherwise.
    extra : dict
        Unknown or ignored keys, kept verbatim.
    line_no : int
        Line of first mention (for error messages).
    """

    name: str
    index: int
    min_fs: int
    max_fs: int
    min_ss: int
    max_ss: int
    corner_x: float
    corner_y: float
    fs: tuple[float, float, float]
    ss: tuple[float, float, float]
    res: float
    coffset: float = 0.0
    adu_per_photon: float | None = None
    adu_per_eV: float | None = None
    max_adu: float = math.inf
    data: str = "/data/data"
    dims: tuple[str | int, ...] = ("ss", "fs")
    masks: tuple[MaskSpec, ...] = ()
    saturation_map: str | None = None
    saturation_map_file: str | None = None
    flag_lessthan: float | None = None
    flag_morethan: float | None = None
    flag_equal: float | None = None
    mask_edge_pixels: int = 0
    no_index: bool = False
    flags: tuple[tuple[str, float], ...] = ()
    clen: float | str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    line_no: int = 0

    @property
    def width(self) -> int:
        """Number of pixels along fs (``max_fs - min_fs + 1``)."""
        return self.max_fs - self.min_fs + 1

    @property
    def height(self) -> int:
        """Number of pixels along ss (``max_ss - min_ss + 1``)."""
        return self.max_ss - self.min_ss + 1

    @property
    def pixel_pitch(self) -> float:
        """Pixel size in metres (``1 / res``)."""
        return 1.0 / self.res

    def adu_per_photon_at(self, photon_energy_eV: float) -> float:
        """Gain g (ADU per photon) at a photon energy, for the Poisson term of sigma(I).

        Parameters
        ----------
        photon_energy_eV : float
            Photon energy of the frame in eV (the chunk's ``photon_energy_eV``).

        Returns
        -------
        float
            ``adu_per_photon``, or ``adu_per_eV * photon_energy_eV``.
        """
        if self.adu_per_photon is not None:
            return self.adu_per_photon
        if self.adu_per_eV is not None:
            return self.adu_per_eV * photon_energy_eV
        raise GeometryError(
            "<geometry>",
            self.line_no or None,
            f"{self.name}/adu_per_photon",
            f"panel {self.name} has neither adu_per_photon nor adu_per_eV",
        )

    def contains(self, fs: np.ndarray | float, ss: np.ndarray | float) -> np.ndarray:
        """Whether data-array positions lie on this panel's pixel range.

        Parameters
        ----------
        fs, ss : array_like
            Data-array coordinates (as in streams).  The panel covers
            ``[min_fs, max_fs + 1) x [min_ss, max_ss + 1)``.

        Returns
        -------
        numpy.ndarray of bool
            Broadcast shape of ``fs`` and ``ss``.
        """
        fs = np.asarray(fs)
        ss = np.asarray(ss)
        return (
            (fs >= self.min_fs)
            & (fs < self.max_fs + 1)
            & (ss >= self.min_ss)
            & (ss < self.max_ss + 1)
        )

    def lab_xy(self, fs: np.ndarray | float, ss: np.ndarray | float) -> tuple:
        """Lab x, y (pixels) of panel-relative positions: ``corner + fs*fs_vec + ss*ss_vec``.

        ``fs = ss = 0`` is the panel corner; a pixel centre is at index + 0.5.
        """
        fs = np.asarray(fs, dtype=float)
        ss = np.asarray(ss, dtype=float)
        x = self.corner_x + fs * self.fs[0] + ss * self.ss[0]
        y = self.corner_y + fs * self.fs[1] + ss * self.ss[1]
        return x, y


@dataclass
class BadRegion:
    """A ``bad*/...`` region of the geometry.

    Either fs/ss (``min_fs`` ... ``max_ss``, inclusive, **data-array** coordinates of
    ``panel``) or x/y (``min_x`` ... ``max_y``, lab pixels, strict inequalities tested at
    each pixel's corner).  Unset bounds are None (CrystFEL treats them as 0 for fs/ss and as
    NaN, i.e. "never matches", for x/y).
    """

    name: str
    panel: str | None = None
    min_fs: int | None = None
    max_fs: int | None = None
    min_ss: int | None = None
    max_ss: int | None = None
    min_x: float | None = None
    max_x: float | None = None
    min_y: float | None = None
    max_y: float | None = None
    line_no: int = 0

    @property
    def is_fsss(self) -> bool:
        """True for an fs/ss region, False for an x/y region."""
        return any(v is not None for v in (self.min_fs, self.max_fs, self.min_ss, self.max_ss))


@dataclass
class Detector:
    """A parsed geometry: panels, bad regions and the global (beam/detector) values.

    Attributes
    ----------
    panels : list of Panel
        In order of first mention.
    bad_regions : list of BadRegion
    clen : float or str or None
        Camera length in metres, or an HDF5 path read per frame (see :meth:`clen_m`).
    photon_energy : float or str or None
        Photon energy in eV, or an HDF5 path read per frame (see :meth:`photon_energy_eV`).
    bandwidth : float or None
        Delta lambda / lambda.
    detector_shift_x, detector_shift_y : float or str or None
        Whole-detector shift, metres or an HDF5 path.
    source : str
        File name, ``"<string>"`` or ``"<stream geometry>"``.
    text : str
        The original text.
    wavelength : float or str or None
        ``wavelength`` key, metres (or a path); alternative to ``photon_energy``.
    electron_voltage : float or str or None
        ``electron_voltage`` key, volts (electron diffraction).
    clen_scale, photon_energy_scale, wavelength_scale, electron_voltage_scale, \
detector_shift_scale : float
        Factor that turns a value read from an HDF5 header into metres / eV / V (e.g. clen
        header values are mm unless the geometry gives a unit, so ``clen_scale = 1e-3``).
    groups, rigid_groups : dict
        ``group_*`` (0.11+) and ``rigid_group*`` (<= 0.10) hierarchy; kept, not used.
    extra : dict
        Unknown or unused global keys, kept verbatim.
    warnings : list of str
        Everything that was reported as a :class:`GeometryWarning` while parsing.
    """

    panels: list[Panel]
    bad_regions: list[BadRegion]
    clen: float | str | None
    photon_energy: float | str | None
    bandwidth: float | None
    detector_shift_x: float | str | None
    detector_shift_y: float | str | None
    source: str
    text: str
    wavelength: float | str | None = None
    electron_voltage: float | str | None = None
    clen_scale: float = 1e-3
    photon_energy_scale: float = 1.0
    wavelength_scale: float = 1.0
    electron_voltage_scale: float = 1.0
    detector_shift_scale: float = 1.0
    groups: dict[str, list[str]] = field(default_factory=dict)
    rigid_groups: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name = {p.name: p for p in self.panels}

    # -- lookup ------------------------------------------------------------------------------

    def panel(self, name: str) -> Panel:
        """The panel called ``name``; :class:`UnknownPanelError` (a KeyError) if none."""
        hit = self._by_name.get(name)
        if hit is None:  # panels may have been edited after construction
            self._by_name = {p.name: p for p in self.panels}
            hit = self._by_name.get(name)
        if hit is not None:
            return hit
        known = ", ".join(p.name for p in self.panels[:8])
        more = ", ..." if len(self.panels) > 8 else ""
        raise UnknownPanelError(
            self.source, None, None, f"no panel named '{name}' (panels: {known}{more})"
        )

    def panel_index_of(self, fs: np.ndarray | float, ss: np.ndarray | float) -> np.ndarray:
        """Panel index for data-array positions, for slabby (stream 2.1/2.2) layouts.

        Parameters
        ----------
        fs, ss : array_like
            Data-array coordinates.

        Returns
        -------
        numpy.ndarray of int
            Index into :attr:`panels`, -1 where no panel's range contains the point.

        Raises
        ------
        GeometryError
            If a point is claimed by two panels (e.g. EuXFEL layouts where every module
            shares the same fs/ss range): the panel cannot be deduced from fs/ss alone.
        """
        fs = np.asarray(fs, dtype=float)
        ss = np.asarray(ss, dtype=float)
        shape = np.broadcast(fs, ss).shape
        out = np.full(shape, -1, dtype=np.int64)
        for p in self.panels:
            inside = p.contains(fs, ss)
            clash = inside & (out >= 0)
            if np.any(clash):
                k = np.argwhere(clash)[0]
                other = self.panels[int(out[tuple(k)])].name
                raise GeometryError(
                    self.source,
                    None,
                    None,
                    f"position fs={np.broadcast_to(fs, shape)[tuple(k)]:g}, "
                    f"ss={np.broadcast_to(ss, shape)[tuple(k)]:g} lies on both panel "
                    f"{other} and panel {p.name}: the panel cannot be deduced from fs/ss",
                )
            out[inside] = p.index
        return out

    # -- values that may come from HDF5 headers -----------------------------------------------

    def _value(
        self,
        key: str,
        value: float | str | None,
        scale: float,
        header_values: Mapping[str, float] | None,
    ) -> float:
        if value is None:
            raise GeometryError(self.source, None, key, f"the geometry does not give {key}")
        if isinstance(value, str):
            if header_values is None or value not in header_values:
                raise GeometryError(
                    self.source,
                    None,
                    key,
                    f"{key} comes from the HDF5 header '{value}', which was not supplied",
                )
            return float(header_values[value]) * scale
        return float(value)

    def header_paths(self) -> list[str]:
        """HDF5 paths that the global values refer to (read per frame by the frame source)."""
        vals = (
            self.clen,
            self.photon_energy,
            self.wavelength,
            self.electron_voltage,
            self.detector_shift_x,
            self.detector_shift_y,
        )
        paths = [v for v in vals if isinstance(v, str)]
        paths += [p.clen for p in self.panels if isinstance(p.clen, str)]
        return list(dict.fromkeys(paths))

    def clen_m(
        self, header_values: Mapping[str, float] | None = None, panel: Panel | None = None
    ) -> float:
        """Camera length in metres (without the panel's ``coffset``).

        Parameters
        ----------
        header_values : mapping, optional
            HDF5 path -> value for this frame, needed when ``clen`` names a header field
            (header values are mm unless the geometry gave ``m``).
        panel : Panel, optional
            For old (<= 0.10) geometries with only a per-panel ``clen``.
        """
        if self.clen is None and panel is not None and panel.clen is not None:
            return self._value(f"{panel.name}/clen", panel.clen, 1e-3, header_values)
        return self._value("clen", self.clen, self.clen_scale, header_values)

    def photon_energy_eV(self, header_values: Mapping[str, float] | None = None) -> float:
        """Photon energy in eV from ``photon_energy`` or ``wavelength``.

        For re-integration prefer the chunk's ``photon_energy_eV``; this is the geometry's
        value (possibly an HDF5 header, see :meth:`clen_m`).  With ``electron_voltage``
        (electron diffraction) it is the energy of a photon of the electrons' wavelength
        (:func:`electron_wavelength_m`), the number CrystFEL prints as ``photon_energy_eV``.
        """
        if self.photon_energy is not None:
            return self._value(
                "photon_energy", self.photon_energy, self.photon_energy_scale, header_values
            )
        if self.wavelength is not None:
            wl = self._value("wavelength", self.wavelength, self.wavelength_scale, header_values)
            return HC_EV_ANGSTROM / (wl * 1e10)
        if self.electron_voltage is not None:
            volts = self._value(
                "electron_voltage", self.electron_voltage, self.electron_voltage_scale,
                header_values,
            )  # fmt: skip
            # what CrystFEL prints as photon_energy_eV for it (ph_lambda_to_eV)
            return _PLANCK * _C_VACUO / electron_wavelength_m(volts) / _ELECTRON_CHARGE
        raise GeometryError(
            self.source, None, "photon_energy", "the geometry gives no photon energy"
        )

    def detector_shift_m(
        self, header_values: Mapping[str, float] | None = None
    ) -> tuple[float, float]:
        """Whole-detector shift (x, y) in metres; (0, 0) when the geometry gives none."""
        if self.detector_shift_x is None and self.detector_shift_y is None:
            return 0.0, 0.0
        sx = self._value(
            "detector_shift_x", self.detector_shift_x, self.detector_shift_scale, header_values
        )
        sy = self._value(
            "detector_shift_y", self.detector_shift_y, self.detector_shift_scale, header_values
        )
        return sx, sy

    # -- static bad-pixel map ---------------------------------------------------------------

    def panel_bad_mask(
        self,
        panel: Panel | str,
        header_values: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """The data-independent part of a panel's bad-pixel map.

        Covers ``no_index``, ``mask_edge_pixels`` and the bad regions.  fs/ss regions are
        in data-array coordinates of their panel (inclusive); an x/y region marks pixel
        (fs, ss) when ``min_x < x < max_x`` and ``min_y < y < max_y`` for the lab position of
        the pixel's **corner** (integer fs, ss; CrystFEL's ``draw_bad_region_xy``), with the
        panel corner moved by the detector shift.  The data-dependent parts (``maskN``
        arrays, ``flag_*``, non-finite values) are applied by :mod:`streamfilter.frames`.

        Parameters
        ----------
        panel : Panel or str
        header_values : mapping, optional
            Needed only for x/y regions when ``detector_shift_*`` names an HDF5 header.

        Returns
        -------
        numpy.ndarray of bool, shape (height, width)
            Panel-relative, indexed ``[ss, fs]``; True = bad.
        """
        if isinstance(panel, str):
            panel = self.panel(panel)
        bad = np.zeros((panel.height, panel.width), dtype=bool)
        if panel.no_index:
            bad[:] = True
            return bad
        n = panel.mask_edge_pixels
        if n > 0:
            bad[:n, :] = True
            bad[-n:, :] = True
            bad[:, :n] = True
            bad[:, -n:] = True
        xy_regions = []
        for r in self.bad_regions:
            if r.is_fsss:
                if r.panel == panel.name:
                    fs0 = (r.min_fs or 0) - panel.min_fs
                    fs1 = (r.max_fs or 0) - panel.min_fs
                    ss0 = (r.min_ss or 0) - panel.min_ss
                    ss1 = (r.max_ss or 0) - panel.min_ss
                    if fs1 >= fs0 and ss1 >= ss0:
                        bad[ss0 : ss1 + 1, fs0 : fs1 + 1] = True
            else:
                xy_regions.append(r)
        if xy_regions:
            shift_x, shift_y = self.detector_shift_m(header_values)
            cnx = panel.corner_x + shift_x * panel.res
            cny = panel.corner_y + shift_y * panel.res
            fs = np.arange(panel.width, dtype=float)[np.newaxis, :]
            ss = np.arange(panel.height, dtype=float)[:, np.newaxis]
            x = fs * panel.fs[0] + ss * panel.ss[0] + cnx
            y = fs * panel.fs[1] + ss * panel.ss[1] + cny
            nan = math.nan
            for r in xy_regions:
                bad |= (
                    (x > _or(r.min_x, nan))
                    & (x < _or(r.max_x, nan))
                    & (y > _or(r.min_y, nan))
                    & (y < _or(r.max_y, nan))
                )
        return bad


def _or(v: float | None, default: float) -> float:
    return default if v is None else v
