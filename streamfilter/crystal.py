"""The crystal lattice: unit cell, resolution 1/d, centring absences and small text parsers.

Units: 1/d in nm^-1 everywhere (CrystFEL's unit for reciprocal vectors and resolution
shells); :func:`invA` and :func:`d_A` convert it to Angstrom^-1 and to d in Angstrom.  Cell
lengths of :class:`Cell` are in Angstrom, angles in degrees.

Also here: reading unit-cell files (CrystFEL ``.cell`` or a PDB ``CRYST1`` line), and the
command-line value parsers for ``--int-radius`` (:func:`parse_int_radius`) and a Miller-index
triple (:func:`parse_hkl`), so every command reads them the same way.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StreamfilterError

__all__ = [
    "Cell",
    "CellFormatError",
    "centring_absent",
    "d_A",
    "invA",
    "median_cell",
    "one_over_d",
    "parse_cell",
    "parse_hkl",
    "parse_int_radius",
    "read_cell",
]

#: Lattice centring letters CrystFEL knows.
CENTRINGS = ("P", "A", "B", "C", "I", "F", "R", "H")


class CellFormatError(StreamfilterError):
    """A unit-cell file (CrystFEL ``.cell`` or PDB ``CRYST1``) that cannot be used.

    Parameters
    ----------
    source : str
        File name, or a description such as ``"unit-cell block of run.stream"``.
    line_no : int or None
        1-based line, when the problem is on one line.
    message : str
        What is wrong.
    """

    def __init__(self, source: str, line_no: int | None, message: str) -> None:
        super().__init__(message, path=source, line_no=line_no)

    @property
    def source(self) -> str:
        return str(self.path)


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


def one_over_d(h: Any, k: Any, l: Any, astar: Any, bstar: Any, cstar: Any) -> np.ndarray:  # noqa: E741
    """1/d in nm^-1 of Miller indices, from the reciprocal basis vectors.

    Parameters
    ----------
    h, k, l : array_like of int
        Miller indices (any shape, all the same).
    astar, bstar, cstar : array_like
        Reciprocal basis vectors (3,), nm^-1, in any Cartesian frame.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``h``: \\|h a* + k b* + l c*\\|.
    """
    q = np.outer(h, astar) + np.outer(k, bstar) + np.outer(l, cstar)
    return np.sqrt((q * q).sum(axis=1)).reshape(np.shape(h))


def invA(one_over_d_nm: Any) -> Any:  # noqa: N802
    """1/d in Angstrom^-1 from 1/d in nm^-1."""
    return one_over_d_nm / 10.0


def d_A(one_over_d_nm: Any) -> Any:  # noqa: N802
    """d in Angstrom from 1/d in nm^-1 (no guard against 0).

    The conversion is its own inverse: ``d_A(d)`` is also 1/d in nm^-1 of d in Angstrom.
    """
    return 10.0 / one_over_d_nm


def centring_absent(h: Any, k: Any, l: Any, centering: str | None) -> np.ndarray:  # noqa: E741
    """Reflections absent because of the lattice centring (CrystFEL's ``forbidden_reflection``
    in ``libcrystfel/src/symmetry.c``); screw-axis and glide absences are not included.

    ``centering`` is one of :data:`CENTRINGS` (case-insensitive; None means P).  ``H`` is the
    rhombohedral lattice in hexagonal axes, obverse setting.
    """
    c = (centering or "P").upper()
    if c == "A":
        return (k + l) % 2 != 0
    if c == "B":
        return (h + l) % 2 != 0
    if c == "C":
        return (h + k) % 2 != 0
    if c == "I":
        return (h + k + l) % 2 != 0
    if c == "F":
        return ((h + k) % 2 != 0) | ((h + l) % 2 != 0) | ((k + l) % 2 != 0)
    if c == "H":
        return (-h + k + l) % 3 != 0
    return np.zeros(np.shape(h), bool)


# --------------------------------------------------------------------------------------------
# Unit cell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A unit cell for resolution and completeness.

    Attributes
    ----------
    a, b, c : float
        Lengths in Angstrom.
    alpha, beta, gamma : float
        Angles in degrees.
    centering : str
        Lattice centring letter (P, A, B, C, I, F, R, H); decides the centring absences.
    source : str
        Where the cell came from (for the report).
    """

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float
    centering: str = "P"
    source: str = ""

    @property
    def parameters(self) -> tuple[float, float, float, float, float, float]:
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def reciprocal_basis(self) -> np.ndarray:
        """3 x 3 matrix with rows a*, b*, c* in Angstrom^-1 (gemmi's orthogonalisation)."""
        import gemmi

        return np.array(gemmi.UnitCell(*self.parameters).frac.mat)

    def one_over_d(self, h, k, l) -> np.ndarray:  # noqa: E741
        """1/d in nm^-1 of Miller indices (arrays of any shape)."""
        basis = self.reciprocal_basis()
        return 10.0 * one_over_d(h, k, l, basis[0], basis[1], basis[2])

    def max_index(self, one_over_d_max: float) -> tuple[int, int, int]:
        """Largest |h|, |k|, |l| that can reach 1/d (nm^-1), as check_hkl bounds its search."""
        lengths = (self.a, self.b, self.c)
        return tuple(int(one_over_d_max * x / 10.0) for x in lengths)  # type: ignore[return-value]


