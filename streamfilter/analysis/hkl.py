"""CrystFEL reflection lists (``.hkl``): :class:`ReflectionList`, :func:`read_hkl`,
:func:`write_hkl`, :func:`format_hkl`, :func:`is_hkl_file` and :func:`as_written`.

CrystFEL's format 2.0, read by check_hkl, compare_hkl, partialator and get_hkl::

    CrystFEL reflection list version 2.0
    Symmetry: 4/mmm
       h    k    l          I    phase   sigma(I)   nmeas
       1    0    2      68.53        -      61.48       2
    End of reflections
    <free-form notes (audit trail)>

Rows are written with ``%4i %4i %4i %10.2f %s %10.2f %7i`` (phase ``%8.2f`` degrees or
``       -``), sorted by h, then k, then l, as CrystFEL's own writer orders them.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamfilter.analysis.symmetry import PointGroup, pack_hkl
from streamfilter.errors import StreamfilterError

HKL_MAGIC = "CrystFEL reflection list version 2.0"
HKL_COLUMNS = "   h    k    l          I    phase   sigma(I)   nmeas"
HKL_END = "End of reflections"
HKL_ROW_FORMAT = "%4i %4i %4i %10.2f %s %10.2f %7i"  # CrystFEL's write_reflections_to_file
_PHASE_FORMAT = "%8.2f"


class HklFormatError(StreamfilterError):
    """A reflection list that does not follow CrystFEL's format 2.0.

    Parameters
    ----------
    path : str
        The file name.
    line_no : int or None
        1-based line number of the offending line, when known.
    message : str
        What is wrong.
    text : str, optional
        The offending line.
    """

    def __init__(self, path: str, line_no: int | None, message: str, text: str | None = None):
        super().__init__(message, path=path, line_no=line_no, text=text)


@dataclass
class ReflectionList:
    """A merged reflection list (one row per unique reflection).

    Attributes
    ----------
    h, k, l : numpy.ndarray of int32
        Miller indices (for merged data: the asymmetric-unit representatives).
    I : numpy.ndarray of float64
        Merged intensity, ADU (detector units; no scale applied).
    sigma : numpy.ndarray of float64
        Standard error of ``I``, ADU.
    nmeas : numpy.ndarray of int64
        Number of observations merged into each row.
    phase : numpy.ndarray of float64
        Phase in degrees; NaN where the file has ``-`` (no phase).
    symmetry : str or None
        The point group of the ``Symmetry:`` line.
    notes : list of str
        Lines after ``End of reflections`` (the audit trail).
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - the Miller index has this name
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    nmeas: np.ndarray
    phase: np.ndarray | None = None
    symmetry: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.h = np.asarray(self.h, np.int32)
        self.k = np.asarray(self.k, np.int32)
        self.l = np.asarray(self.l, np.int32)
        self.I = np.asarray(self.I, np.float64)
        self.sigma = np.asarray(self.sigma, np.float64)
        self.nmeas = np.asarray(self.nmeas, np.int64)
        if self.phase is None:
            self.phase = np.full(self.h.shape, np.nan)
        self.phase = np.asarray(self.phase, np.float64)

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def keys(self) -> np.ndarray:
        """Packed (h, k, l) keys, see :func:`streamfilter.analysis.symmetry.pack_hkl`."""
        return pack_hkl(self.h, self.k, self.l)

    def take(self, index: np.ndarray) -> ReflectionList:
        """Rows selected by a boolean mask or an integer index array."""
        return ReflectionList(
            self.h[index],
            self.k[index],
            self.l[index],
            self.I[index],
            self.sigma[index],
            self.nmeas[index],
            self.phase[index],
            self.symmetry,
            list(self.notes),
        )

    def sorted(self) -> ReflectionList:
        """Rows in CrystFEL's order: h, then k, then l ascending."""
        return self.take(np.argsort(self.keys(), kind="stable"))

    def to_asymmetric_unit(self, pg: PointGroup) -> ReflectionList:
        """Indices mapped to ``pg``'s asymmetric unit (like compare_hkl's first step).

        Raises
        ------
        StreamfilterError
            If two rows map to the same unique reflection (the list does not have the
            symmetry ``pg``; compare_hkl refuses such lists too).
        """
        ah, ak, al = pg.asymmetric_indices(self.h, self.k, self.l)
        keys = pack_hkl(ah, ak, al)
        if np.unique(keys).size != keys.size:
            raise StreamfilterError(
                f"reflection list does not have symmetry {pg.symbol}: several rows are "
                "equivalent (give the point group the list was merged in)"
            )
        out = ReflectionList(
            ah, ak, al, self.I, self.sigma, self.nmeas, self.phase, pg.symbol, list(self.notes)
        )
        return out


