"""Merged reflection lists as MTZ files (CCP4's binary format), through gemmi.

:func:`write_mtz` writes a :class:`~streamfilter.analysis.hkl.ReflectionList` (what
``streamfilter merge`` makes) as an MTZ that CCP4, Phenix, gemmi and reciprocalspaceship read;
:func:`read_mtz` reads one back as a ReflectionList, and :func:`read_reflections` reads either
kind of file (MTZ or CrystFEL ``.hkl``), which is what ``compare``, ``stats`` and
``--reference`` use.

Columns written
---------------
``H K L`` (type H), then, when the point group merges Friedel mates (a Laue group such as
``4/mmm``, ``mmm``, ``-1``): ``I`` (J, the merged mean intensity, ADU), ``SIGI`` (Q, its
standard error), ``NMEAS`` (I, the number of observations merged).  When it does not (``422``,
``mm2``, ...), Friedel mates are separate rows of the list and become anomalous pairs:
``I(+) SIGI(+) NMEAS(+) I(-) SIGI(-) NMEAS(-)`` (types K, M, I).  Two half-sets (``merge
--halves``) add ``I_HALF1 SIGI_HALF1 NMEAS_HALF1`` and the same for ``HALF2`` (missing where a
half lacks the reflection).  Indices are moved to the space group's standard (CCP4)
asymmetric unit.  MTZ stores every value as a 32-bit float.  One dataset (project
``streamfilter``, crystal ``crystal``, dataset ``merged``); its wavelength is 0 (not
recorded) unless given; the history holds the merge's audit lines.

Space group
-----------
An MTZ needs a space group, a merged list only has a point group.  The default is the
space group without screw axes or glides, with the cell's lattice centring (primitive when
no such group has it, and for CrystFEL's ``R``: rhombohedral axes), whose rotations are

* for a Laue group (Friedel mates merged): the Laue group's proper rotations, i.e. the
  Sohncke group of that Laue class (``4/mmm`` -> ``P 4 2 2``, ``mmm`` -> ``P 2 2 2``, ``-1``
  -> ``P 1``, ``2/m`` -> ``P 1 1 2`` (CrystFEL's unique axis c), ``2/m_uab`` -> ``P 1 2 1``,
  ``-3m1_H`` -> ``P 3 2 1``, ``-3_R`` -> ``R 3:R``; ``2/m_uab`` with a C-centred cell ->
  ``C 1 2 1``), since merged intensities of a chiral
  crystal are the mean of I(+) and I(-);
* otherwise the point group's own operations (``422`` -> ``P 4 2 2``, ``mm2`` -> ``P m m 2``).

The space group only labels the data (intensities do not depend on screw axes or centring);
give the true one with ``space_group=`` (``merge --space-group 'P 43 21 2'``).  It must have
the Laue class of the merging point group.

Reading
-------
The intensity column is the first of type J (with its sigma: the next Q column) unless a
label is given; without a J column, the first anomalous pair of K columns (each with its M
sigma) gives the rows h, k, l (``+``) and -h, -k, -l (``-``).  The number of measurements
comes from ``NMEAS``-like integer columns (``NMEAS``, ``N``, ``MULT``, ``MULTIPLICITY``, with
the intensity's suffix, e.g. ``NMEAS_HALF1`` for ``I_HALF1``); without one it is 1.  Rows
whose intensity is missing are left out.  Indices are mapped to CrystFEL's asymmetric unit of
the point group the file's space group implies (:func:`crystfel_point_group`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import gemmi
import numpy as np

from streamfilter.analysis.hkl import ReflectionList, read_hkl
from streamfilter.analysis.symmetry import (
    CRYSTFEL_POINT_GROUPS,
    PointGroup,
    PointGroupError,
    point_group,
)
from streamfilter.crystal import Cell
from streamfilter.errors import StreamfilterError

MTZ_MAGIC = b"MTZ "
_UNIQUE_AXIS_SUFFIXES = ("", "_uaa", "_uab", "_uac")
_NMEAS_NAMES = ("NMEAS", "N", "MULT", "MULTIPLICITY")


class MtzError(StreamfilterError):
    """An MTZ file that cannot be read or written as a merged reflection list."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message, path=path)


# --------------------------------------------------------------------------------------------
# Point group <-> space group
# --------------------------------------------------------------------------------------------


