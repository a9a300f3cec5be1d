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

The merged lists are :class:`~streamfilter.analysis.hkl.ReflectionList` objects, written as
CrystFEL reflection lists by :func:`~streamfilter.analysis.hkl.write_hkl`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamfilter.analysis.hkl import ReflectionList
from streamfilter.analysis.symmetry import PointGroup, pack_hkl, point_group, unpack_hkl
from streamfilter.crystal import one_over_d

try:  # the package version, for the audit trail
    from importlib.metadata import version as _pkg_version

    __version__ = _pkg_version("streamfilter")
except Exception:  # noqa: BLE001 - not installed: run from the source tree
    __version__ = "0.1.0"


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
    serial : int or None
        The chunk's ``Image serial number``.
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
    serial: int | None = None

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
    tails_out: list | None = None,
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
    tails_out : list, optional
        If given, receives the message of the stream's incomplete tail (a last chunk cut
        off by the end of the file: still being written, or cut short) when there is one;
        the crystals of the complete chunks are yielded either way, as process_hkl and
        partialator read them.
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
            yield from chunk_crystals(chunk, n_crystal)
            n_crystal += len(chunk.crystals)
        if tails_out is not None and reader.incomplete_tail is not None:
            tails_out.append(str(reader.incomplete_tail))


def chunk_crystals(chunk: Any, first_index: int = 0) -> Iterator[CrystalObservations]:
    """The crystals of one chunk that have a reflection table (``first_index``: the stream
    number of the chunk's first crystal)."""
    frame = (chunk.filename or "", chunk.event)
    for index, xtal in enumerate(chunk.crystals, first_index):
        table = xtal.reflections
        if table is None:
            continue
        if xtal.astar is None:
            inv_d = np.full(len(table), np.nan)
        else:
            inv_d = one_over_d(table.h, table.k, table.l, xtal.astar, xtal.bstar, xtal.cstar)
        yield CrystalObservations(
            frame, index, chunk.index, xtal.astar, xtal.bstar, xtal.cstar, xtal.cell,
            xtal.centering, xtal.resolution_limit, table.h, table.k, table.l, table.I,
            table.sigma, inv_d, chunk.serial,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------------


class _Accumulator:
    """Running count, sum and sum of squared deviations per unique reflection.

    Observations (packed hkl keys in any setting, values) are buffered; each batch of
    ``batch`` observations is reduced to the point group's asymmetric unit at once and
    combined with the running figures, so memory is bounded by the number of unique
    reflections and the batch, not by the stream.  Each reflection's sum continues in
    observation order (its running sum is the first term of its next batch sum), so the
    mean is the one a single pass gives, bit for bit, whatever the batch size; the
    squared deviations are combined by Chan et al.'s pairwise update.
    """

    def __init__(self, pg: PointGroup, batch: int = 100_000) -> None:
        self.pg = pg
        self.keys = np.zeros(0, np.int64)
        self.n = np.zeros(0, np.int64)
        self.sum = np.zeros(0)
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
        all_keys = np.union1d(self.keys, ukeys)
        ia = np.searchsorted(all_keys, self.keys)
        ib = np.searchsorted(all_keys, ukeys)
        n = np.zeros(all_keys.size, np.int64)
        total = np.zeros(all_keys.size)
        m2 = np.zeros(all_keys.size)
        n[ia], total[ia], m2[ia] = self.n, self.sum, self.m2
        n_a = n[ib].astype(np.float64)
        delta = mean_b - total[ib] / np.maximum(n_a, 1.0)  # (n_a = 0: no term below)
        # each sum goes on in observation order: its running value, then this batch's values
        first = np.arange(ukeys.size)
        total[ib] = np.bincount(np.concatenate([first, inv]), np.concatenate([total[ib], vals]),
                                minlength=ukeys.size)  # fmt: skip
        m2[ib] = m2[ib] + m2_b + delta * delta * n_a * n_b / (n_a + n_b)
        n[ib] += n_b
        self.keys, self.n, self.sum, self.m2 = all_keys, n, total, m2

    def result(self, min_measurements: int, symmetry: str) -> ReflectionList:
        self.flush()
        keep = self.n >= max(1, min_measurements)
        n = self.n[keep]
        h, k, l = unpack_hkl(self.keys[keep])  # noqa: E741
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(self.m2[keep] / n) / np.sqrt(n)
        return ReflectionList(h, k, l, self.sum[keep] / n, sigma, n, None, symmetry)


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
    incomplete_tails : list of str
        One warning per stream that ends inside its last chunk (left out).
    """

    n_crystals: int = 0
    n_crystals_used: int = 0
    n_observations: int = 0
    n_rejected_snr: int = 0
    n_rejected_res: int = 0
    n_nonfinite: int = 0
    incomplete_tails: list[str] = field(default_factory=list)


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
        tails = self.stats.incomplete_tails
        for xtal in iter_crystals(path, quiet=quiet, header_out=header_out, tails_out=tails):
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
    """Merge the crystals of one or more streams, as ``process_hkl --polarisation=none`` does.

    Every observation is mapped to the point group's asymmetric unit; the merged intensity
    is the plain mean, sigma(I) the standard deviation over sqrt(n) (see the module
    docstring and :class:`Merger`).

    Parameters
    ----------
    paths : iterable of str or path-like
        Streams (``.gz`` and ``"-"`` accepted), merged in order.
    pg : PointGroup or str
        Merging symmetry, a CrystFEL symbol such as ``"4/mmm"``.
    min_measurements : int
        Leave out reflections seen fewer times (process_hkl's default 2).
    min_snr : float, optional
        Drop observations with I < min_snr * sigma(I).
    push_res : float, optional
        Drop observations with 1/d > the crystal's resolution limit + push_res, nm^-1.
    halves : bool
        Also merge two random half-sets of crystals (``merger.half_results()``).
    seed : int
        Seed of the half-set split.
    quiet : bool
        No progress bar.

    Returns
    -------
    merged : ReflectionList
        Sorted by h, k, l; I and sigma in ADU (detector units, no scale applied).
    merger : Merger
        For ``merger.stats`` and ``merger.half_results()``.

    Examples
    --------
    >>> merged, merger = merge_streams(["run.stream"], "4/mmm")   # doctest: +SKIP
    >>> write_hkl("run.hkl", merged)                               # doctest: +SKIP
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
