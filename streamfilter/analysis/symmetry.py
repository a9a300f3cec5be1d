"""Point groups named as CrystFEL names them, and CrystFEL's asymmetric unit.

CrystFEL's tools (``process_hkl``, ``partialator``, ``check_hkl``, ``compare_hkl``) take a point
group with ``-y``: ``1``, ``-1``, ``2/m``, ``mmm``, ``4/mmm``, ``422``, ``321_H``, ``-3m_R``,
``6/mmm``, ``m-3m``, ... with an optional unique-axis suffix (``2/m_uab``).  This module turns
such a symbol into the list of reciprocal-space operators, taken from gemmi's space-group tables
(never from a hand-written operator table), and reduces Miller indices to the representative
CrystFEL itself picks (``get_asymm`` in ``libcrystfel/src/symmetry.c``):

* among all symmetry equivalents of (h, k, l), those with no negative index are preferred;
* among those, the largest h wins, then the largest k, then the largest l.

For 4/mmm this is h >= k >= 0, l >= 0.  Friedel mates are merged only when the point group
contains the inversion (a Laue group), exactly as in CrystFEL; :meth:`PointGroup.laue` gives the
Laue group when Friedel mates must be merged whatever the given group.

Conventions
-----------
An operator is a 3 x 3 integer matrix M acting on the column vector (h, k, l):
``(h', k', l') = M @ (h, k, l)``.  gemmi stores real-space rotations R; the reciprocal-space
operator is ``M = R.T`` (``gemmi.Op.apply_to_hkl`` computes ``hkl @ R``).

Monoclinic groups without a suffix have CrystFEL's default unique axis **c** (``2/m`` is
``P 1 1 2/m``).  ``_uaa``/``_uab``/``_uac`` change the unique axis with CrystFEL's own
transformation (``getpg_arbitrary_ua``).  Trigonal groups need ``_H`` (hexagonal axes) or
``_R`` (rhombohedral axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gemmi
import numpy as np

from streamfilter.errors import StreamfilterError

# CrystFEL symbol -> gemmi space-group name of a primitive group with that point group.
_GEMMI_NAMES: dict[str, str] = {
    "1": "P 1",
    "-1": "P -1",
    "2": "P 1 1 2",
    "m": "P 1 1 m",
    "2/m": "P 1 1 2/m",
    "222": "P 2 2 2",
    "mm2": "P m m 2",
    "mmm": "P m m m",
    "4": "P 4",
    "-4": "P -4",
    "4/m": "P 4/m",
    "422": "P 4 2 2",
    "4mm": "P 4 m m",
    "-42m": "P -4 2 m",
    "-4m2": "P -4 m 2",
    "4/mmm": "P 4/m m m",
    "3_R": "R 3:R",
    "-3_R": "R -3:R",
    "32_R": "R 3 2:R",
    "3m_R": "R 3 m:R",
    "-3m_R": "R -3 m:R",
    "3_H": "P 3",
    "-3_H": "P -3",
    "321_H": "P 3 2 1",
    "312_H": "P 3 1 2",
    "3m1_H": "P 3 m 1",
    "31m_H": "P 3 1 m",
    "-3m1_H": "P -3 m 1",
    "-31m_H": "P -3 1 m",
    "6": "P 6",
    "-6": "P -6",
    "6/m": "P 6/m",
    "622": "P 6 2 2",
    "6mm": "P 6 m m",
    "-6m2": "P -6 m 2",
    "-62m": "P -6 2 m",
    "6/mmm": "P 6/m m m",
    "23": "P 2 3",
    "m-3": "P m -3",
    "432": "P 4 3 2",
    "-43m": "P -4 3 m",
    "m-3m": "P m -3 m",
}

#: Every point-group symbol CrystFEL accepts without a unique-axis suffix.
CRYSTFEL_POINT_GROUPS: tuple[str, ...] = tuple(_GEMMI_NAMES)

_LAUE_GROUPS = (
    "-1",
    "2/m",
    "mmm",
    "4/m",
    "4/mmm",
    "-3_R",
    "-3m_R",
    "-3_H",
    "-3m1_H",
    "-31m_H",
    "6/m",
    "6/mmm",
    "m-3",
    "m-3m",
)

# CrystFEL's change of basis for the unique-axis suffix (symmetry.c, getpg_arbitrary_ua).
_UNIQUE_AXIS_T = {
    "a": np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
    "b": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "c": np.eye(3, dtype=int),
}

_OFFSET = 1 << 15  # |h|, |k|, |l| must stay below this for the packed keys


class PointGroupError(StreamfilterError):
    """A point-group symbol that CrystFEL (and so streamfilter) does not know.

    Parameters
    ----------
    symbol : str
        The symbol as given (e.g. on the command line after ``-y``).
    reason : str
        What is wrong with it.
    """

    def __init__(self, symbol: str, reason: str) -> None:
        self.symbol = symbol
        self.reason = reason
        super().__init__(
            f"unknown point group {symbol!r}: {reason}. Known: {' '.join(CRYSTFEL_POINT_GROUPS)}"
            " (monoclinic and others may take _uaa/_uab/_uac; trigonal needs _H or _R)"
        )


def _gemmi_ops(base: str) -> np.ndarray:
    """Reciprocal-space operators (n, 3, 3) of a CrystFEL base symbol, from gemmi's tables."""
    sg = gemmi.find_spacegroup_by_name(_GEMMI_NAMES[base])
    rots = np.array([op.rot for op in sg.operations().sym_ops], dtype=np.int64)
    rots //= gemmi.Op.DEN
    return np.ascontiguousarray(np.transpose(rots, (0, 2, 1)))


