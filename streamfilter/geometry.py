"""CrystFEL detector geometry (``.geom``) files.

A ``.geom`` file maps the pixels of one or more HDF5 arrays to detector panels in the
laboratory frame.  :func:`parse_geometry` turns the text (a file, or the block a stream
embeds between ``----- Begin geometry file -----`` and ``----- End geometry file -----``) into
a :class:`Detector` holding :class:`Panel` and :class:`BadRegion` objects.

Conventions used throughout (see ``spec/coordinates-and-geometry.md``):

* **Data-array coordinates** (FS, SS) are positions within the 2-D slice of the HDF5 array
  that holds a panel.  All fs/ss numbers in streams, and ``min_fs`` ... ``max_ss`` in the
  geometry, are in this frame.  Panel bounds are **inclusive**: width = max_fs - min_fs + 1.
* **Panel-relative coordinates** are fs = FS - min_fs, ss = SS - min_ss.
* Pixel index i spans [i, i+1); its centre is at i + 0.5.  ``corner_x``/``corner_y`` is the
  outer corner of the first stored pixel, not its centre.
* Arrays are indexed ``[ss, fs]`` (slow scan first).
* Lab frame: x, y in pixels of the panel (multiply by 1/res for metres), +z along the beam.

The line grammar is a pyparsing grammar applied line by line, so that every error can name
the file, the line and the key.  Lines, directions and ``value unit`` pairs whose only
whitespace is spaces and tabs (every real geometry file) are split by regular expressions
that give the grammar's parts; anything else goes to the grammar, built (and pyparsing
imported, ~40 ms) only then.  Behaviour follows CrystFEL 0.12 (``datatemplate.c``); where
it deliberately differs (stricter number parsing, trailing defaults only warn) the docstring
of :func:`parse_geometry` says so.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import StreamfilterError

__all__ = [
    "BadRegion",
    "Detector",
    "GeometryError",
    "GeometryWarning",
    "MaskSpec",
    "Panel",
    "UnknownPanelError",
    "load_geometry",
    "parse_geometry",
]

#: h*c in eV * Angstrom, for wavelength <-> photon energy.
HC_EV_ANGSTROM = 12398.419843320026

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
        value (possibly an HDF5 header, see :meth:`clen_m`).
        """
        if self.photon_energy is not None:
            return self._value(
                "photon_energy", self.photon_energy, self.photon_energy_scale, header_values
            )
        if self.wavelength is not None:
            wl = self._value("wavelength", self.wavelength, self.wavelength_scale, header_values)
            return HC_EV_ANGSTROM / (wl * 1e10)
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


def _dims_text(roles: tuple) -> str:
    return "(" + ", ".join(str(r) for r in roles) + ")"


def _or(v: float | None, default: float) -> float:
    return default if v is None else v


# ---------------------------------------------------------------------------------------------
# Grammar