def read_hkl(path: str | os.PathLike) -> ReflectionList:
    """Read a CrystFEL reflection list (format 2.0), e.g. process_hkl or partialator output.

    Parameters
    ----------
    path : str or path-like
        The ``.hkl`` file (``.hkl1``/``.hkl2`` half-sets too).

    Returns
    -------
    ReflectionList
        Rows in file order; ``symmetry`` from the ``Symmetry:`` line, ``notes`` from the lines
        after ``End of reflections``.

    Raises
    ------
    HklFormatError
        If the magic line, the ``Symmetry:`` line or a row is malformed, or the end marker is
        missing.
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise HklFormatError(name, None, "no such file") from None
    except IsADirectoryError:
        raise HklFormatError(name, None, "is a directory, not a reflection list") from None
    if not lines or lines[0].strip() != HKL_MAGIC:
        raise HklFormatError(
            name,
            1,
            f"not a CrystFEL reflection list (expected {HKL_MAGIC!r})",
            lines[0] if lines else "",
        )
    if len(lines) < 3 or not lines[1].startswith("Symmetry: "):
        raise HklFormatError(
            name, 2, "expected 'Symmetry: <point group>'", lines[1] if len(lines) > 1 else ""
        )
    symmetry = lines[1][len("Symmetry: ") :].strip()
    try:
        end = lines.index(HKL_END, 3)
    except ValueError:
        raise HklFormatError(name, len(lines), f"no {HKL_END!r} line (truncated file?)") from None
    rows = lines[3:end]
    n = len(rows)
    h = np.empty(n, np.int32)
    k = np.empty(n, np.int32)
    l = np.empty(n, np.int32)  # noqa: E741
    intensity = np.empty(n)
    phase = np.full(n, np.nan)
    sigma = np.empty(n)
    nmeas = np.empty(n, np.int64)
    for i, row in enumerate(rows):
        f = row.split()
        try:
            if len(f) != 7:
                raise ValueError(f"expected 7 columns, found {len(f)}")
            h[i], k[i], l[i] = int(f[0]), int(f[1]), int(f[2])
            intensity[i] = float(f[3])
            if f[4] != "-":
                phase[i] = float(f[4])
            sigma[i] = float(f[5])
            nmeas[i] = int(f[6])
        except ValueError as e:
            raise HklFormatError(name, 4 + i, f"bad reflection row ({e})", row) from None
    return ReflectionList(h, k, l, intensity, sigma, nmeas, phase, symmetry, lines[end + 1 :])


def format_hkl(
    refl: ReflectionList, symmetry: str | None = None, notes: Sequence[str] | None = None
) -> str:
    """The text of a CrystFEL reflection list, rows in the order given (see :func:`write_hkl`)."""
    sym = symmetry if symmetry is not None else (refl.symmetry or "unknown")
    out = [HKL_MAGIC, f"Symmetry: {sym}", HKL_COLUMNS]
    phases = ["       -" if math.isnan(p) else _PHASE_FORMAT % p for p in refl.phase.tolist()]
    rows = zip(
        refl.h.tolist(),
        refl.k.tolist(),
        refl.l.tolist(),
        refl.I.tolist(),
        phases,
        refl.sigma.tolist(),
        refl.nmeas.tolist(),
        strict=True,
    )
    out.extend(HKL_ROW_FORMAT % r for r in rows)
    out.append(HKL_END)
    out.extend(refl.notes if notes is None else notes)
    return "\n".join(out) + "\n"


def write_hkl(
    path: str | os.PathLike,
    refl: ReflectionList,
    *,
    symmetry: str | None = None,
    notes: Sequence[str] | None = None,
    sort: bool = True,
) -> None:
    """Write a CrystFEL reflection list (format 2.0) that check_hkl/compare_hkl can read.

    Parameters
    ----------
    path : str or path-like
        Output file; ``"-"`` writes to standard output.  The file appears only when complete
        (written to a temporary file, then renamed).
    refl : ReflectionList
    symmetry : str, optional
        Point group for the ``Symmetry:`` line (default ``refl.symmetry``).
    notes : sequence of str, optional
        Audit lines after ``End of reflections`` (default ``refl.notes``).
    sort : bool
        Sort rows by h, k, l as CrystFEL does (default True).
    """
    text = format_hkl(refl.sorted() if sort else refl, symmetry, notes)
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial")
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StreamfilterError(f"{path}: cannot write reflection list ({e.strerror})") from None


def is_hkl_file(path: str) -> bool:
    """Whether ``path`` starts like a CrystFEL reflection list (``"-"`` never does)."""
    if path == "-":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip() == HKL_MAGIC
    except OSError:
        return False


def as_written(refl: ReflectionList) -> ReflectionList:
    """``refl`` with I and sigma rounded as a ``.hkl`` file stores them (``%10.2f``).

    The merged-level figures of :func:`~streamfilter.analysis.compare.compare_streams` use
    these values, so they equal check_hkl's and compare_hkl's figures for the lists
    ``streamfilter merge`` writes (mean I/sigma in particular is sensitive to sigmas that
    round to 0.00 or 0.01).
    """

    def rounded(x: np.ndarray) -> np.ndarray:
        return np.array([float(v) for v in np.char.mod("%.2f", x)]) if x.size else x

    out = refl.take(np.arange(len(refl)))
    out.I = rounded(refl.I)
    out.sigma = rounded(refl.sigma)
    return out