def _unique_ops(ops: np.ndarray) -> np.ndarray:
    """Distinct operators, in a canonical order (so equal groups compare equal)."""
    flat = np.unique(ops.reshape(len(ops), 9), axis=0)
    return flat.reshape(-1, 3, 3)


def pack_hkl(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    """Pack Miller indices into one int64 key per reflection.

    Sorting the keys sorts by h, then k, then l (ascending), which is the order of CrystFEL's
    reflection lists.  Indices must lie in [-32768, 32767].
    """
    h = np.asarray(h, np.int64)
    k = np.asarray(k, np.int64)
    l = np.asarray(l, np.int64)  # noqa: E741
    return ((h + _OFFSET) << 32) | ((k + _OFFSET) << 16) | (l + _OFFSET)


def unpack_hkl(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_hkl`: int32 arrays h, k, l."""
    key = np.asarray(key, np.int64)
    h = (key >> 32) - _OFFSET
    k = ((key >> 16) & 0xFFFF) - _OFFSET
    l = (key & 0xFFFF) - _OFFSET  # noqa: E741
    return h.astype(np.int32), k.astype(np.int32), l.astype(np.int32)


@dataclass(frozen=True, eq=False)
class PointGroup:
    """A crystallographic point group acting on Miller indices.

    Attributes
    ----------
    symbol : str
        CrystFEL's name, as written after ``Symmetry:`` in a reflection list.
    ops : numpy.ndarray
        (n, 3, 3) int64 reciprocal-space operators, identity included, each acting on the
        column vector (h, k, l).
    """

    symbol: str
    ops: np.ndarray = field(repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PointGroup):
            return NotImplemented
        return self.symbol == other.symbol and np.array_equal(self.ops, other.ops)

    def __hash__(self) -> int:
        return hash((self.symbol, self.ops.tobytes()))

    @property
    def order(self) -> int:
        """Number of operators (the number of equivalents of a general reflection)."""
        return int(self.ops.shape[0])

    @property
    def is_centrosymmetric(self) -> bool:
        """True if the group contains the inversion, i.e. Friedel mates are merged."""
        minus_one = -np.eye(3, dtype=np.int64)
        return bool(np.any(np.all(self.ops == minus_one, axis=(1, 2))))

    def laue(self) -> PointGroup:
        """The Laue group: this group plus the inversion (itself when centrosymmetric)."""
        if self.is_centrosymmetric:
            return self
        ops = _unique_ops(np.concatenate([self.ops, -self.ops]))
        base, sep, suffix = self.symbol.partition("_")
        for cand in _LAUE_GROUPS:
            name = cand
            if sep and suffix.startswith("ua"):
                name = f"{cand}_{suffix}"
            try:
                pg = point_group(name)
            except PointGroupError:
                continue
            if pg.order == len(ops) and np.array_equal(pg.ops, ops):
                return pg
        raise AssertionError(f"no Laue group found for {self.symbol}")  # pragma: no cover

    def equivalents(self, h, k, l) -> np.ndarray:  # noqa: E741
        """All symmetry equivalents: int64 array (n_ops, N, 3) for N reflections."""
        h, k, l = (np.asarray(x, np.int64).reshape(-1) for x in (h, k, l))  # noqa: E741
        ops = self.ops[:, None, :, :]  # (n_ops, 1, 3, 3)
        return (ops[..., 0] * h[None, :, None] + ops[..., 1] * k[None, :, None]
                + ops[..., 2] * l[None, :, None])  # fmt: skip

    def asu_keys(self, h, k, l) -> np.ndarray:  # noqa: E741
        """Packed keys (see :func:`pack_hkl`) of CrystFEL's representative of each reflection.

        Vectorised over reflections; each distinct (h, k, l) is reduced once.
        """
        return self.reduce_keys(pack_hkl(h, k, l)).reshape(np.shape(h))

    def reduce_keys(self, keys: np.ndarray) -> np.ndarray:
        """:meth:`asu_keys` for reflections given as packed keys (any shape)."""
        keys = np.asarray(keys, np.int64)
        if keys.size == 0:
            return keys.copy()
        uniq, inverse = np.unique(keys, return_inverse=True)
        out = np.empty_like(uniq)
        step = max(1, 4_000_000 // self.order)
        for start in range(0, uniq.size, step):
            uh, uk, ul = unpack_hkl(uniq[start : start + step])
            eq = self.equivalents(uh, uk, ul)  # (n_ops, N, 3)
            nonneg = np.all(eq >= 0, axis=2).astype(np.int64)
            score = (nonneg << 48) | pack_hkl(eq[..., 0], eq[..., 1], eq[..., 2])
            out[start : start + step] = np.max(score, axis=0) & ((1 << 48) - 1)
        return out[inverse.reshape(-1)].reshape(keys.shape)

    def asymmetric_indices(
        self,
        h,
        k,
        l,  # noqa: E741
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CrystFEL's asymmetric-unit representative (``get_asymm``) of each reflection.

        Parameters
        ----------
        h, k, l : array_like of int
            Miller indices, any shape (all three the same).

        Returns
        -------
        h, k, l : numpy.ndarray of int32
            The representatives, same shape as the input.
        """
        ah, ak, al = unpack_hkl(self.asu_keys(h, k, l))
        shape = np.shape(h)
        return ah.reshape(shape), ak.reshape(shape), al.reshape(shape)

    def is_centric(self, h, k, l) -> np.ndarray:  # noqa: E741
        """True where (h, k, l) is symmetry-related to its Friedel mate (-h, -k, -l)."""
        h, k, l = (np.asarray(x) for x in (h, k, l))  # noqa: E741
        return self.asu_keys(h, k, l) == self.asu_keys(-h, -k, -l)


def point_group(symbol: str) -> PointGroup:
    """The point group named by a CrystFEL ``-y`` symbol.

    Parameters
    ----------
    symbol : str
        ``4/mmm``, ``422``, ``mmm``, ``2/m`` (unique axis c), ``2/m_uab``, ``-1``, ``321_H``,
        ``-3m_R``, ``6/mmm``, ``m-3m``, ... (see :data:`CRYSTFEL_POINT_GROUPS`).

    Raises
    ------
    PointGroupError
        If CrystFEL would not accept the symbol.
    """
    sym = symbol.strip()
    base, suffix = sym, None
    if sym.count("_") > 1:
        raise PointGroupError(symbol, "more than one '_'")
    if "_" in sym:
        head, tail = sym.split("_")
        if tail in ("H", "R"):
            base = sym
        elif len(tail) == 3 and tail[:2] == "ua":
            base, suffix = head, tail[2]
            if suffix not in _UNIQUE_AXIS_T:
                raise PointGroupError(symbol, f"unique axis must be a, b or c, not {suffix!r}")
        else:
            raise PointGroupError(symbol, "suffix must be _H, _R or _uaa/_uab/_uac")
    if base not in _GEMMI_NAMES:
        raise PointGroupError(symbol, "not a CrystFEL point-group symbol")
    ops = _gemmi_ops(base)
    if suffix is not None:
        t = _UNIQUE_AXIS_T[suffix]
        t_inv = np.rint(np.linalg.inv(t)).astype(np.int64)
        ops = np.einsum("ij,ojk,kl->oil", t_inv, ops, t)
    return PointGroup(sym, _unique_ops(ops))
