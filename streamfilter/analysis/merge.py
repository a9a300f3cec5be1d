"""A quick unweighted merge of stream intensities, and CrystFEL reflection lists (``.hkl``).

``streamfilter merge`` does what ``process_hkl -y PG --polarisation=none`` does (CrystFEL
0.12, ``src/process_hkl.c``), and gives the same numbers to print precision:

* every observation of every crystal is mapped to CrystFEL's asymmetric-unit representative
  under the point group (:mod:`streamfilter.analysis.symmetry`); Friedel mates are merged only
  when the point group is centrosymmetric (``4/mmm``, ``mmm``, ``-1``, ...), as in CrystFEL;
* the merged intensity is the plain (unweighted) mean of the observations;
* sigma(I) is the standard deviation of the observations divided by sqrt(n), with the
  population (1/n) variance: ``sigma = sqrt(sum((I_i - <I>)^2) / n) / sqrt(n)``;
* reflections seen fewer than ``min_measurements`` times (default 2) are left out;
* ``--min-snr X`` drops observations with I < X * sigma(I) (and NaN sigmas);
  ``--push-res R`` drops observations with 1/d > (crystal's diffraction_resolution_limit + R),
  R and 1/d in nm^-1 (CrystFEL's option has the same unit).

What it does **not** do: no polarisation correction (CrystFEL's ``--polarisation=none``), no
scaling, no partiality, no outlier rejection, no Lorentz factor, no per-crystal resolution
cut-off unless ``--push-res`` is given.  That is partialator's job; use this merge for quick
looks and for comparing integrations of the same crystals.

Unlike CrystFEL, observations whose I is not finite are skipped (counted in
:attr:`MergeStats.n_nonfinite`) instead of turning the mean into NaN.

Half-sets (``--halves``) split *crystals* in two at random with a fixed seed (pairs of
consecutive crystals are sent to opposite halves, so the halves differ in size by at most
one); each half is merged with the same rules and ``min_measurements`` as the whole, like
partialator's ``.hkl1``/``.hkl2``.

Memory stays bounded by the number of unique reflections: observations are reduced in
batches and combined with Chan's parallel update of mean and sum of squared deviations.

Reflection lists
----------------
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamfilter.analysis.symmetry import PointGroup, pack_hkl, point_group, unpack_hkl
from streamfilter.crystal import one_over_d
from streamfilter.errors import StreamfilterError

HKL_MAGIC = "CrystFEL reflection list version 2.0"
HKL_COLUMNS = "   h    k    l          I    phase   sigma(I)   nmeas"
HKL_END = "End of reflections"
HKL_ROW_FORMAT = "%4i %4i %4i %10.2f %s %10.2f %7i"  # CrystFEL's write_reflections_to_file
_PHASE_FORMAT = "%8.2f"

try:  # the package version, for the audit trail
    from importlib.metadata import version as _pkg_version

    __version__ = _pkg_version("streamfilter")
except Exception:  # noqa: BLE001 - not installed: run from the source tree
    __version__ = "0.1.0"


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


# --------------------------------------------------------------------------------------------
# Reflection lists
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Observations from streams
# --------------------------------------------------------------------------------------------


@dataclass
class CrystalObservations:
    """The reflections of one crystal of one chunk, with what merging and matching need.

    Attributes
    ----------
    frame : tuple of (str, str or None)
        (Image filename, Event) of the chunk.
    index : int
        0-based number of the crystal in the stream (over all chunks).
    chunk_index : int
        0-based number of the chunk in the stream.
    astar, bstar, cstar : numpy.ndarray or None
        Reciprocal basis vectors, nm^-1, lab frame.
    cell : tuple or None
        (a, b, c in nm, alpha, beta, gamma in degrees) from ``Cell parameters``.
    centering : str or None
        Lattice centring letter (P, A, B, C, I, F, R, H).
    resolution_limit : float or None
        ``diffraction_resolution_limit`` in nm^-1.
    h, k, l : numpy.ndarray of int32
        Miller indices in the crystal's own setting.
    I, sigma : numpy.ndarray of float64
        Intensity and sigma, ADU, as printed in the stream.
    one_over_d : numpy.ndarray of float64
        1/d of each row in nm^-1 from the reciprocal vectors (NaN without them).
    """

    frame: tuple[str, str | None]
    index: int
    chunk_index: int
    astar: np.ndarray | None
    bstar: np.ndarray | None
    cstar: np.ndarray | None
    cell: tuple[float, ...] | None
    centering: str | None
    resolution_limit: float | None
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    one_over_d: np.ndarray

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @property
    def reciprocal_basis(self) -> np.ndarray | None:
        """3 x 3 matrix with rows a*, b*, c* (nm^-1), or None."""
        if self.astar is None or self.bstar is None or self.cstar is None:
            return None
        return np.array([self.astar, self.bstar, self.cstar], dtype=np.float64)


def iter_crystals(
    path: str | os.PathLike,
    *,
    quiet: bool = True,
    desc: str | None = None,
    header_out: list | None = None,
) -> Iterator[CrystalObservations]:
    """Yield every crystal of a stream that has a reflection table, in stream order.

    Parameters
    ----------
    path : str or path-like
        Stream file (``.gz`` and ``"-"`` accepted).
    quiet : bool
        No progress bar (one is shown on a terminal otherwise).
    desc : str, optional
        Label of the progress bar.
    header_out : list, optional
        If given, the stream's :class:`~streamfilter.stream.StreamHeader` is appended to it
        once the header has been read.
    """
    from streamfilter.progress import byte_progress, input_size
    from streamfilter.stream import read_stream

    n_crystal = 0
    with (
        read_stream(path) as reader,
        byte_progress(input_size(str(path)), desc or Path(str(path)).name, quiet) as bar,
    ):
        if header_out is not None:
            header_out.append(reader.header)
        for chunk in reader:
            bar.update(len(chunk.raw) + len(chunk.preceding))
            frame = (chunk.filename or "", chunk.event)
            for xtal in chunk.crystals:
                index = n_crystal
                n_crystal += 1
                table = xtal.reflections
                if table is None:
                    continue
                if xtal.astar is None:
                    inv_d = np.full(len(table), np.nan)
                else:
                    inv_d = one_over_d(
                        table.h, table.k, table.l, xtal.astar, xtal.bstar, xtal.cstar
                    )
                yield CrystalObservations(
                    frame,
                    index,
                    chunk.index,
                    xtal.astar,
                    xtal.bstar,
                    xtal.cstar,
                    xtal.cell,
                    xtal.centering,
                    xtal.resolution_limit,
                    table.h,
                    table.k,
                    table.l,
                    table.I,
                    table.sigma,
                    inv_d,
                )


# --------------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------------


class _Accumulator:
    """Running count, mean and sum of squared deviations per unique reflection.

    Observations (packed hkl keys in any setting, values) are buffered; each batch is reduced
    to the point group's asymmetric unit at once and combined with the running sums by Chan et
    al.'s pairwise update, so memory is bounded by the number of unique reflections.
    """

    def __init__(self, pg: PointGroup, batch: int = 2_000_000) -> None:
        self.pg = pg
        self.keys = np.zeros(0, np.int64)
        self.n = np.zeros(0, np.int64)
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self._pending_k: list[np.ndarray] = []
        self._pending_v: list[np.ndarray] = []
        self._n_pending = 0
        self._batch = batch

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        self._pending_k.append(keys)
        self._pending_v.append(values)
        self._n_pending += keys.size
        if self._n_pending >= self._batch:
            self.flush()

    def flush(self) -> None:
        if not self._n_pending:
            return
        keys = self.pg.reduce_keys(np.concatenate(self._pending_k))
        vals = np.concatenate(self._pending_v)
        self._pending_k, self._pending_v, self._n_pending = [], [], 0
        ukeys, inv = np.unique(keys, return_inverse=True)
        n_b = np.bincount(inv, minlength=ukeys.size)
        mean_b = np.bincount(inv, vals, minlength=ukeys.size) / n_b
        m2_b = np.bincount(inv, (vals - mean_b[inv]) ** 2, minlength=ukeys.size)
        if self.keys.size == 0:
            self.keys, self.n, self.mean, self.m2 = ukeys, n_b, mean_b, m2_b
            return
        all_keys = np.union1d(self.keys, ukeys)
        ia = np.searchsorted(all_keys, self.keys)
        ib = np.searchsorted(all_keys, ukeys)
        n = np.zeros(all_keys.size, np.int64)
        mean = np.zeros(all_keys.size)
        m2 = np.zeros(all_keys.size)
        n[ia], mean[ia], m2[ia] = self.n, self.mean, self.m2
        n_a = n[ib].astype(np.float64)
        delta = mean_b - mean[ib]
        tot = n_a + n_b
        mean[ib] = mean[ib] + delta * n_b / tot
        m2[ib] = m2[ib] + m2_b + delta * delta * n_a * n_b / tot
        n[ib] += n_b
        self.keys, self.n, self.mean, self.m2 = all_keys, n, mean, m2

    def result(self, min_measurements: int, symmetry: str) -> ReflectionList:
        self.flush()
        keep = self.n >= max(1, min_measurements)
        n = self.n[keep]
        h, k, l = unpack_hkl(self.keys[keep])  # noqa: E741
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(self.m2[keep] / n) / np.sqrt(n)
        return ReflectionList(h, k, l, self.mean[keep], sigma, n, None, symmetry)


@dataclass
class MergeStats:
    """Counters of a merge.

    Attributes
    ----------
    n_crystals : int
        Crystals with a reflection table that were read.
    n_crystals_used : int
        Crystals that contributed at least one observation.
    n_observations : int
        Observations merged.
    n_rejected_snr, n_rejected_res, n_nonfinite : int
        Observations dropped by ``min_snr``, by ``push_res``, and for a non-finite I.
    """

    n_crystals: int = 0
    n_crystals_used: int = 0
    n_observations: int = 0
    n_rejected_snr: int = 0
    n_rejected_res: int = 0
    n_nonfinite: int = 0


class Merger:
    """Unweighted merging of crystal observations into a point group's asymmetric unit.

    Parameters
    ----------
    pg : PointGroup or str
        Merging symmetry (a CrystFEL symbol is accepted).
    min_snr : float, optional
        Drop observations with I < min_snr * sigma(I) (and, if given, those with NaN sigma).
    push_res : float, optional
        Drop observations with 1/d > resolution_limit + push_res (nm^-1); crystals without a
        ``diffraction_resolution_limit`` are not cut.
    halves : bool
        Also accumulate two random half-sets of crystals.
    seed : int
        Seed of the half-set assignment.

    Examples
    --------
    >>> m = Merger("4/mmm")                                  # doctest: +SKIP
    >>> for xtal in iter_crystals("run.stream"):             # doctest: +SKIP
    ...     m.add_crystal(xtal)
    >>> merged = m.result(min_measurements=2)                # doctest: +SKIP
    """

    def __init__(
        self,
        pg: PointGroup | str,
        *,
        min_snr: float | None = None,
        push_res: float | None = None,
        halves: bool = False,
        seed: int = 1,
    ) -> None:
        self.pg = point_group(pg) if isinstance(pg, str) else pg
        self.min_snr = min_snr
        self.push_res = push_res
        self.stats = MergeStats()
        self._all = _Accumulator(self.pg)
        self._halves = (_Accumulator(self.pg), _Accumulator(self.pg)) if halves else None
        self._rng = np.random.default_rng(seed)
        self._pair_bit = 0

    def _half_of(self, crystal_number: int) -> int:
        # Consecutive crystals (2i, 2i+1) go to opposite halves, which half first at random.
        if crystal_number % 2 == 0:
            self._pair_bit = int(self._rng.integers(2))
            return self._pair_bit
        return 1 - self._pair_bit

    def add_crystal(self, xtal: CrystalObservations) -> int:
        """Merge one crystal's observations; returns how many were used."""
        st = self.stats
        crystal_number = st.n_crystals
        st.n_crystals += 1
        # CrystFEL reads stream values into 32-bit floats; do the same so that means round
        # identically at the last printed digit.
        intensity = xtal.I.astype(np.float32).astype(np.float64)
        sigma = xtal.sigma.astype(np.float32).astype(np.float64)
        keep = np.isfinite(intensity)
        st.n_nonfinite += int(np.count_nonzero(~keep))
        if self.min_snr is not None:
            with np.errstate(invalid="ignore"):
                bad = (intensity < self.min_snr * sigma) | np.isnan(sigma)
            st.n_rejected_snr += int(np.count_nonzero(bad & keep))
            keep &= ~bad
        if self.push_res is not None and xtal.resolution_limit is not None:
            with np.errstate(invalid="ignore"):
                bad = xtal.one_over_d > xtal.resolution_limit + self.push_res
            st.n_rejected_res += int(np.count_nonzero(bad & keep))
            keep &= ~bad
        n_used = int(np.count_nonzero(keep))
        half = self._half_of(crystal_number) if self._halves is not None else None
        if n_used == 0:
            return 0
        st.n_crystals_used += 1
        st.n_observations += n_used
        keys = pack_hkl(xtal.h[keep], xtal.k[keep], xtal.l[keep])
        values = intensity[keep]
        self._all.add(keys, values)
        if half is not None:
            self._halves[half].add(keys, values)
        return n_used

    def add_stream(
        self,
        path: str | os.PathLike,
        *,
        quiet: bool = True,
        header_out: list | None = None,
        crystals_out: list | None = None,
    ) -> None:
        """Merge every crystal of a stream (see :func:`iter_crystals`).

        ``crystals_out``, if given, receives each :class:`CrystalObservations` (for callers
        that need the observations again, e.g. :mod:`streamfilter.analysis.compare`).
        """
        for xtal in iter_crystals(path, quiet=quiet, header_out=header_out):
            self.add_crystal(xtal)
            if crystals_out is not None:
                crystals_out.append(xtal)

    def result(self, min_measurements: int = 2) -> ReflectionList:
        """The merged list (unique reflections seen at least ``min_measurements`` times)."""
        return self._all.result(min_measurements, self.pg.symbol)

    def half_results(self, min_measurements: int = 2) -> tuple[ReflectionList, ReflectionList]:
        """The two half-set merges (needs ``halves=True``)."""
        if self._halves is None:
            raise ValueError("Merger was created without halves=True")
        return (
            self._halves[0].result(min_measurements, self.pg.symbol),
            self._halves[1].result(min_measurements, self.pg.symbol),
        )


def merge_streams(
    paths: Iterable[str | os.PathLike],
    pg: PointGroup | str,
    *,
    min_measurements: int = 2,
    min_snr: float | None = None,
    push_res: float | None = None,
    halves: bool = False,
    seed: int = 1,
    quiet: bool = True,
) -> tuple[ReflectionList, Merger]:
    """Merge the crystals of one or more streams (see :class:`Merger`).

    Returns
    -------
    merged : ReflectionList
        Sorted by h, k, l.
    merger : Merger
        For ``merger.stats`` and ``merger.half_results()``.
    """
    merger = Merger(pg, min_snr=min_snr, push_res=push_res, halves=halves, seed=seed)
    for p in paths:
        merger.add_stream(p, quiet=quiet)
    return merger.result(min_measurements).sorted(), merger


def audit_notes(command: str, headers: list) -> list[str]:
    """The lines after ``End of reflections``: who wrote the list, the command, and the
    audit lines of each input stream's header."""
    notes = [f"Generated by streamfilter {__version__}", command]
    for header in headers:
        audit = [line for line in header.lines[1:3] if line.strip()]
        if audit:
            notes.append("Audit information from stream:")
            notes.extend(audit)
    return notes
