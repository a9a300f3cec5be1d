"""Compare two streams: observation by observation, and merged, per resolution shell.

``streamfilter compare A B`` answers "what changed between these two integrations?".

Observation level (when chunks of A and B are paired: by default the same image file,
resolved as ``reintegrate`` finds it, and the same ``Event``; or by serial number, event
offset or a map file, see :mod:`~streamfilter.analysis.pairing`):

* crystals of a frame are matched by orientation.  Two indexing runs often pick different
  but equivalent settings of the same lattice (axes swapped or inverted), so for each pair of
  crystals the integer matrix R = A_a . A_b^-1 (A = the 3 x 3 matrix with rows a*, b*, c*) is
  computed, rounded and checked (every element within
  :data:`~streamfilter.analysis.matching.REINDEX_TOLERANCE` of an integer,
  determinant +-1); observations then match when h_b = h_a . R (row vectors).  The number of
  crystals with R != identity is reported;
* counts matched / only in A / only in B, and over matched pairs the Pearson CC and the
  median ratio B/A of I, of sigma(I) and of I/sigma(I) (ratios over pairs where both values
  are > 0), overall and per shell of 1/d (from crystal A's reciprocal vectors).

Merged level (always): both streams are merged like ``streamfilter merge`` (process_hkl's
plain mean, see :mod:`streamfilter.analysis.merge`) in the point group ``-y`` (default
``-1``), with random half-sets of crystals (fixed seed), I and sigma rounded to the 0.01 a
``.hkl`` file keeps (so the figures equal check_hkl/compare_hkl run on ``streamfilter merge``
output), and per shell of equal reciprocal volume (as check_hkl/compare_hkl make them) the
report gives, for each stream, completeness, multiplicity, <I/sigma(I)>, CC1/2 and CC*;
between A and B, CC and R1(I); and with ``--reference FILE.hkl`` the CC and R1(I) of each
against the reference.  CC and R1(I) between two lists follow compare_hkl exactly
(:func:`~streamfilter.analysis.statistics.compare_lists`), including its Wilson scaling of the
second list to the first, so ``compare_lists(x, truth)`` reproduces
``compare_hkl --fom=CC x truth.hkl``.

Completeness needs a cell: ``--cell FILE`` if given, else the unit-cell block of stream A's (or
B's) header, else the median of the crystals' cells.  "Possible" reflections are counted like
check_hkl: unique reflections of the point group's asymmetric unit in the shell, leaving out
only lattice-centring absences (screw-axis absences count as possible).

Memory does not grow with the streams: each stream is read once to merge it (memory per
unique reflection) and to note the chunks of each pairing key; then frame by frame (in A's
order) the crystals of A and B with that key are read again at their byte offsets and
matched, and the matched observations go to temporary files, from which the figures are
computed exactly (:mod:`~streamfilter.analysis.obsstats`).  What stays in memory grows only
with the number of chunks and crystals (keys, chunk numbers, cells: tens of bytes each),
not with reflections.  A gzip stream or standard input cannot be re-read at an offset: its
crystals are held in memory (about 60 bytes per reflection row).  The plots draw at most
50 000 pairs (every k-th one).

Units: 1/d in nm^-1 (CrystFEL's shells), d in Angstrom, intensities in ADU (those of
reflection lists in whatever scale the lists have, e.g. partialator's).

Two reflection lists (CrystFEL ``.hkl`` or MTZ, :func:`~streamfilter.analysis.mtz.
read_reflections`) may be given instead of two streams: then only the merged-level tables are
computed (the first list's own symmetry is used when ``-y`` is not given; an MTZ's cell when
``--cell`` is not); the half-set lists ``X.hkl1``/``X.hkl2`` beside ``X.hkl`` give CC1/2 and
Rsplit as compare_hkl computes them between the two files.  Every side also gets Rsplit of
its half-sets.

The keys of the JSON report (``--json``) are listed in
:data:`streamfilter.analysis.report.JSON_KEYS`.  Modules: :mod:`~streamfilter.analysis.matching`
(crystals and observations), :mod:`~streamfilter.analysis.statistics` (the figures),
:mod:`~streamfilter.analysis.shells`, :mod:`~streamfilter.analysis.report` (text and JSON).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamfilter.analysis.hkl import ReflectionList, as_written
from streamfilter.analysis.matching import MatchedObservations, ObservationPairs, match_frames
from streamfilter.analysis.merge import Merger
from streamfilter.analysis.mtz import is_mtz_file, is_reflection_list, mtz_cell, read_reflections
from streamfilter.analysis.observations import chunk_crystals, iter_crystals
from streamfilter.analysis.obsstats import PLOT_ROWS, Spill, pair_figures
from streamfilter.analysis.pairing import Pairing, frame_keys
from streamfilter.analysis.shells import Shells
from streamfilter.analysis.statistics import (
    ListComparison,
    cc_star,
    compare_lists,
    count_possible,
    list_statistics,
)
from streamfilter.analysis.symmetry import PointGroup, point_group
from streamfilter.crystal import Cell, choose_cell, d_A, read_cell
from streamfilter.errors import StreamfilterError
from streamfilter.stream.index import build_index, read_chunks


@dataclass
class CompareOptions:
    """Options of :func:`compare_streams` (see ``streamfilter compare --help``).

    Attributes
    ----------
    symmetry : str
        Merging point group, CrystFEL symbol.
    nshells : int
        Number of resolution shells (equal reciprocal volume).
    reference : str or None
        Reference reflection list (``.hkl`` or MTZ) for CC and R1(I).
    column, reference_column : str or None
        Intensity column of MTZ inputs (A and B) and of an MTZ reference; default the first
        of type J (see :func:`streamfilter.analysis.mtz.read_mtz`).
    cell : str or None
        Unit-cell file (CrystFEL ``.cell`` or PDB); default: stream header or median cell.
    highres, lowres : float or None
        Resolution limits of the shells, d in Angstrom; default: the data's range.
    min_measurements : int
        Merged reflections need this many observations.
    seed : int
        Seed of the half-set split of crystals.
    quiet : bool
        No progress bars.
    pairing : Pairing
        How chunks of A and B are paired (``--pair-by``, ``--data-root``); default: the
        same resolved image file and event.
    """

    symmetry: str = "-1"
    nshells: int = 10
    reference: str | None = None
    column: str | None = None
    reference_column: str | None = None
    cell: str | None = None
    highres: float | None = None  # Angstrom
    lowres: float | None = None  # Angstrom
    min_measurements: int = 2
    seed: int = 1
    quiet: bool = True
    pairing: Pairing = field(default_factory=Pairing)


@dataclass
class CompareResult:
    """What :func:`compare_streams` found: ``report`` (JSON-ready) and arrays for the plots."""

    report: dict
    pairs: ObservationPairs | None
    merged_a_vs_b: ListComparison | None
    obs_shells: Shells | None
    merged_shells: Shells | None
    merged_a: ReflectionList | None = None
    merged_b: ReflectionList | None = None
    warnings: list[str] = field(default_factory=list)  # incomplete tails left out


def compare_streams(path_a: str, path_b: str, opts: CompareOptions | None = None) -> CompareResult:
    """Compare two streams (or two reflection lists: merged level only).

    Parameters
    ----------
    path_a, path_b : str
        Two streams (``.gz`` accepted), or two CrystFEL reflection lists (``.hkl``).
    opts : CompareOptions, optional
        Point group, shells (d limits in Angstrom), reference list, cell, half-set seed.

    Returns
    -------
    CompareResult
        ``report`` holds every number (1/d in nm^-1, d in Angstrom, intensities in ADU; keys
        in :data:`streamfilter.analysis.report.JSON_KEYS`); the other fields hold the arrays
        the plots need.

    Raises
    ------
    StreamfilterError
        One input is a reflection list and the other is not; no unit cell can be found; no
        merged reflections; unreadable inputs.
    """
    opts = opts or CompareOptions()
    pg = point_group(opts.symmetry)
    hkl_mode = is_reflection_list(path_a)
    if hkl_mode != is_reflection_list(path_b):
        raise StreamfilterError(
            f"{path_a if hkl_mode else path_b} is a reflection list and the other input is not: "
            "give two streams or two reflection lists"
        )
    report: dict = {
        "inputs": {
            "a": path_a,
            "b": path_b,
            "reference": opts.reference,
            "point_group": pg.symbol,
            "min_measurements": opts.min_measurements,
            "half_set_seed": opts.seed,
            "pair_by": None if hkl_mode else opts.pairing.describe(),
        },
    }
    pairs = None
    obs_shells = None
    if opts.column and not (is_mtz_file(path_a) or is_mtz_file(path_b)):
        raise StreamfilterError(f"--column {opts.column} applies to MTZ inputs only")
    if opts.reference_column and not (opts.reference and is_mtz_file(opts.reference)):
        raise StreamfilterError("--reference-column applies to an MTZ --reference only")
    if hkl_mode:
        side = {"a": _hkl_side(path_a, opts.column), "b": _hkl_side(path_b, opts.column)}
        report["observations"] = None
    else:
        keys_a, keys_b = frame_keys(opts.pairing, path_a, path_b)
        side = {"a": _read_side(path_a, pg, opts, "A", keys_a),
                "b": _read_side(path_b, pg, opts, "B", keys_b)}  # fmt: skip
        report["observations"], pairs, obs_shells = _observation_report(side, opts)
    cell, cell_source = _choose_cell(opts, side, path_a, path_b)
    reference = None
    if opts.reference:
        reference = read_reflections(opts.reference, opts.reference_column)
        reference = reference.to_asymmetric_unit(pg)
    report["merged"], shells, a_vs_b = _merged_report(side, cell, cell_source, pg, reference, opts)
    return CompareResult(
        report, pairs, a_vs_b, obs_shells, shells, side["a"].merged, side["b"].merged,
        warnings=[w for s in side.values() if s.merger is not None
                  for w in s.merger.stats.incomplete_tails],
    )


@dataclass
class _Side:
    """One input of a comparison: its merged list and, for a stream, where its crystals are.

    ``merged`` and ``halves`` have I and sigma rounded as a ``.hkl`` file stores them;
    ``chunks`` maps each pairing key (:class:`~streamfilter.analysis.pairing.FrameKeys`) to
    the numbers of its chunks with crystals, in stream order (the crystals are read again
    by chunk offset when frames are matched; ``frames`` holds them instead for an input that
    cannot be read at an offset: gzip or standard input); ``isig`` holds I/sigma of every
    observation on disk (for the histogram); ``cells`` the crystals' cells (for the median
    cell); ``halves_from`` names the ``.hkl1``/``.hkl2`` files the halves were read from
    (None: random half-sets of the stream's crystals).
    """

    merged: ReflectionList
    halves: tuple[ReflectionList, ReflectionList] | None = None
    halves_from: str | None = None
    merger: Merger | None = None
    header: Any = None
    path: str | None = None
    chunks: dict = field(default_factory=dict)
    frames: dict | None = None
    counts: tuple[int, int] = (0, 0)  # crystals, observations
    isig: Spill | None = None
    cells: list = field(default_factory=list)

    def crystals_of(self) -> Callable[[Any], list]:
        """A function giving the crystals of one pairing key."""
        if self.frames is not None:
            return self.frames.__getitem__
        index = build_index(self.path or "")
        chunks = self.chunks

        def read(key: Any) -> list:
            out: list = []
            with read_chunks(index, chunks[key]) as reader:
                for chunk in reader:
                    out.extend(chunk_crystals(chunk))
            return out

        return read


def _seekable(path: str) -> bool:
    """A plain (not gzip) file: chunks can be read again at their offsets."""
    if path == "-" or not Path(path).is_file():
        return False
    with open(path, "rb") as f:
        return f.read(2) != b"\x1f\x8b"


def _hkl_side(path: str, column: str | None = None) -> _Side:
    """A reflection list (``.hkl`` or MTZ, ``column`` as :func:`read_reflections` takes it),
    with the half-sets ``PATH1``/``PATH2`` when both exist beside it (partialator's and
    ``merge --halves``' ``.hkl1``/``.hkl2``)."""
    merged = read_reflections(path, column)
    h1, h2 = Path(path + "1"), Path(path + "2")
    if not (h1.is_file() and h2.is_file()):
        return _Side(merged)
    halves = (read_reflections(str(h1)), read_reflections(str(h2)))
    return _Side(merged, halves, f"{h1.name}, {h2.name}")


def _read_side(path: str, pg: PointGroup, opts: CompareOptions, label: str,
               keys: Any = None) -> _Side:  # fmt: skip
    """Merge one stream (with half-sets) and note which chunks hold each pairing key."""
    merger = Merger(pg, halves=True, seed=opts.seed)
    headers: list = []
    chunks: dict = {}
    frames: dict | None = None if _seekable(path) else defaultdict(list)
    isig = Spill(np.float32)
    cells: list = []
    n_obs = 0
    tails = merger.stats.incomplete_tails
    for xtal in iter_crystals(path, quiet=opts.quiet, desc=label, header_out=headers,
                              tails_out=tails):
        merger.add_crystal(xtal)
        n_obs += len(xtal)
        cells.append(_CellOnly(xtal.cell, xtal.centering))
        with np.errstate(invalid="ignore", divide="ignore"):
            isig.append(xtal.I / xtal.sigma)
        key = xtal.frame if keys is None else keys(*xtal.frame, xtal.serial, xtal.chunk_index)
        numbers = chunks.setdefault(key, [])
        if not numbers or numbers[-1] != xtal.chunk_index:
            numbers.append(xtal.chunk_index)
        if frames is not None:
            frames[key].append(xtal)
    return _Side(
        merged=as_written(merger.result(opts.min_measurements)),
        halves=tuple(as_written(x) for x in merger.half_results(opts.min_measurements)),
        merger=merger,
        header=headers[0] if headers else None,
        path=path,
        chunks=chunks,
        frames=frames,
        counts=(len(cells), n_obs),
        isig=isig,
        cells=cells,
    )


@dataclass(frozen=True)
class _CellOnly:
    """What :func:`~streamfilter.crystal.median_cell` needs of a crystal."""

    cell: tuple[float, ...] | None
    centering: str | None


def _shell_range(opts: CompareOptions, r: np.ndarray) -> Shells:
    """Equal-volume shells between --lowres/--highres (Angstrom), default r's range (nm^-1)."""
    lo = d_A(opts.lowres) if opts.lowres else float(r.min())
    hi = d_A(opts.highres) if opts.highres else float(r.max())
    return Shells.equal_volume(lo, hi, opts.nshells)


def _observation_report(
    side: dict[str, _Side], opts: CompareOptions
) -> tuple[dict | None, ObservationPairs | None, Shells | None]:
    """The observation level: summary (None without shared frames), pairs (for the plots,
    bounded) and shells."""
    a, b = side["a"], side["b"]
    counts = {"crystals_a": a.counts[0], "crystals_b": b.counts[0],
              "n_a": a.counts[1], "n_b": b.counts[1]}  # fmt: skip
    obs = match_frames(a.chunks, b.chunks, a.crystals_of(), b.crystals_of(), counts)
    summary, found = obs["summary"], obs["found"]
    try:
        if summary["frames_common"] == 0:
            return None, None, None
        r = np.array([found.r_min, found.r_max])
        obs_shells = _shell_range(opts, r[np.isfinite(r)])
        figures = pair_figures(found.pairs, obs_shells)
        summary["overall"] = {"n_matched": summary["matched"], **figures[-1]}
        n_matched = np.zeros(obs_shells.n, np.int64)
        for block in found.pairs.blocks():
            n_matched += _shell_counts(obs_shells, block["r"])
        n_a = sum((_shell_counts(obs_shells, x) for x in found.only_a.blocks()),
                  np.zeros(obs_shells.n, np.int64))  # fmt: skip
        n_b = sum((_shell_counts(obs_shells, x) for x in found.only_b.blocks()),
                  np.zeros(obs_shells.n, np.int64))  # fmt: skip
        summary["shells"] = [
            {**shell, "matched": int(n_matched[s]), "only_a": int(n_a[s]),
             "only_b": int(n_b[s]), **figures[s]}
            for s, shell in enumerate(obs_shells.describe())
        ]  # fmt: skip
        return summary, _plot_pairs(found, a, b), obs_shells
    finally:
        found.close()


def _shell_counts(shells: Shells, r: np.ndarray) -> np.ndarray:
    j = shells.assign(r)
    return np.bincount(j[j >= 0], minlength=shells.n)


def _plot_pairs(found: MatchedObservations, a: _Side, b: _Side) -> ObservationPairs:
    """A bounded sample of the matched pairs and I/sigma values for the plots."""
    p = found.pairs.sample()
    stride = max(1, math.ceil(found.pairs.n / PLOT_ROWS))
    isig = [s.isig.sample() if s.isig is not None else np.zeros(0) for s in (a, b)]
    n_isig = max(s.isig.n if s.isig is not None else 0 for s in (a, b))
    return ObservationPairs(p["ia"], p["ib"], p["sa"], p["sb"], p["r"],
                            isig[0].astype(np.float64), isig[1].astype(np.float64),
                            stride, max(1, math.ceil(n_isig / PLOT_ROWS)))  # fmt: skip


def _merged_report(
    side: dict[str, _Side],
    cell: Cell,
    cell_source: str,
    pg: PointGroup,
    reference: ReflectionList | None,
    opts: CompareOptions,
) -> tuple[dict, Shells, ListComparison | None]:
    """The merged level: check_hkl figures of each side, compare_hkl figures between them."""
    merged = {name: s.merged for name, s in side.items()}
    r_all = np.concatenate([cell.one_over_d(m.h, m.k, m.l) for m in merged.values()])
    if r_all.size == 0:
        raise StreamfilterError("no merged reflections (too few measurements?)")
    shells = _shell_range(opts, r_all)
    possible = count_possible(cell, pg, shells)
    mrep: dict = {"cell": _cell_dict(cell, cell_source), "shells": shells.describe()}
    for name, s in side.items():
        st = list_statistics(merged[name], cell, pg, shells, s.halves, possible)
        mrep[name] = {"overall": st.overall, "shells": st.shell_rows()}
        if s.halves is not None:
            _half_set_figures(mrep[name], s, cell, pg, shells)
        merger = s.merger
        if merger is not None:
            mrep[name]["overall"].update(
                n_crystals=merger.stats.n_crystals, n_observations=merger.stats.n_observations
            )
    a_vs_b, mrep["a_vs_b"] = _compare_table(merged["a"], merged["b"], cell, pg, shells)
    if reference is not None:
        for name in ("a", "b"):
            _, mrep[f"{name}_vs_reference"] = _compare_table(
                merged[name], reference, cell, pg, shells
            )
    return mrep, shells, a_vs_b


def _half_set_figures(
    rep: dict, s: _Side, cell: Cell, pg: PointGroup, shells: Shells
) -> None:
    """Add Rsplit (and, for ``.hkl1``/``.hkl2`` files, compare_hkl's CC1/2) to a side's report.

    Rsplit = sqrt(2) sum|I1 - I2| / sum(I1 + I2) over the reflections of both halves, in
    percent.  Half-set files are compared exactly as ``compare_hkl --fom=CC|Rsplit X.hkl1
    X.hkl2`` does (the second Wilson-scaled to the first); a stream's own random half-sets
    are not scaled (they come from one merge).
    """
    from_files = s.halves_from is not None
    rep["half_sets"] = (
        f"files {s.halves_from} (CC1/2 and Rsplit as compare_hkl, second half Wilson-scaled)"
        if from_files
        else "random half-sets of crystals (no scaling)"
    )
    nan_rows = [math.nan] * shells.n
    halves = s.halves or ()
    try:
        c = compare_lists(*halves, cell, pg, shells=shells, scale=from_files)
    except StreamfilterError:
        c = None
    if c is None:
        rsplit, overall = nan_rows, math.nan
    else:
        j = shells.assign(c.one_over_d)
        diff = np.abs(c.I1 - c.I2)
        total = c.I1 + c.I2
        with np.errstate(invalid="ignore", divide="ignore"):
            rsplit = 100.0 * math.sqrt(2.0) * (
                np.bincount(j, diff, minlength=shells.n) / np.bincount(j, total, minlength=shells.n)
            )
            overall = 100.0 * math.sqrt(2.0) * float(diff.sum() / total.sum())
    rep["overall"]["rsplit_percent"] = overall
    for row, value in zip(rep["shells"], rsplit, strict=True):
        row["rsplit_percent"] = float(value)
    if from_files:
        cc = c.cc if c is not None else nan_rows
        n = c.n if c is not None else [0] * shells.n
        for row, value, count in zip(rep["shells"], cc, n, strict=True):
            row.update(cc_half=float(value), cc_star=cc_star(float(value)),
                       n_half_pairs=int(count))  # fmt: skip
        cch = c.cc_overall if c is not None else math.nan
        rep["overall"].update(cc_half=cch, cc_star=cc_star(cch),
                              n_half_pairs=c.n_overall if c is not None else 0)  # fmt: skip


def _compare_table(
    list1: ReflectionList, list2: ReflectionList, cell: Cell, pg: PointGroup, shells: Shells
) -> tuple[ListComparison | None, dict]:
    """:func:`compare_lists` and its report entry (``{"error": ...}`` when it fails)."""
    try:
        c = compare_lists(list1, list2, cell, pg, shells=shells)
    except StreamfilterError as e:
        return None, {"error": str(e)}
    return c, {"overall": c.overall_dict(), "shells": c.shell_rows()}


def _cell_dict(cell: Cell, source: str) -> dict:
    return {
        "a_A": cell.a,
        "b_A": cell.b,
        "c_A": cell.c,
        "alpha_deg": cell.alpha,
        "beta_deg": cell.beta,
        "gamma_deg": cell.gamma,
        "centering": cell.centering,
        "source": source,
    }


def _choose_cell(
    opts: CompareOptions, side: dict[str, _Side], path_a: str, path_b: str
) -> tuple[Cell, str]:
    """--cell, else an MTZ's cell, else the unit-cell block of A's (B's) header, else the
    median crystal cell of A (B): :func:`~streamfilter.crystal.choose_cell` per input."""
    if opts.cell:
        return read_cell(opts.cell), f"file {opts.cell}"
    for path in (path_a, path_b):
        if is_mtz_file(path):
            cell = mtz_cell(path)
            return cell, cell.source
    named = (("a", path_a), ("b", path_b))
    for name, path in named:
        header = side[name].header
        if header is not None and header.cell_text:
            cell = choose_cell(None, [header], what=path)
            return cell, cell.source
    for name, path in named:
        try:
            cell = choose_cell(None, crystals=side[name].cells, what=path)
        except StreamfilterError:
            continue
        return cell, cell.source
    raise StreamfilterError("no unit cell: give --cell FILE (CrystFEL .cell or PDB)")