class _Grammar:
    """The pyparsing grammar (``LINE``, ``DIRECTION``, ``VALUE_UNIT``), built on first use."""

    def __init__(self) -> None:
        import pyparsing as pp

        self.ParseException = pp.ParseException
        name = pp.Regex(r"[^\s=;/]+")
        comment = pp.Regex(r";.*")
        statement = (
            pp.Optional(name("owner") + pp.Suppress("/"))
            + name("key")
            + pp.Suppress("=")
            + pp.Regex(r"[^;]*")("value")
        )
        #: One line: an optional ``[owner/]key = value`` and an optional comment.
        self.LINE = pp.Optional(pp.Group(statement)("stmt")) + pp.Optional(comment) + pp.StringEnd()
        num = pp.Regex(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
        axis = pp.one_of("x y z")
        term = pp.Group(
            pp.Optional(pp.one_of("+ -"))("sign") + pp.Optional(num)("coef") + axis("axis")
        )
        signed = pp.Group(pp.one_of("+ -")("sign") + pp.Optional(num)("coef") + axis("axis"))
        #: A direction such as ``-0.0059x +0.99998y``.
        self.DIRECTION = term + pp.ZeroOrMore(signed) + pp.StringEnd()
        #: A value with an optional unit: ``12000 eV``, ``0.075``, ``/LCLS/clen mm``.
        self.VALUE_UNIT = (
            pp.Regex(r"\S+")("value") + pp.Optional(pp.Regex(r"\S+")("unit")) + pp.StringEnd()
        )


@functools.cache
def grammar() -> _Grammar:
    """The geometry grammar (pyparsing), the reference for the fast paths below."""
    return _Grammar()


# Fast paths: each accepts only text whose whitespace (between the grammar's tokens) is
# spaces, and then gives exactly the grammar's parts.  Like pyparsing's parse_string they
# expand tabs first; pyparsing skips " \t\n\r" between tokens, and a line from
# splitlines() holds no \n or \r.  tests/test_geometry_fast.py checks them against the
# grammar.
_FAST_LINE = re.compile(
    r" *(?:(?:(?P<owner>[^\s=;/]+) */ *)?(?P<key>[^\s=;/]+) *= *(?P<value>[^;]*))?(?:;.*)?"
)
_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_FAST_TERM = re.compile(rf" *([+-]?) *({_NUM})? *([xyz])")
_FAST_DIRECTION = re.compile(rf" *[+-]? *(?:{_NUM})? *[xyz](?: *[+-] *(?:{_NUM})? *[xyz])* *")
_FAST_VALUE_UNIT = re.compile(r" *(\S+)(?: +(\S+))? *")


def _split_line(line: str) -> tuple[str | None, str, str] | None:
    """``(owner, key, value)`` of a statement line, None for a blank or comment line.

    Raises ValueError when the grammar rejects the line.
    """
    line = line.expandtabs()
    m = _FAST_LINE.fullmatch(line)
    if m is not None:
        key = m["key"]
        return None if key is None else (m["owner"], key, m["value"])
    return _split_line_by_grammar(line)


def _split_line_by_grammar(line: str) -> tuple[str | None, str, str] | None:
    """What :func:`_split_line` gives, by the pyparsing grammar alone (the reference)."""
    g = grammar()
    try:
        res = g.LINE.parse_string(line, parse_all=True)
    except g.ParseException:
        raise ValueError(line) from None
    if "stmt" not in res:
        return None
    stmt = res["stmt"]
    return stmt.get("owner"), stmt["key"], stmt["value"]


def _direction_terms(value: str) -> list[tuple[str | None, str | None, str]]:
    """``(sign, coef, axis)`` of each term of a direction; ValueError if it is not one."""
    value = value.expandtabs()
    if _FAST_DIRECTION.fullmatch(value):
        return [(m[1] or None, m[2], m[3]) for m in _FAST_TERM.finditer(value)]
    g = grammar()
    try:
        terms = g.DIRECTION.parse_string(value, parse_all=True)
    except g.ParseException:
        raise ValueError(value) from None
    return [(t.get("sign"), t.get("coef"), t["axis"]) for t in terms]


def _value_unit(value: str) -> tuple[str, str | None]:
    """``value [unit]``; ValueError if it is not that."""
    value = value.expandtabs()
    m = _FAST_VALUE_UNIT.fullmatch(value)
    if m is not None:
        return m[1], m[2]
    g = grammar()
    try:
        res = g.VALUE_UNIT.parse_string(value, parse_all=True)
    except g.ParseException:
        raise ValueError(value) from None
    return res["value"], res.get("unit")


_GLOBAL_KEYS = {
    "clen",
    "photon_energy",
    "wavelength",
    "electron_voltage",
    "bandwidth",
    "detector_shift_x",
    "detector_shift_y",
    "peak_list",
    "peak_list_type",
}
#: Keys of CrystFEL <= 0.9 that are accepted and kept in ``extra`` without a warning.
_OLD_GLOBAL_KEYS = {
    "photon_energy_scale",
    "rail_direction",
    "clen_for_centering",
    "peak_info_location",
    "beam_bandwidth",
}
_BAD_KEYS = {"min_x", "max_x", "min_y", "max_y", "min_fs", "max_fs", "min_ss", "max_ss", "panel"}


class _Parser:
    """Builds a :class:`Detector` from geometry text; one instance per parse."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.panels: dict[str, dict] = {}
        self.bad: dict[str, BadRegion] = {}
        self.bad_lines: dict[str, dict[str, int]] = {}
        self.defaults: dict = self._initial_defaults()
        self.unused_defaults: tuple[int, str] | None = None
        self.glob: dict = {
            "clen": None,
            "photon_energy": None,
            "wavelength": None,
            "electron_voltage": None,
            "bandwidth": None,
            "detector_shift_x": None,
            "detector_shift_y": None,
            "clen_scale": 1e-3,
            "photon_energy_scale": 1.0,
            "wavelength_scale": 1.0,
            "electron_voltage_scale": 1.0,
            "detector_shift_scale": 1.0,
        }
        self.groups: dict[str, list[str]] = {}
        self.rigid_groups: dict[str, list[str]] = {}
        self.extra: dict[str, str] = {}
        self.warnings: list[str] = []

    @staticmethod
    def _initial_defaults() -> dict:
        return {
            "min_fs": None,
            "max_fs": None,
            "min_ss": None,
            "max_ss": None,
            "corner_x": None,
            "corner_y": None,
            "fs": None,
            "ss": None,
            "res": None,
            "coffset": 0.0,
            "adu_per_photon": None,
            "adu_per_eV": None,
            "max_adu": math.inf,
            "data": "/data/data",
            "dims": {0: "ss", 1: "fs"},
            "masks": {},
            "saturation_map": None,
            "saturation_map_file": None,
            "flags": [],
            "mask_edge_pixels": 0,
            "no_index": False,
            "clen": None,
            "extra": {},
        }

    # -- helpers -----------------------------------------------------------------------------

    def error(self, line_no: int | None, key: str | None, message: str) -> GeometryError:
        return GeometryError(self.source, line_no, key, message)

    def warn(self, line_no: int | None, key: str | None, message: str) -> None:
        text = str(GeometryError(self.source, line_no, key, message))
        self.warnings.append(text)
        warnings.warn(text, GeometryWarning, stacklevel=4)

    def to_float(self, value: str, line_no: int, key: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise self.error(line_no, key, f"expected a number, got '{value}'") from None
        if math.isnan(v):
            raise self.error(line_no, key, f"expected a number, got '{value}'")
        return v

    def to_int(self, value: str, line_no: int, key: str) -> int:
        v = self.to_float(value, line_no, key)
        if not math.isfinite(v) or v != int(v):
            raise self.error(line_no, key, f"expected an integer, got '{value}'")
        return int(v)

    def to_bits(self, value: str, line_no: int, key: str) -> int:
        try:
            v = int(value, 0)
        except ValueError:
            v = self.to_int(value, line_no, key)
        if v < 0:
            raise self.error(line_no, key, f"bit mask must not be negative, got '{value}'")
        return v

    def to_bool(self, value: str, line_no: int, key: str) -> bool:
        low = value.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        return self.to_int(value, line_no, key) != 0

    def to_direction(self, value: str, line_no: int, key: str) -> tuple[float, float, float]:
        try:
            terms = _direction_terms(value)
        except ValueError:
            raise self.error(
                line_no, key, f"invalid direction '{value}' (expected e.g. '-0.0059x +0.99998y')"
            ) from None
        vec = {"x": 0.0, "y": 0.0, "z": 0.0}
        for sign, coef_text, axis in terms:
            coef = float(coef_text or "1")
            if sign == "-":
                coef = -coef
            vec[axis] += coef
        return vec["x"], vec["y"], vec["z"]

    def value_unit(self, value: str, line_no: int, key: str) -> tuple[str, str | None]:
        try:
            return _value_unit(value)
        except ValueError:
            raise self.error(line_no, key, f"expected 'value [unit]', got '{value}'") from None

    @staticmethod
    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    # -- statements --------------------------------------------------------------------------

    def run(self) -> Detector:
        lines = self.text.splitlines()
        for line_no, line in enumerate(lines, start=1):
            try:
                stmt = _split_line(line)
            except ValueError:
                raise self.error(
                    line_no, None, f"cannot parse '{line.strip()}': expected 'key = value'"
                ) from None
            if stmt is None:
                continue
            owner, key, value = stmt
            value = value.strip()
            full_key = f"{owner}/{key}" if owner else key
            if value == "":
                raise self.error(line_no, full_key, "empty value")
            if owner is None:
                self.toplevel(key, value, line_no)
            elif owner.startswith("bad"):
                self.bad_field(owner, key, value, line_no)
            else:
                if owner.startswith("group") or owner.startswith("rigid_group"):
                    raise self.error(
                        line_no,
                        full_key,
                        "panel names must not start with 'group' or 'rigid_group'",
                    )
                if owner not in self.panels:
                    p = copy.deepcopy(self.defaults)
                    p["_index"] = len(self.panels)
                    p["_line"] = line_no
                    self.panels[owner] = p
                    self.unused_defaults = None
                self.panel_field(self.panels[owner], owner, key, value, line_no)
        return self.finish()

    def toplevel(self, key: str, value: str, line_no: int) -> None:
        g = self.glob
        if key == "clen":
            v, unit = self.value_unit(value, line_no, key)
            scale = self.length_scale(unit, line_no, key, header_default=1e-3)
            if self.is_number(v):
                g["clen"] = self.to_float(v, line_no, key) * (1.0 if unit is None else scale)
            else:
                g["clen"] = v
                g["clen_scale"] = scale
        elif key in ("detector_shift_x", "detector_shift_y"):
            v, unit = self.value_unit(value, line_no, key)
            scale = self.length_scale(unit, line_no, key, header_default=1.0)
            if self.is_number(v):
                g[key] = self.to_float(v, line_no, key) * scale
            else:
                g[key] = v
                g["detector_shift_scale"] = scale
        elif key == "photon_energy":
            v, unit = self.value_unit(value, line_no, key)
            scales = {None: 1.0, "eV": 1.0, "keV": 1e3}
            if unit not in scales:
                raise self.error(line_no, key, f"unknown unit '{unit}' (use eV or keV)")
            if self.is_number(v):
                g["photon_energy"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["photon_energy"] = v
                g["photon_energy_scale"] = scales[unit]
        elif key == "wavelength":
            v, unit = self.value_unit(value, line_no, key)
            scales = {"m": 1.0, "A": 1e-10}
            if unit not in scales:
                raise self.error(line_no, key, "wavelength needs a unit: 'm' or 'A'")
            if self.is_number(v):
                g["wavelength"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["wavelength"] = v
                g["wavelength_scale"] = scales[unit]
        elif key == "electron_voltage":
            v, unit = self.value_unit(value, line_no, key)
            scales = {"V": 1.0, "kV": 1e3}
            if unit not in scales:
                raise self.error(line_no, key, "electron_voltage needs a unit: 'V' or 'kV'")
            if self.is_number(v):
                g["electron_voltage"] = self.to_float(v, line_no, key) * scales[unit]
            else:
                g["electron_voltage"] = v
                g["electron_voltage_scale"] = scales[unit]
        elif key == "bandwidth":
            g["bandwidth"] = self.to_float(value, line_no, key)
        elif key in ("peak_list", "peak_list_type") or key in _OLD_GLOBAL_KEYS:
            self.extra[key] = value
        elif key.startswith("rigid_group"):
            self.rigid_groups[key] = [m.strip() for m in value.split(",") if m.strip()]
        elif key.startswith("group_"):
            members = [m.strip() for m in value.split(",") if m.strip()]
            if not members:
                raise self.error(line_no, key, "panel group has no members")
            self.groups[key[len("group_") :]] = members
        else:
            known = self.panel_field(self.defaults, None, key, value, line_no)
            if known:
                self.unused_defaults = (line_no, key)
            else:
                self.extra[key] = value
                del self.defaults["extra"][key]

    def length_scale(
        self, unit: str | None, line_no: int, key: str, header_default: float
    ) -> float:
        if unit is None:
            return header_default
        if unit == "mm":
            return 1e-3
        if unit == "m":
            return 1.0
        raise self.error(line_no, key, f"unknown length unit '{unit}' (use m or mm)")

    def panel_field(self, p: dict, name: str | None, key: str, value: str, line_no: int) -> bool:
        """Set one per-panel key on a panel (or on the defaults when ``name`` is None).

        Returns False for an unknown key (kept in ``extra`` with a warning).
        """
        full = f"{name}/{key}" if name else key
        p["_lines"] = {**p.get("_lines", {}), key: line_no}
        if key in ("min_fs", "max_fs", "min_ss", "max_ss"):
            v = self.to_int(value, line_no, full)
            if v < 0:
                raise self.error(line_no, full, f"must not be negative, got {v}")
            p[key] = v
        elif key in ("corner_x", "corner_y", "coffset", "max_adu"):
            p[key] = self.to_float(value, line_no, full)
            if key == "max_adu":
                self.warn(line_no, full, "max_adu is set; CrystFEL advises cutting at merge time")
        elif key == "res":
            v = self.to_float(value, line_no, full)
            if not v > 0:
                raise self.error(line_no, full, f"res must be positive, got {value}")
            p["res"] = v
        elif key in ("adu_per_photon", "adu_per_eV"):
            other = "adu_per_eV" if key == "adu_per_photon" else "adu_per_photon"
            p[key] = self.to_float(value, line_no, full)
            p[other] = None
        elif key == "data":
            if not value.startswith("/"):
                raise self.error(line_no, full, f"HDF5 path must start with '/': '{value}'")
            p["data"] = value
        elif key in ("saturation_map", "saturation_map_file"):
            p[key] = value
        elif key == "mask_edge_pixels":
            p[key] = self.to_int(value, line_no, full)
        elif key == "no_index":
            p["no_index"] = self.to_bool(value, line_no, full)
        elif key in ("flag_lessthan", "flag_morethan", "flag_equal"):
            p["flags"] = p["flags"] + [(key[len("flag_") :], self.to_float(value, line_no, full))]
        elif key in ("fs", "ss"):
            p[key] = self.to_direction(value, line_no, full)
        elif key == "clen":
            if name is not None or self.panels:
                self.warn(line_no, full, "per-panel clen is an error in CrystFEL 0.11+")
            v, unit = self.value_unit(value, line_no, full)
            p["clen"] = self.to_float(v, line_no, full) if self.is_number(v) else v
        elif key in ("mask", "mask_file", "mask_good", "mask_bad"):
            alias = {"mask": "data", "mask_file": "file", "mask_good": "goodbits"}
            self.mask_field(p, 0, alias.get(key, "badbits"), value, line_no, full)
        elif key.startswith("mask") and "_" in key:
            num, _, what = key[len("mask") :].partition("_")
            if not num.isdigit() or what not in ("data", "file", "goodbits", "badbits"):
                raise self.error(line_no, full, "invalid mask directive")
            if int(num) >= MAX_MASKS:
                raise self.error(line_no, full, f"at most {MAX_MASKS} masks (mask0 to mask7)")
            self.mask_field(p, int(num), what, value, line_no, full)
        elif key.startswith("dim"):
            self.dim_field(p, key, value, line_no, full)
        elif key == "badrow_direction":
            p["extra"][key] = value
        else:
            self.warn(line_no, full, "unknown key, kept but not used")
            p["extra"][key] = value
            return False
        return True

    def mask_field(self, p: dict, num: int, what: str, value: str, line_no: int, full: str) -> None:
        m = p["masks"].setdefault(num, {"data": None, "file": None, "goodbits": 0, "badbits": 0})
        if what == "data":
            if not value.startswith("/"):
                raise self.error(line_no, full, f"mask location must start with '/': '{value}'")
            m["data"] = value
        elif what == "file":
            m["file"] = value
        else:
            m[what] = self.to_bits(value, line_no, full)

    def dim_field(self, p: dict, key: str, value: str, line_no: int, full: str) -> None:
        num = key[len("dim") :]
        if not num.isdigit():
            raise self.error(line_no, full, "'dim' must be followed by a number, e.g. 'dim0'")
        if value in ("ss", "fs", "%"):
            role: str | int = value
        elif value.isdigit():
            role = int(value)
        else:
            raise self.error(
                line_no, full, f"invalid dimension '{value}' (expected ss, fs, % or an index)"
            )
        p["dims"] = {**p["dims"], int(num): role}

    def bad_field(self, name: str, key: str, value: str, line_no: int) -> None:
        full = f"{name}/{key}"
        r = self.bad.get(name)
        if r is None:
            r = self.bad[name] = BadRegion(name=name, line_no=line_no)
        if key not in _BAD_KEYS:
            self.warn(line_no, full, "unknown bad-region key, ignored")
            return
        self.bad_lines.setdefault(name, {})[key] = line_no
        if key == "panel":
            r.panel = value
            return
        is_fsss = key.endswith("_fs") or key.endswith("_ss")
        has_xy = any(v is not None for v in (r.min_x, r.max_x, r.min_y, r.max_y))
        if (is_fsss and has_xy) or (not is_fsss and r.is_fsss):
            raise self.error(line_no, full, "a bad region cannot mix x/y and fs/ss limits")
        if is_fsss:
            setattr(r, key, self.to_int(value, line_no, full))
        else:
            setattr(r, key, self.to_float(value, line_no, full))

    # -- assembly and checks -----------------------------------------------------------------

    def finish(self) -> Detector:
        if not self.panels:
            raise self.error(None, None, "no panel descriptions in the geometry")
        if self.unused_defaults is not None:
            line_no, key = self.unused_defaults
            self.warn(
                line_no,
                key,
                "statement after the last panel has no effect (defaults only apply to panels "
                "mentioned later; CrystFEL 0.10+ rejects such a file)",
            )
        panels = [self.make_panel(name, p) for name, p in self.panels.items()]
        det = Detector(
            panels=panels,
            bad_regions=[],
            clen=self.glob["clen"],
            photon_energy=self.glob["photon_energy"],
            bandwidth=self.glob["bandwidth"],
            detector_shift_x=self.glob["detector_shift_x"],
            detector_shift_y=self.glob["detector_shift_y"],
            source=self.source,
            text=self.text,
            wavelength=self.glob["wavelength"],
            electron_voltage=self.glob["electron_voltage"],
            clen_scale=self.glob["clen_scale"],
            photon_energy_scale=self.glob["photon_energy_scale"],
            wavelength_scale=self.glob["wavelength_scale"],
            electron_voltage_scale=self.glob["electron_voltage_scale"],
            detector_shift_scale=self.glob["detector_shift_scale"],
            groups=self.groups,
            rigid_groups=self.rigid_groups,
            extra=self.extra,
            warnings=self.warnings,
        )
        det.bad_regions = [self.check_bad_region(r, det) for r in self.bad.values()]
        return det

    def make_panel(self, name: str, p: dict) -> Panel:
        line_no = p["_line"]
        lines = p.get("_lines", {})

        def need(key: str, what: str):
            if p[key] is None:
                raise self.error(line_no, f"{name}/{key}", f"panel {name} needs {what}")
            return p[key]

        for k in ("min_fs", "max_fs", "min_ss", "max_ss"):
            need(k, "its pixel range (min_fs, max_fs, min_ss, max_ss)")
        for lo, hi in (("min_fs", "max_fs"), ("min_ss", "max_ss")):
            if p[hi] < p[lo]:
                raise self.error(
                    lines.get(hi, line_no),
                    f"{name}/{hi}",
                    f"panel {name}: {hi} ({p[hi]}) < {lo} ({p[lo]})",
                )
        need("corner_x", "corner_x")
        need("corner_y", "corner_y")
        need("fs", "an fs direction")
        need("ss", "an ss direction")
        need("res", "res (pixels per metre)")
        for key in ("corner_x", "corner_y", "res", "coffset"):  # inf would reach the maths
            if p[key] is not None and not math.isfinite(p[key]):
                raise self.error(
                    lines.get(key, line_no),
                    f"{name}/{key}",
                    f"panel {name}: {key} must be a finite number",
                )
        dims = self.check_dims(name, p["dims"], lines, line_no)
        masks = []
        for num in sorted(p["masks"]):
            m = p["masks"][num]
            mask_line = min(
                (
                    v
                    for k, v in lines.items()
                    if k.startswith(f"mask{num}_")
                    or (num == 0 and k in ("mask", "mask_file", "mask_good", "mask_bad"))
                ),
                default=line_no,
            )
            if m["data"] is None:
                raise self.error(
                    mask_line,
                    f"{name}/mask{num}_data",
                    f"panel {name}: mask {num} has a file or bits but no data location",
                )
            n_data = p["data"].count("%")
            if m["data"].count("%") > n_data:
                raise self.error(
                    mask_line,
                    f"{name}/mask{num}_data",
                    "a mask path cannot have more placeholders than the data path",
                )
            masks.append(MaskSpec(m["data"], m["file"], m["goodbits"], m["badbits"]))
        sat = p["saturation_map"]
        if sat is not None and sat.count("%") > p["data"].count("%"):
            raise self.error(
                lines.get("saturation_map", line_no),
                f"{name}/saturation_map",
                "a saturation map path cannot have more placeholders than the data path",
            )
        last = {kind: v for kind, v in p["flags"]}
        return Panel(
            name=name,
            index=p["_index"],
            min_fs=p["min_fs"],
            max_fs=p["max_fs"],
            min_ss=p["min_ss"],
            max_ss=p["max_ss"],
            corner_x=p["corner_x"],
            corner_y=p["corner_y"],
            fs=p["fs"],
            ss=p["ss"],
            res=p["res"],
            coffset=p["coffset"],
            adu_per_photon=p["adu_per_photon"],
            adu_per_eV=p["adu_per_eV"],
            max_adu=p["max_adu"],
            data=p["data"],
            dims=dims,
            masks=tuple(masks),
            saturation_map=sat,
            saturation_map_file=p["saturation_map_file"],
            flag_lessthan=last.get("lessthan"),
            flag_morethan=last.get("morethan"),
            flag_equal=last.get("equal"),
            mask_edge_pixels=p["mask_edge_pixels"],
            no_index=p["no_index"],
            flags=tuple(p["flags"]),
            clen=p["clen"],
            extra=dict(p["extra"]),
            line_no=line_no,
        )

    def check_dims(
        self, name: str, dims: dict[int, str | int], lines: dict[str, int], line_no: int
    ) -> tuple:
        n = max(dims) + 1
        missing = [i for i in range(n) if i not in dims]
        if missing:
            key = f"dim{missing[0] + 1}" if f"dim{missing[0] + 1}" in lines else f"dim{n - 1}"
            raise self.error(
                lines.get(key, line_no),
                f"{name}/dim{missing[0]}",
                f"panel {name}: dim{missing[0]} is not set",
            )
        roles = tuple(dims[i] for i in range(n))
        problem = None
        for role in ("ss", "fs"):
            if roles.count(role) != 1:
                problem = next((i for i, r in enumerate(roles) if r == role and i > 1), n - 1)
                break
        else:
            if roles.index("ss") > roles.index("fs"):
                problem = roles.index("fs")
        if problem is not None:
            raise self.error(
                lines.get(f"dim{problem}", line_no),
                f"{name}/dim{problem}",
                f"panel {name}: dims {_dims_text(roles)} need exactly one 'ss' axis followed by "
                "one 'fs' axis (dim0 = ss and dim1 = fs unless set)",
            )
        return roles

    def check_bad_region(self, r: BadRegion, det: Detector) -> BadRegion:
        xy = (r.min_x, r.max_x, r.min_y, r.max_y)
        if not r.is_fsss and all(v is None for v in xy):
            raise self.error(r.line_no, r.name, f"bad region {r.name} gives no coordinate range")
        if not r.is_fsss:
            if any(v is None for v in xy):
                self.warn(
                    r.line_no,
                    r.name,
                    f"bad region {r.name} lacks one of min_x/max_x/min_y/max_y and marks "
                    "nothing (as in CrystFEL)",
                )
            return r
        if r.panel is None:
            r.panel = self.guess_panel(r, det)
        if r.panel not in det._by_name:
            raise self.error(
                self.bad_lines[r.name].get("panel", r.line_no),
                f"{r.name}/panel",
                f"no such panel '{r.panel}' for bad region {r.name}",
            )
        p = det._by_name[r.panel]
        lo_fs, hi_fs = r.min_fs or 0, r.max_fs or 0
        lo_ss, hi_ss = r.min_ss or 0, r.max_ss or 0
        if lo_fs < p.min_fs or hi_fs > p.max_fs or lo_ss < p.min_ss or hi_ss > p.max_ss:
            raise self.error(
                r.line_no,
                r.name,
                f"bad region {r.name} (fs {lo_fs}-{hi_fs}, ss {lo_ss}-{hi_ss}) is outside "
                f"panel {p.name} (fs {p.min_fs}-{p.max_fs}, ss {p.min_ss}-{p.max_ss})",
            )
        return r

    def guess_panel(self, r: BadRegion, det: Detector) -> str:
        if len(det.panels) == 1:
            return det.panels[0].name
        lo = ((r.min_fs or 0), (r.min_ss or 0))
        hi = ((r.max_fs or 0), (r.max_ss or 0))
        owners = [p.name for p in det.panels if bool(p.contains(*lo)) and bool(p.contains(*hi))]
        if len(owners) == 1:
            self.warn(r.line_no, r.name, f"assuming {r.name}/panel = {owners[0]}")
            return owners[0]
        raise self.error(r.line_no, f"{r.name}/panel", f"bad region {r.name} needs a panel")


def parse_geometry(text: str, source: str = "<string>") -> Detector:
    """Parse the text of a CrystFEL geometry file.

    Parameters
    ----------
    text : str
        Geometry text (a ``.geom`` file, or the block a stream embeds).
    source : str
        Name used in error messages, e.g. the file name or ``"<stream geometry>"``.

    Returns
    -------
    Detector

    Raises
    ------
    GeometryError
        Malformed line or value, missing required per-panel key (pixel range, corner,
        fs/ss directions, res), inconsistent ``dimN``, bad region outside its panel, ...

    Notes
    -----
    Differences from CrystFEL 0.12 ``datatemplate.c``, all deliberate:

    * numbers are parsed strictly (``atof("12abc")`` would give 12; here it is an error);
    * statements after the last panel that only set defaults give a
      :class:`GeometryWarning` instead of rejecting the file, and a missing
      ``adu_per_photon``/``adu_per_eV``, ``clen`` or photon energy is only an error when the
      value is asked for (older geometries, as embedded in old streams, stay readable);
    * per-panel ``clen`` (CrystFEL <= 0.10) is accepted with a warning;
    * an fs/ss bad region without ``panel`` is assigned to the one panel whose range holds
      it (CrystFEL only guesses for single-panel detectors).
    """
    return _Parser(text, source).run()


def load_geometry(path: str | Path) -> Detector:
    """Read and parse a geometry file; see :func:`parse_geometry`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise GeometryError(str(path), None, None, f"cannot read geometry file: {e}") from e
    return parse_geometry(text, source=str(path))