def parse_cell(text: str, source: str = "<cell>") -> Cell:
    """Parse a CrystFEL unit-cell file (``a = 79.1 A`` ... ``centering = P``) or a PDB CRYST1.

    Lengths may be in ``A`` or ``nm``; angles in ``deg`` (or ``rad``).

    Raises
    ------
    CellFormatError
        If a length or an angle is missing or unreadable.
    """
    for line in text.splitlines():
        if line.startswith("CRYST1"):
            return _parse_cryst1(line, source)
    values: dict[str, float] = {}
    centering = "P"
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";")[0].strip()
        m = re.match(r"^(\w+)\s*=\s*(\S+)\s*(\S*)", line)
        if not m:
            continue
        key, value, unit = m.group(1), m.group(2), m.group(3).lower()
        if key == "centering":
            centering = value.upper()
        elif key in ("a", "b", "c", "al", "be", "ga"):
            values[key] = _cell_value(key, value, unit, source, no)
    missing = [k for k in ("a", "b", "c", "al", "be", "ga") if k not in values]
    if missing:
        raise CellFormatError(source, None, f"missing {', '.join(missing)}")
    return Cell(
        values["a"],
        values["b"],
        values["c"],
        values["al"],
        values["be"],
        values["ga"],
        centering=centering,
        source=source,
    )


def _parse_cryst1(line: str, source: str) -> Cell:
    try:
        vals = [
            float(line[i:j]) for i, j in ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))
        ]
    except ValueError:
        raise CellFormatError(source, None, "unreadable CRYST1 line") from None
    sg = line[55:66].strip()
    cen = sg[0] if sg[:1] in CENTRINGS else "P"
    return Cell(*vals, centering=cen, source=source)


def _cell_value(key: str, value: str, unit: str, source: str, no: int) -> float:
    """One length (to Angstrom) or angle (to degrees) of a ``.cell`` file."""
    try:
        v = float(value)
    except ValueError:
        raise CellFormatError(source, no, f"cannot read {key} = {value!r}") from None
    if key in ("a", "b", "c"):
        if unit == "nm":
            v *= 10.0
        elif unit not in ("a", "", "angstrom"):
            raise CellFormatError(source, no, f"unknown length unit {unit!r}")
    elif unit == "rad":
        v = math.degrees(v)
    return v


def read_cell(path: str | os.PathLike) -> Cell:
    """Read a CrystFEL ``.cell`` file or a PDB file with a CRYST1 line (see :func:`parse_cell`)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise CellFormatError(str(path), None, e.strerror or "cannot read") from None
    return parse_cell(text, str(path))


def median_cell(crystals: Iterable[Any], source: str = "") -> Cell | None:
    """Median of the crystals' ``Cell parameters`` (nm converted to Angstrom), or None.

    ``crystals`` are objects with ``cell`` ((a, b, c in nm, angles in degrees) or None) and
    ``centering`` (a letter or None), e.g. stream crystals or merge observations.
    """
    crystals = list(crystals)
    cells = np.array([x.cell for x in crystals if x.cell is not None], dtype=np.float64)
    if cells.size == 0:
        return None
    med = np.median(cells, axis=0)
    cen = Counter(x.centering or "P" for x in crystals).most_common(1)[0][0]
    return Cell(
        med[0] * 10,
        med[1] * 10,
        med[2] * 10,
        med[3],
        med[4],
        med[5],
        cen,
        source or f"median of {len(cells)} crystal cells",
    )


# --------------------------------------------------------------------------------------------
# Command-line values
# --------------------------------------------------------------------------------------------


def parse_int_radius(text: str) -> tuple[float, float, float]:
    """``--int-radius R1,R2,R3`` (pixels) with 0 < R1 < R2 <= R3, as ``reintegrate`` reads it.

    Raises
    ------
    StreamfilterError
        Not three numbers, or not in that order.
    """
    try:
        r = tuple(float(x) for x in text.split(","))
    except ValueError:
        r = ()
    if len(r) != 3 or not (0 < r[0] < r[1] <= r[2]):
        raise StreamfilterError(f"--int-radius {text!r}: expected three radii r1 < r2 <= r3")
    return r  # type: ignore[return-value]


def parse_hkl(text: str) -> tuple[int, int, int]:
    """Miller indices ``H,K,L`` (commas and/or spaces between them).

    Raises
    ------
    StreamfilterError
        Not exactly three integers.
    """
    parts = [x for x in text.replace(" ", ",").split(",") if x]
    try:
        vals = tuple(int(x) for x in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise StreamfilterError(f"--hkl: expected 3 comma-separated integers, got {text!r}")
    return vals  # type: ignore[return-value]


class CellCollector(list):
    """A list that keeps only each appended crystal's ``cell`` and ``centering``.

    Given as ``crystals_out`` to :meth:`streamfilter.analysis.merge.Merger.add_stream`, it
    gathers what :func:`median_cell` needs without holding the crystals' reflections.
    """

    def append(self, crystal: Any) -> None:  # type: ignore[override]
        super().append(_CellOnly(crystal.cell, crystal.centering))


@dataclass(frozen=True)
class _CellOnly:
    cell: tuple[float, ...] | None
    centering: str | None


def choose_cell(
    cell_file: str | os.PathLike | None,
    headers: Iterable[Any] = (),
    crystals: Iterable[Any] = (),
    what: str = "the stream",
) -> Cell:
    """The unit cell for resolution and completeness: ``cell_file`` (``-p``), else the first
    stream header's unit-cell block (indexamajig's target cell), else the crystals' median.

    Raises
    ------
    StreamfilterError
        None of them gives a cell.
    """
    if cell_file:
        return read_cell(cell_file)
    for header in headers:
        text = header.cell_text if header is not None else None
        if text:
            return parse_cell(text, f"unit-cell block of {what}")
    cell = median_cell(crystals)
    if cell is None:
        raise StreamfilterError(f"no unit cell in {what}: give -p FILE (CrystFEL .cell or PDB)")
    return dataclasses.replace(cell, source=f"{cell.source} of {what}")