def _reciprocal_ops(sg: gemmi.SpaceGroup) -> np.ndarray:
    """Distinct reciprocal-space rotations (n, 3, 3) of a space group (M = R^T, as
    :mod:`~streamfilter.analysis.symmetry` holds them)."""
    rots = np.array([op.rot for op in sg.operations().sym_ops], dtype=np.int64) // gemmi.Op.DEN
    flat = np.unique(np.transpose(rots, (0, 2, 1)).reshape(len(rots), 9), axis=0)
    return flat.reshape(-1, 3, 3)


def _same_ops(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def _laue_ops(ops: np.ndarray) -> np.ndarray:
    flat = np.unique(np.concatenate([ops, -ops]).reshape(-1, 9), axis=0)
    return flat.reshape(-1, 3, 3)


# lattice-centring translations (units of 1/24), CrystFEL's letters ('H': R-centred, hexagonal
# axes; 'R': rhombohedral axes, primitive)
_CENTRING_VECTORS = {
    "A": [[0, 12, 12]], "B": [[12, 0, 12]], "C": [[12, 12, 0]], "I": [[12, 12, 12]],
    "F": [[0, 12, 12], [12, 0, 12], [12, 12, 0]], "H": [[16, 8, 8], [8, 16, 16]],
}  # fmt: skip


def default_space_group(pg: PointGroup, centering: str = "P") -> gemmi.SpaceGroup:
    """The space group :func:`write_mtz` labels a list merged in ``pg`` with (module docs),
    with the cell's lattice centring when a space group of these rotations has it."""
    ops = pg.ops
    if pg.is_centrosymmetric:
        ops = ops[np.linalg.det(ops.astype(np.float64)) > 0]
    group = gemmi.GroupOps([_op_from_reciprocal(m) for m in ops])
    sg = None
    if centering in _CENTRING_VECTORS:
        group.cen_ops = [[0, 0, 0], *_CENTRING_VECTORS[centering]]
        sg = gemmi.find_spacegroup_by_ops(group)
        group.cen_ops = [[0, 0, 0]]
    sg = sg or gemmi.find_spacegroup_by_ops(group)
    if sg is None:  # pragma: no cover - every CrystFEL point group has one (tested)
        raise StreamfilterError(f"no space group found for point group {pg.symbol}")
    return sg


def _op_from_reciprocal(m: np.ndarray) -> gemmi.Op:
    op = gemmi.Op()
    op.rot = (np.asarray(m).T * gemmi.Op.DEN).astype(int).tolist()
    return op


def space_group_for(
    pg: PointGroup, name: str | None = None, centering: str = "P"
) -> gemmi.SpaceGroup:
    """``name`` (checked against ``pg``'s Laue class) or :func:`default_space_group`.

    Raises
    ------
    StreamfilterError
        Unknown space-group name, or one of another Laue class than ``pg``.
    """
    if name is None:
        return default_space_group(pg, centering)
    try:
        sg = gemmi.SpaceGroup(name)
    except (ValueError, RuntimeError):
        raise StreamfilterError(f"unknown space group {name!r}") from None
    if not _same_ops(_laue_ops(_reciprocal_ops(sg)), pg.laue().ops):
        raise StreamfilterError(
            f"space group {sg.xhm()} (Laue class {sg.laue_str()}) does not match point group "
            f"{pg.symbol} (Laue group {pg.laue().symbol}): give a space group of that Laue class "
            "in the same setting"
        )
    return sg


def crystfel_point_group(sg: gemmi.SpaceGroup, *, anomalous: bool = False) -> PointGroup:
    """The CrystFEL point group of data in space group ``sg``: its Laue group for mean
    intensities, its own point group for anomalous pairs (``anomalous=True``)."""
    ops = _reciprocal_ops(sg)
    target = ops if anomalous else _laue_ops(ops)
    for base in CRYSTFEL_POINT_GROUPS:
        for suffix in _UNIQUE_AXIS_SUFFIXES:
            try:
                pg = point_group(base + suffix)
            except PointGroupError:
                continue
            if _same_ops(pg.ops, target):
                return pg
    raise StreamfilterError(f"space group {sg.xhm()} has no CrystFEL point group")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Rows of an MTZ being built: standard-ASU keys and their column values."""

    hkl: np.ndarray  # (n, 3) int
    columns: dict[str, np.ndarray]


def _to_asu(refl: ReflectionList, sg: gemmi.SpaceGroup) -> tuple[np.ndarray, np.ndarray]:
    """Standard-ASU indices (n, 3) and whether each row is the Friedel ``+`` member."""
    asu = gemmi.ReciprocalAsu(sg)
    gops = sg.operations()
    out = np.empty((len(refl), 3), np.int32)
    plus = np.empty(len(refl), bool)
    for i, hkl in enumerate(zip(refl.h.tolist(), refl.k.tolist(), refl.l.tolist())):
        new, isym = asu.to_asu(hkl, gops)
        out[i] = new
        plus[i] = isym % 2 == 1
    return out, plus


def _place(keys: np.ndarray, where: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    col = np.full(keys.shape[0], fill, np.float64)
    col[where] = values
    return col


def _value_columns(
    uniq: np.ndarray, hkl: np.ndarray, plus: np.ndarray, refl: ReflectionList,
    suffix: str, anomalous: bool, what: str,
) -> dict[str, np.ndarray]:  # fmt: skip
    """``I``, ``SIGI``, ``NMEAS`` (+ ``suffix``; ``(+)``/``(-)`` pairs when ``anomalous``)
    of ``refl``'s rows (standard-ASU ``hkl``, Friedel ``plus``) placed on the rows ``uniq``."""
    keys = {tuple(r): i for i, r in enumerate(uniq.tolist())}
    idx = np.array([keys.get(tuple(r), -1) for r in hkl.tolist()], np.int64)
    if np.any(idx < 0):
        raise StreamfilterError(f"{what} has reflections the whole list has not")
    cols: dict[str, np.ndarray] = {}
    signs = (("(+)", plus), ("(-)", ~plus)) if anomalous else (("", np.ones_like(plus)),)
    for sign, sel in signs:
        if np.unique(idx[sel]).size != np.count_nonzero(sel):
            raise StreamfilterError(
                f"{what} is not merged in the point group of the MTZ's space group: several "
                "rows are equivalent"
            )
        cols[f"I{suffix}{sign}"] = _place(uniq, idx[sel], refl.I[sel], math.nan)
        cols[f"SIGI{suffix}{sign}"] = _place(uniq, idx[sel], refl.sigma[sel], math.nan)
        cols[f"NMEAS{suffix}{sign}"] = _place(uniq, idx[sel], refl.nmeas[sel], 0)
    return cols


def _build_rows(
    refl: ReflectionList,
    sg: gemmi.SpaceGroup,
    anomalous: bool,
    halves: tuple[ReflectionList, ReflectionList] | None,
) -> _Rows:
    hkl, plus = _to_asu(refl, sg)
    uniq = np.unique(hkl, axis=0).reshape(-1, 3)
    cols = _value_columns(uniq, hkl, plus, refl, "", anomalous, "the reflection list")
    for n, half in enumerate(halves or (), start=1):
        hh, hplus = _to_asu(half, sg)
        cols.update(_value_columns(uniq, hh, hplus, half, f"_HALF{n}", anomalous,
                                   f"half-set {n}"))  # fmt: skip
    return _Rows(uniq, cols)


_COLUMN_TYPES = {"I": "J", "SIGI": "Q", "NMEAS": "I", "I(+)": "K", "I(-)": "K",
                 "SIGI(+)": "M", "SIGI(-)": "M", "NMEAS(+)": "I", "NMEAS(-)": "I"}  # fmt: skip


def _column_type(label: str) -> str:
    return _COLUMN_TYPES[re.sub(r"_HALF\d", "", label)]


def make_mtz(
    refl: ReflectionList,
    cell: Cell,
    pg: PointGroup,
    *,
    space_group: str | None = None,
    halves: tuple[ReflectionList, ReflectionList] | None = None,
    wavelength_A: float = 0.0,  # noqa: N803
    title: str = "",
    history: list[str] | None = None,
) -> gemmi.Mtz:
    """The merged list as a :class:`gemmi.Mtz` (columns and space group: module docs).

    Parameters
    ----------
    refl : ReflectionList
        Merged in ``pg`` (CrystFEL's asymmetric unit or any other representatives).
    cell : Cell
        Unit cell, Angstrom and degrees.
    pg : PointGroup
        Merging point group; decides mean (J) or anomalous (K) columns.
    space_group : str, optional
        Space-group name (gemmi/Hermann-Mauguin, e.g. ``"P 43 21 2"``); default
        :func:`default_space_group`.
    halves : pair of ReflectionList, optional
        Half-set merges (rows a subset of ``refl``'s), written as ``*_HALF1``/``*_HALF2``.
    wavelength_A : float
        Dataset wavelength in Angstrom (0: unknown).
    title, history : str, list of str
        MTZ title and history lines (the audit trail).
    """
    if len(refl) == 0:
        raise StreamfilterError("no merged reflections: an MTZ needs at least one")
    sg = space_group_for(pg, space_group, cell.centering)
    rows = _build_rows(refl, sg, not pg.is_centrosymmetric, halves)
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = sg
    mtz.set_cell_for_all(gemmi.UnitCell(*cell.parameters))
    mtz.title = title[:70]
    mtz.history = [h[:80] for h in (history or [])]
    ds = mtz.add_dataset("merged")
    ds.project_name = "streamfilter"
    ds.crystal_name = "crystal"
    ds.wavelength = float(wavelength_A)
    for label in rows.columns:
        mtz.add_column(label, _column_type(label))
    data = np.column_stack([rows.hkl.astype(np.float32)]
                           + [c.astype(np.float32) for c in rows.columns.values()])  # fmt: skip
    mtz.set_data(data)
    mtz.sort()
    return mtz


def write_mtz(path: str | os.PathLike, refl: ReflectionList, cell: Cell, pg: PointGroup,
              **options) -> gemmi.Mtz:  # fmt: skip
    """Write :func:`make_mtz`'s MTZ to ``path`` (appears only when complete); returns it."""
    mtz = make_mtz(refl, cell, pg, **options)
    target = os.fspath(path)
    tmp = os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.partial")
    try:
        mtz.write_to_file(tmp)
        os.replace(tmp, target)
    except (OSError, RuntimeError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise MtzError(target, f"cannot write MTZ ({e})") from None
    return mtz


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def is_mtz_file(path: str) -> bool:
    """Whether ``path`` starts with the MTZ magic bytes (``"-"`` never does)."""
    if path == "-":
        return False
    try:
        with open(path, "rb") as f:
            return f.read(4) == MTZ_MAGIC
    except OSError:
        return False


def _open_mtz(path: str) -> gemmi.Mtz:
    if not os.path.exists(path):
        raise MtzError(path, "no such file")
    try:
        return gemmi.read_mtz_file(path)
    except (RuntimeError, ValueError) as e:
        raise MtzError(path, f"not a readable MTZ file ({e})") from None


def _next_of_type(mtz: gemmi.Mtz, label: str, kind: str) -> str | None:
    labels = mtz.column_labels()
    types = [c.type for c in mtz.columns]
    i = labels.index(label)
    for j in range(i + 1, len(labels)):
        if types[j] == kind:
            return labels[j]
    return None


def _nmeas_label(mtz: gemmi.Mtz, intensity: str) -> str | None:
    ints = [c.label for c in mtz.columns if c.type == "I"]
    suffix = intensity[1:] if intensity.startswith("I") else ""
    for name in _NMEAS_NAMES:
        for label in (name + suffix, name):
            if label in ints:
                return label
    return None


def _choose_columns(mtz: gemmi.Mtz, path: str, column: str | None) -> tuple[str, str, bool]:
    """(intensity label, sigma label, anomalous) of the list to read."""
    types = {c.label: c.type for c in mtz.columns}
    if column is not None:
        if column not in types:
            raise MtzError(path, f"no column {column!r} (columns: {' '.join(types)})")
        if types[column] not in ("J", "K"):
            raise MtzError(path, f"column {column!r} is of type {types[column]}, not an "
                                 "intensity (J or K)")  # fmt: skip
        label = column
    else:
        js = [lab for lab, t in types.items() if t == "J"]
        ks = [lab for lab, t in types.items() if t == "K"]
        if not js and not ks:
            raise MtzError(path, "no intensity column (type J or K): columns "
                                 + " ".join(f"{lab}({t})" for lab, t in types.items()))  # fmt: skip
        label = js[0] if js else ks[0]
    sigma_type = "Q" if types[label] == "J" else "M"
    sigma = _next_of_type(mtz, label, sigma_type)
    if sigma is None:
        raise MtzError(path, f"no sigma column (type {sigma_type}) after {label!r}")
    return label, sigma, types[label] == "K"


def read_mtz(path: str | os.PathLike, column: str | None = None) -> ReflectionList:
    """Read merged intensities from an MTZ as a :class:`ReflectionList` (module docs).

    Parameters
    ----------
    path : str or path-like
    column : str, optional
        Label of the intensity column (type J, or K for one member of an anomalous pair);
        default the first J column, else the first K pair.

    Returns
    -------
    ReflectionList
        Indices in CrystFEL's asymmetric unit of the file's point group (``symmetry``),
        sorted by h, k, l; I and sigma as stored (ADU for streamfilter's files); ``notes``
        the MTZ history.

    Raises
    ------
    MtzError
        Unreadable file, no such column, no intensity or sigma column.
    """
    name = os.fspath(path)
    mtz = _open_mtz(name)
    label, sigma, anomalous = _choose_columns(mtz, name, column)
    data = np.asarray(mtz, dtype=np.float64).reshape(-1, len(mtz.columns))
    labels = mtz.column_labels()
    hkl = data[:, :3].astype(np.int64)
    parts = [(label, sigma, hkl)]
    if anomalous and column is None:
        minus = _next_of_type(mtz, sigma, "K")
        if minus is not None:
            parts.append((minus, _next_of_type(mtz, minus, "M") or "", -hkl))
    rows = []
    for lab, sig, idx in parts:
        if sig not in labels:
            raise MtzError(name, f"no sigma column (type M) after {lab!r}")
        i = data[:, labels.index(lab)].astype(np.float64)
        n_label = _nmeas_label(mtz, lab)
        n = data[:, labels.index(n_label)] if n_label else np.ones(len(i))
        ok = np.isfinite(i)
        rows.append((idx[ok], i[ok], data[ok, labels.index(sig)].astype(np.float64),
                     np.rint(n[ok]).astype(np.int64)))  # fmt: skip
    hkl = np.concatenate([r[0] for r in rows])
    pg = crystfel_point_group(mtz.spacegroup, anomalous=anomalous)
    h, k, l = pg.asymmetric_indices(hkl[:, 0], hkl[:, 1], hkl[:, 2])  # noqa: E741
    out = ReflectionList(h, k, l, np.concatenate([r[1] for r in rows]),
                         np.concatenate([r[2] for r in rows]),
                         np.concatenate([r[3] for r in rows]), None, pg.symbol,
                         list(mtz.history))  # fmt: skip
    return out.sorted()


def mtz_cell(path: str | os.PathLike) -> Cell:
    """The unit cell of an MTZ, the lattice centring from its space group (CrystFEL's
    letters: an R-centred group in hexagonal axes is ``H``)."""
    name = os.fspath(path)
    mtz = _open_mtz(name)
    c = mtz.get_cell()
    letter = mtz.spacegroup.centring_type() if mtz.spacegroup else "P"
    return Cell(c.a, c.b, c.c, c.alpha, c.beta, c.gamma, "H" if letter == "R" else letter,
                f"cell of {name}")  # fmt: skip


def half_columns(path: str | os.PathLike) -> bool:
    """Whether an MTZ has the ``I_HALF1``/``I_HALF2`` columns ``merge --halves`` writes."""
    labels = _open_mtz(os.fspath(path)).column_labels()
    return "I_HALF1" in labels and "I_HALF2" in labels


def is_reflection_list(path: str) -> bool:
    """Whether ``path`` is a merged reflection list: an MTZ or a CrystFEL ``.hkl``."""
    from streamfilter.analysis.hkl import is_hkl_file

    return is_mtz_file(path) or is_hkl_file(path)


def read_reflections(path: str | os.PathLike, column: str | None = None) -> ReflectionList:
    """A merged list from an MTZ (:func:`read_mtz`, ``column`` as there) or a CrystFEL
    ``.hkl`` (:func:`~streamfilter.analysis.hkl.read_hkl`; ``column`` does not apply)."""
    name = os.fspath(path)
    if is_mtz_file(name):
        return read_mtz(name, column)
    return read_hkl(name)
