"""A quick unweighted merge of stream intensities, and CrystFEL reflection lists (``.hkl``).

``streamfilter merge`` does what ``process_hkl`` does (CrystFEL 0.12, ``src/process_hkl.c``),
with its options (:class:`MergeOptions`), and gives the same numbers to print precision:

* every observation of every crystal is mapped to CrystFEL's asymmetric-unit representative
  under the point group (:mod:`streamfilter.analysis.symmetry`); Friedel mates are merged only
  when the point group is centrosymmetric (``4/mmm``, ``mmm``, ``-1``, ...), as in CrystFEL;
* the merged intensity is the plain (unweighted) mean of the observations, updated
  observation by observation as process_hkl does;
* sigma(I) is the standard deviation of the observations divided by sqrt(n), with the
  population (1/n) variance: ``sigma = sqrt(sum((I_i - <I>)^2) / n) / sqrt(n)``;
* reflections seen fewer than ``min_measurements`` times (default 2) are left out;
* ``--min-snr X`` drops observations with I < X * sigma(I) (and NaN sigmas);
  ``--push-res R`` drops observations with 1/d > (crystal's diffraction_resolution_limit + R),
  R and 1/d in nm^-1 (CrystFEL's option has the same unit).

* the polarisation correction (:mod:`streamfilter.analysis.polarisation`) when asked: the
  library's default is none, ``streamfilter merge``'s is process_hkl's (``horiz``);
* ``--max-adu`` drops observations by their ``peak``, ``--min-res`` crystals by their
  ``diffraction_resolution_limit``; ``--even-only``/``--odd-only``, ``--start-after`` and
  ``--stop-after`` choose crystals by their number in the stream(s);
* ``--scale`` and ``--stat`` read the streams twice: the first merge is the reference of the
  second, where each crystal is scaled by its least-squares factor against it (``--scale``)
  and its scale and CC are reported (``--stat``).

What it does **not** do: no partiality, no outlier rejection, no Lorentz factor, no
per-crystal resolution cut-off unless ``--push-res`` is given.  That is partialator's job;
use this merge for quick looks and for comparing integrations of the same crystals.

Unlike CrystFEL, observations whose I is not finite are skipped (counted in
:attr:`MergeStats.n_nonfinite`) instead of turning the mean into NaN.

Half-sets (``--halves``) split *crystals* in two at random with a fixed seed (pairs of
consecutive crystals are sent to opposite halves, so the halves differ in size by at most
one); each half is merged with the same rules and ``min_measurements`` as the whole, like
partialator's ``.hkl1``/``.hkl2``.

Memory stays bounded by the number of unique reflections: observations are reduced in
batches, each applied with process_hkl's running update, vectorised over reflections.

The merged lists are :class:`~streamfilter.analysis.hkl.ReflectionList` objects, written as
CrystFEL reflection lists by :func:`~streamfilter.analysis.hkl.write_hkl`.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from streamfilter.analysis.hkl import ReflectionList
from streamfilter.analysis.observations import CrystalObservations, iter_crystals
from streamfilter.analysis.polarisation import Polarisation, polarisation_factors
from streamfilter.analysis.symmetry import PointGroup, pack_hkl, point_group, unpack_hkl
from streamfilter.errors import StreamfilterError

try:  # the package version, for the audit trail
    from importlib.metadata import version as _pkg_version

    __version__ = _pkg_version("streamfilter")
except Exception:  # noqa: BLE001 - not installed: run from the source tree
    __version__ = "0.1.0"


_F32 = struct.Struct("f")  # rounding to a 32-bit float, as a C float variable does

# --------------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------------


class _Accumulator:
    """Running count, mean and sum of squared deviations per unique reflection, updated
    observation by observation as process_hkl does (``merge_crystal``):

        n' = n + 1,  delta = x - mean,  R = delta / n',  mean' = mean + R,
        M2' = M2 + n * delta * R,

    so every mean and sigma is process_hkl's bit for bit (a mean taken as sum / n can round
    the other way at the last printed digit).  Observations (packed hkl keys in any setting,
    values) are buffered; each batch of ``batch`` observations is reduced to the point
    group's asymmetric unit at once and applied in rounds: round r updates, for every
    reflection with at least r + 1 observations in the batch, its (r + 1)-th, so each
    reflection sees its observations in stream order and memory is bounded by the number of
    unique reflections and the batch, not by the stream.
    """

    def __init__(self, pg: PointGroup, batch: int = 100_000) -> None:
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

    def _grow(self, new_keys: np.ndarray) -> None:
        """Make room for reflections not seen before (n = mean = M2 = 0)."""
        all_keys = np.union1d(self.keys, new_keys)
        if all_keys.size == self.keys.size:
            return
        ia = np.searchsorted(all_keys, self.keys)
        n, mean, m2 = (np.zeros(all_keys.size, a.dtype) for a in (self.n, self.mean, self.m2))
        n[ia], mean[ia], m2[ia] = self.n, self.mean, self.m2
        self.keys, self.n, self.mean, self.m2 = all_keys, n, mean, m2

    def flush(self) -> None:
        if not self._n_pending:
            return
        keys = self.pg.reduce_keys(np.concatenate(self._pending_k))
        vals = np.concatenate(self._pending_v)
        self._pending_k, self._pending_v, self._n_pending = [], [], 0
        order = np.argsort(keys, kind="stable")  # stable: stream order within a reflection
        keys, vals = keys[order], vals[order]
        ukeys, first, counts = np.unique(keys, return_index=True, return_counts=True)
        self._grow(ukeys)
        busiest = np.argsort(-counts, kind="stable")  # round r: a prefix of this order
        where = np.searchsorted(self.keys, ukeys)[busiest]
        first, counts = first[busiest], counts[busiest]
        active = np.searchsorted(-counts, -np.arange(1, counts[0] + 1), side="right")
        n = self.n[where].astype(np.float64)
        mean, m2 = self.mean[where], self.m2[where]
        for r, m in enumerate(active.tolist()):
            x = vals[first[:m] + r]
            temp = 1.0 + n[:m]
            delta = x - mean[:m]
            step = delta * 1.0 / temp
            mean[:m] = mean[:m] + step
            m2[:m] = m2[:m] + n[:m] * delta * step
            n[:m] = temp
        self.n[where] += counts
        self.mean[where], self.m2[where] = mean, m2

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """Every reflection seen so far (sorted packed keys) and its mean, whatever n."""
        self.flush()
        return self.keys, self.mean

    def result(self, min_measurements: int, symmetry: str) -> ReflectionList:
        self.flush()
        keep = self.n >= max(1, min_measurements)
        n = self.n[keep]
        h, k, l = unpack_hkl(self.keys[keep])  # noqa: E741
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(self.m2[keep] / n) / np.sqrt(n)
        return ReflectionList(h, k, l, self.mean[keep], sigma, n, None, symmetry)


@dataclass(frozen=True)
class MergeOptions:
    """process_hkl's options for which crystals and observations are merged, and how.

    Defaults are process_hkl's, except ``polarisation`` (None here: no correction, as
    ``--polarisation=none``; ``streamfilter merge`` passes process_hkl's default ``horiz``).

    Attributes
    ----------
    min_snr : float or None
        Drop observations with I < min_snr * sigma(I) (and those with NaN sigma).
    push_res : float or None
        Drop observations with 1/d > the crystal's ``diffraction_resolution_limit`` +
        push_res, nm^-1 (crystals without a limit are not cut).
    max_adu : float or None
        Drop observations whose ``peak`` (highest pixel value, ADU) exceeds this.
    min_res : float or None
        Merge only crystals whose ``diffraction_resolution_limit`` reaches this resolution,
        in Angstrom (1/limit <= min_res; crystals without a limit are merged).
    polarisation : Polarisation or None
        Divide I and sigma(I) by the polarisation factor (:mod:`.polarisation`).
    parity : {"even", "odd"} or None
        Merge only the even- or odd-numbered crystals, counted from 1 over all the streams.
    start_after : int
        Skip this many crystals at the start (counted over all the streams).
    stop_after : int
        Stop once this many crystals have been merged (0: never).
    """

    min_snr: float | None = None
    push_res: float | None = None
    max_adu: float | None = None
    min_res: float | None = None
    polarisation: Polarisation | None = None
    parity: str | None = None
    start_after: int = 0
    stop_after: int = 0


@dataclass
class MergeStats:
    """Counters of a merge.

    Attributes
    ----------
    n_crystals : int
        Crystals with a reflection table that were read.
    n_crystals_merged : int
        Crystals merged: selected by ``start_after``, ``min_res`` and ``parity``, and not
        rejected by the scaling (process_hkl's "crystals used").
    n_crystals_used : int
        Crystals that contributed at least one observation.
    n_observations : int
        Observations merged.
    n_rejected_snr, n_rejected_res, n_rejected_adu, n_nonfinite : int
        Observations dropped by ``min_snr``, by ``push_res``, by ``max_adu``, and for a
        non-finite I.
    n_rejected_scale : int
        Crystals rejected in a second pass: scale factor against the reference not positive,
        or CC below ``min_cc``.
    incomplete_tails : list of str
        One warning per stream that ends inside its last chunk (left out).
    """

    n_crystals: int = 0
    n_crystals_merged: int = 0
    n_crystals_used: int = 0
    n_observations: int = 0
    n_rejected_snr: int = 0
    n_rejected_res: int = 0
    n_rejected_adu: int = 0
    n_nonfinite: int = 0
    n_rejected_scale: int = 0
    incomplete_tails: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """A first-pass merge to scale crystals against (process_hkl's second pass).

    ``keys``: sorted packed asymmetric-unit indices of every reflection the first pass saw
    (whatever its number of measurements); ``mean``: its mean intensity.  ``scale``: fit a
    scale factor per crystal (``--scale``), else only measure the CC (``--stat``).
    ``min_cc``: leave out crystals whose CC against the reference is lower (``--min-cc``).
    ``on_crystal(xtal, scale, cc)``, if given, is called for each crystal merged.
    """

    keys: np.ndarray
    mean: np.ndarray
    scale: bool = False
    min_cc: float | None = None
    on_crystal: Callable[[CrystalObservations, float, float], None] | None = None


def _float32_cc(x: np.ndarray, y: np.ndarray) -> float:
    """The CC process_hkl reports in ``--stat``: sums kept in 32-bit floats, each term added
    in double and rounded back, in the crystal's reflection order (sorted h, k, l)."""
    def f32(v: float) -> float:
        return _F32.unpack(_F32.pack(v))[0]

    s_xy = s_x = s_y = s_x2 = s_y2 = 0.0
    for a, b in zip(x.tolist(), y.tolist(), strict=True):
        s_xy = f32(s_xy + a * b)
        s_x = f32(s_x + a)
        s_y = f32(s_y + b)
        s_x2 = f32(s_x2 + a * a)
        s_y2 = f32(s_y2 + b * b)
    f = np.float32
    n = f(len(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        t1 = f(s_x2) - f(s_x) * f(s_x) / n
        t2 = f(s_y2) - f(s_y) * f(s_y) / n
        if t1 <= 0.0 or t2 <= 0.0:
            return 0.0
        return float(f(s_xy) - f(s_x) * f(s_y) / n) / math.sqrt(float(t1 * t2))


class Merger:
    """Unweighted merging of crystal observations into a point group's asymmetric unit.

    Parameters
    ----------
    pg : PointGroup or str
        Merging symmetry (a CrystFEL symbol is accepted).
    options : MergeOptions, optional
        Which crystals and observations, and the polarisation correction.
    min_snr, push_res : float, optional
        Shortcuts for the same fields of ``options``.
    halves : bool
        Also accumulate two random half-sets of crystals.
    seed : int
        Seed of the half-set assignment.
    reference : Reference, optional
        Scale each crystal against this first-pass merge (process_hkl's second pass).

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
        options: MergeOptions | None = None,
        min_snr: float | None = None,
        push_res: float | None = None,
        halves: bool = False,
        seed: int = 1,
        reference: Reference | None = None,
    ) -> None:
        self.pg = point_group(pg) if isinstance(pg, str) else pg
        opts = options or MergeOptions()
        if min_snr is not None or push_res is not None:
            opts = replace(opts, min_snr=min_snr if min_snr is not None else opts.min_snr,
                           push_res=push_res if push_res is not None else opts.push_res)
        if opts.parity not in (None, "even", "odd"):
            raise ValueError(f"parity must be 'even', 'odd' or None, not {opts.parity!r}")
        self.options = opts
        self.reference = reference
        self.stats = MergeStats()
        self.done = False  # stop_after reached
        self._all = _Accumulator(self.pg)
        self._halves = (_Accumulator(self.pg), _Accumulator(self.pg)) if halves else None
        self._rng = np.random.default_rng(seed)
        self._pair_bit = 0

    @property
    def min_snr(self) -> float | None:
        return self.options.min_snr

    @property
    def push_res(self) -> float | None:
        return self.options.push_res

    def _half_of(self, crystal_number: int) -> int:
        # Consecutive crystals (2i, 2i+1) go to opposite halves, which half first at random.
        if crystal_number % 2 == 0:
            self._pair_bit = int(self._rng.integers(2))
            return self._pair_bit
        return 1 - self._pair_bit

    def _selected(self, xtal: CrystalObservations, seen: int) -> bool:
        """process_hkl's choice of crystals (``seen`` counts from 1 over all streams)."""
        opts = self.options
        if seen <= opts.start_after:
            return False
        if opts.parity is not None and seen % 2 != (0 if opts.parity == "even" else 1):
            return False
        if opts.min_res is not None and xtal.resolution_limit is not None:
            # CrystFEL compares in m^-1 the limit it read as a 32-bit float
            limit = float(np.float32(xtal.resolution_limit)) * 1e9
            return limit >= 1e10 / opts.min_res
        return True

    def _corrected(self, xtal: CrystalObservations) -> tuple[np.ndarray, np.ndarray]:
        """I and sigma(I) as CrystFEL reads them (32-bit floats), divided by the
        polarisation factor."""
        intensity = xtal.I.astype(np.float32).astype(np.float64)
        sigma = xtal.sigma.astype(np.float32).astype(np.float64)
        pol = self.options.polarisation
        if pol is None or pol.disable or len(xtal) == 0:
            return intensity, sigma
        if xtal.astar is None or xtal.photon_energy_eV is None:
            raise StreamfilterError(
                f"crystal {xtal.index}: the polarisation correction needs astar/bstar/cstar "
                "and photon_energy_eV (or use --polarisation=none)",
                path=self._path,
                chunk_no=xtal.chunk_index,
            )
        factor = polarisation_factors(xtal.h, xtal.k, xtal.l, xtal.astar, xtal.bstar,
                                      xtal.cstar, xtal.photon_energy_eV, pol)  # fmt: skip
        return intensity / factor, sigma / factor

    def _scale(self, xtal: CrystalObservations, intensity: np.ndarray) -> float | None:
        """The crystal's scale factor against the reference (1 without ``--scale``), or
        None when process_hkl would reject the crystal."""
        ref = self.reference
        order = np.argsort(pack_hkl(xtal.h, xtal.k, xtal.l), kind="stable")
        keys = self.pg.reduce_keys(pack_hkl(xtal.h[order], xtal.k[order], xtal.l[order]))
        pos = np.minimum(np.searchsorted(ref.keys, keys), max(ref.keys.size - 1, 0))
        found = ref.keys[pos] == keys if ref.keys.size else np.zeros(keys.size, bool)
        i_ref, i_new = ref.mean[pos[found]], intensity[order][found]
        scale = 1.0
        if ref.scale:
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = float(np.sum(i_ref * i_new) / np.sum(i_new * i_new))
        cc = math.nan
        if ref.on_crystal is not None or ref.min_cc is not None:
            cc = _float32_cc(i_ref, i_new)
        if (ref.min_cc is not None and cc < ref.min_cc) or math.isnan(scale) or scale <= 0.0:
            return None
        if ref.on_crystal is not None:
            ref.on_crystal(xtal, scale, cc)
        return scale

    def _kept(self, xtal: CrystalObservations, intensity: np.ndarray,
              sigma: np.ndarray) -> np.ndarray:
        """Which observations pass the filters (process_hkl's, and finite I)."""
        st, opts = self.stats, self.options
        keep = np.isfinite(intensity)
        st.n_nonfinite += int(np.count_nonzero(~keep))
        with np.errstate(invalid="ignore"):
            if opts.min_snr is not None:
                bad = (intensity < opts.min_snr * sigma) | np.isnan(sigma)
            else:  # process_hkl's default -inf: drops only negative sigmas
                bad = intensity < -np.inf * sigma
            st.n_rejected_snr += int(np.count_nonzero(bad & keep))
            keep &= ~bad
            if opts.max_adu is not None and xtal.peak is not None:
                bad = xtal.peak.astype(np.float32) > opts.max_adu
                st.n_rejected_adu += int(np.count_nonzero(bad & keep))
                keep &= ~bad
            if opts.push_res is not None and xtal.resolution_limit is not None:
                bad = xtal.one_over_d > xtal.resolution_limit + opts.push_res
                st.n_rejected_res += int(np.count_nonzero(bad & keep))
                keep &= ~bad
        return keep

    def add_crystal(self, xtal: CrystalObservations, seen: int | None = None) -> int:
        """Merge one crystal's observations; returns how many were used.

        ``seen``: the crystal's number, from 1, over all the streams merged (default: one
        more than the crystals read so far).
        """
        st = self.stats
        st.n_crystals += 1
        if self.done or not self._selected(xtal, st.n_crystals if seen is None else seen):
            return 0
        intensity, sigma = self._corrected(xtal)
        if self.reference is not None:
            scale = self._scale(xtal, intensity)
            if scale is None:
                st.n_rejected_scale += 1
                return 0
            intensity, sigma = intensity * scale, sigma * scale
        half = self._half_of(st.n_crystals_merged) if self._halves is not None else None
        st.n_crystals_merged += 1
        if self.options.stop_after > 0 and st.n_crystals_merged >= self.options.stop_after:
            self.done = True
        keep = self._kept(xtal, intensity, sigma)
        n_used = int(np.count_nonzero(keep))
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
        """Merge every crystal of a stream (see :func:`iter_crystals`), up to ``stop_after``.

        ``crystals_out``, if given, receives each :class:`CrystalObservations` (for callers
        that need the observations again, e.g. :mod:`streamfilter.analysis.compare`).
        """
        tails = self.stats.incomplete_tails
        base = self._seen
        self._path = str(path)
        for xtal in iter_crystals(path, quiet=quiet, header_out=header_out, tails_out=tails):
            if self.done:
                break
            self._seen = base + xtal.index + 1
            self.add_crystal(xtal, self._seen)
            if crystals_out is not None:
                crystals_out.append(xtal)

    _seen = 0  # crystals met so far over the streams, with or without a reflection table
    _path: str | None = None  # the stream being merged, for messages

    def reference_for_second_pass(
        self,
        *,
        scale: bool,
        min_cc: float | None = None,
        on_crystal: Callable[[CrystalObservations, float, float], None] | None = None,
    ) -> Reference:
        """This merge as the reference of process_hkl's second pass (``--scale``,
        ``--min-cc``, ``--stat``)."""
        keys, mean = self._all.means()
        return Reference(keys.copy(), mean, scale=scale, min_cc=min_cc, on_crystal=on_crystal)

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
    options: MergeOptions | None = None,
    scale: bool = False,
    min_cc: float | None = None,
    on_crystal: Callable[[CrystalObservations, float, float], None] | None = None,
    header_out: list | None = None,
    crystals_out: list | None = None,
) -> tuple[ReflectionList, Merger]:
    """Merge the crystals of one or more streams, as ``process_hkl`` does.

    Every observation is mapped to the point group's asymmetric unit; the merged intensity
    is the plain mean, sigma(I) the standard deviation over sqrt(n) (see the module
    docstring and :class:`Merger`).  With the default ``options``, no polarisation
    correction: ``process_hkl --polarisation=none``.

    Parameters
    ----------
    paths : iterable of str or path-like
        Streams (``.gz`` accepted; ``"-"`` too, but not with ``scale`` or ``on_crystal``),
        merged in order.
    pg : PointGroup or str
        Merging symmetry, a CrystFEL symbol such as ``"4/mmm"``.
    min_measurements : int
        Leave out reflections seen fewer times (process_hkl's default 2).
    min_snr, push_res : float, optional
        Shortcuts for the same fields of ``options``.
    halves : bool
        Also merge two random half-sets of crystals (``merger.half_results()``).
    seed : int
        Seed of the half-set split.
    quiet : bool
        No progress bar.
    options : MergeOptions, optional
        process_hkl's other options (polarisation, max_adu, min_res, parity, start/stop).
    scale : bool
        process_hkl's ``--scale``: merge once, then merge again with each crystal scaled by
        its least-squares factor against the first merge (crystals whose factor is not
        positive are left out).  Reads every stream twice.
    min_cc : float, optional
        process_hkl's ``--min-cc``: a second pass leaves out crystals whose CC against the
        first merge is lower.
    on_crystal : callable, optional
        process_hkl's ``--stat``: a second pass (even without ``scale``) calls
        ``on_crystal(xtal, scale, cc)`` for each crystal merged, with its scale factor and
        its CC against the first merge.
    header_out : list, optional
        Receives each stream's header (of the last pass).
    crystals_out : list, optional
        Receives each :class:`CrystalObservations` read (of the last pass).

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
    paths = list(paths)
    reference = None
    if scale or on_crystal is not None or min_cc is not None:
        if any(str(p) == "-" for p in paths):
            raise StreamfilterError("standard input cannot be read twice: --scale, --min-cc "
                                    "and --stat need stream files")  # fmt: skip
        first = Merger(pg, options=options, min_snr=min_snr, push_res=push_res)
        for p in paths:
            first.add_stream(p, quiet=quiet)
        reference = first.reference_for_second_pass(scale=scale, min_cc=min_cc,
                                                    on_crystal=on_crystal)  # fmt: skip
        del first
    merger = Merger(pg, options=options, min_snr=min_snr, push_res=push_res, halves=halves,
                    seed=seed, reference=reference)  # fmt: skip
    for p in paths:
        merger.add_stream(p, quiet=quiet, header_out=header_out, crystals_out=crystals_out)
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
