"""``streamfilter stats``: check_hkl's table for one stream or merged list, with CC1/2, CC*
and Rsplit between half-sets as compare_hkl computes them.

Input: a stream (merged first, as ``streamfilter merge`` does: process_hkl's plain mean,
``min_measurements``, two random half-sets of crystals with ``seed``; I and sigma rounded to
the 0.01 a ``.hkl`` keeps), a CrystFEL reflection list ``X.hkl`` (half-sets: ``X.hkl1`` and
``X.hkl2`` beside it, as partialator and ``merge --halves`` write them), or an MTZ (the
intensity ``column``, default the first of type J; half-sets: the ``I_HALF1``/``I_HALF2``
columns ``merge -o X.mtz --halves`` writes).

Per shell and overall (``src/check_hkl.c`` and ``libcrystfel/src/fom.c``, CrystFEL 0.12):

* reflections whose I or sigma is not finite are left out, then those outside
  ``--lowres``/``--highres`` (limits held as 32-bit floats, as check_hkl holds them:
  :func:`~streamfilter.analysis.shells.crystfel_limit`);
* shells of equal reciprocal volume between the limits, by default the lowest and highest
  1/d of the remaining reflections;
* unique reflections, possible ones (the point group's asymmetric unit less lattice-centring
  absences), completeness, measurements (sum of nmeas), multiplicity, <I> and <I/sigma>
  (over reflections with a finite I/sigma): :func:`~streamfilter.analysis.statistics.
  list_statistics`;
* with half-sets: pairs of reflections present in both, with finite values, inside the
  limits; the second half Wilson-scaled to the first unless ``scale`` is False
  (compare_hkl's ``-u``); CC1/2 = Pearson CC, CC* = sqrt(2 CC1/2 / (1 + CC1/2)), Rsplit =
  2 sum|I1 - I2| / sum(I1 + I2) / sqrt(2): :func:`~streamfilter.analysis.statistics.
  compare_lists`.  The half-set figures use the same shells as the rest of the table, so
  they equal ``compare_hkl --fom=CC|CCstar|Rsplit`` run with the same ``--lowres`` and
  ``--highres`` (without them compare_hkl spans its shells over the pairs' own 1/d range:
  the overall figures are the same, the shells' edges may differ).

Units: 1/d in nm^-1, d in Angstrom, intensities as in the list (ADU for streamfilter's).
The JSON keys are :data:`STATS_JSON_KEYS`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from streamfilter.analysis.hkl import ReflectionList, as_written, is_hkl_file, read_hkl
from streamfilter.analysis.mtz import half_columns, is_mtz_file, mtz_cell, read_mtz
from streamfilter.analysis.shells import Shells, crystfel_limit
from streamfilter.analysis.statistics import cc_star, compare_lists, list_statistics
from streamfilter.analysis.symmetry import PointGroup, point_group
from streamfilter.crystal import Cell, CellCollector, choose_cell, read_cell
from streamfilter.errors import StreamfilterError

STATS_JSON_KEYS = """\
JSON report of ``streamfilter stats`` (NaN is written as null):

inputs: path, kind (stream, hkl, mtz), column (MTZ intensity column), point_group,
  halves (where the half-sets came from, or null), scaled (half-sets Wilson-scaled);
  for a stream also min_measurements, half_set_seed, n_crystals, n_observations and
  incomplete_tails (a last chunk cut short, left out, as process_hkl does)
cell: a_A, b_A, c_A, alpha_deg, beta_deg, gamma_deg, centering, source
rejected: non_finite (I or sigma not finite), outside_resolution (outside the limits)
overall and each of shells (shells also: shell, one_over_d_min_nm, one_over_d_max_nm,
  d_max_A, d_min_A, d_centre_A; equal reciprocal volume, like check_hkl):
  n_unique, possible, completeness_percent, n_measurements, multiplicity, mean_I,
  mean_I_over_sigma (check_hkl's SNR); with half-sets also cc_half, cc_star,
  rsplit_percent, n_half_pairs (as compare_hkl --fom=CC, CCstar, Rsplit); overall also
  scale_G, scale_B_A2 (the second half's Wilson scaling)
"""


@dataclass
class StatsOptions:
    """Options of :func:`list_stats` (see ``streamfilter stats --help``).

    Attributes
    ----------
    symmetry : str or None
        Point group (CrystFEL symbol); default the list's own (``Symmetry:`` line, or the
        MTZ's space group); required for a stream.
    cell : str or None
        Unit-cell file (CrystFEL ``.cell`` or PDB); default: an MTZ's cell, a stream's
        header or median cell; required for a ``.hkl`` (as for check_hkl).
    highres, lowres : float or None
        Resolution limits, d in Angstrom.
    nshells : int
        Number of shells.
    column : str or None
        MTZ intensity column.
    min_measurements, seed : int
        For a stream: merged reflections need this many observations; half-set seed.
    scale : bool
        Wilson-scale the second half-set to the first (compare_hkl's default).
    quiet : bool
        No progress bar while a stream is merged.
    """

    symmetry: str | None = None
    cell: str | None = None
    highres: float | None = None
    lowres: float | None = None
    nshells: int = 10
    column: str | None = None
    min_measurements: int = 2
    seed: int = 1
    scale: bool = True
    quiet: bool = True


@dataclass
class _Input:
    """A merged list to characterise, with its half-sets, cell and what the report says."""

    merged: ReflectionList
    halves: tuple[ReflectionList, ReflectionList] | None
    cell: Cell
    pg: PointGroup
    info: dict


def _read_stream(path: str, opts: StatsOptions) -> _Input:
    from streamfilter.analysis.merge import Merger

    if opts.symmetry is None:
        raise StreamfilterError("a stream needs the merging point group: give -y")
    pg = point_group(opts.symmetry)
    merger = Merger(pg, halves=True, seed=opts.seed)
    headers: list = []
    cells = CellCollector()
    merger.add_stream(path, quiet=opts.quiet, header_out=headers, crystals_out=cells)
    st = merger.stats
    halves = tuple(as_written(x) for x in merger.half_results(opts.min_measurements))
    return _Input(
        as_written(merger.result(opts.min_measurements)),
        halves,  # type: ignore[arg-type]
        choose_cell(opts.cell, headers, cells, path),
        pg,
        {"kind": "stream", "halves": f"random half-sets of crystals (seed {opts.seed})",
         "min_measurements": opts.min_measurements, "half_set_seed": opts.seed,
         "n_crystals": st.n_crystals, "n_observations": st.n_observations,
         "incomplete_tails": list(st.incomplete_tails)},
    )  # fmt: skip


def _read_list(path: str, opts: StatsOptions) -> _Input:
    mtz = is_mtz_file(path)
    if mtz:
        merged = read_mtz(path, opts.column)
        halves = None
        if opts.column is None and half_columns(path):
            halves = (read_mtz(path, "I_HALF1"), read_mtz(path, "I_HALF2"))
            where = "columns I_HALF1, I_HALF2"
        cell = read_cell(opts.cell) if opts.cell else mtz_cell(path)
    else:
        if opts.column is not None:
            raise StreamfilterError("--column applies to MTZ files only", path=path)
        merged = read_hkl(path)
        halves = None
        if os.path.isfile(path + "1") and os.path.isfile(path + "2"):
            halves = (read_hkl(path + "1"), read_hkl(path + "2"))
            where = f"{path}1, {path}2"
        if not opts.cell:
            raise StreamfilterError(f"{path}: a reflection list needs a unit cell: give -p FILE")
        cell = read_cell(opts.cell)
    pg = point_group(opts.symmetry or merged.symmetry or "1")
    merged.to_asymmetric_unit(pg)  # refuses a list without that symmetry, as check_hkl does
    return _Input(merged, halves, cell, pg,
                  {"kind": "mtz" if mtz else "hkl", "column": opts.column,
                   "halves": where if halves else None})  # fmt: skip


def _limits(refl: ReflectionList, cell: Cell, opts: StatsOptions) -> tuple[float, float]:
    r = cell.one_over_d(refl.h, refl.k, refl.l)
    lo = crystfel_limit(opts.lowres) if opts.lowres else (float(r.min()) if r.size else 0.0)
    hi = crystfel_limit(opts.highres) if opts.highres else (float(r.max()) if r.size else 0.0)
    return lo, hi


def as_read_by_crystfel(refl: ReflectionList) -> ReflectionList:
    """``refl`` with I and sigma rounded to 32-bit floats, as CrystFEL's list reader holds
    them (so CC and Rsplit equal compare_hkl's to the last printed digit)."""
    out = refl.take(np.arange(len(refl)))
    out.I = refl.I.astype(np.float32).astype(np.float64)
    out.sigma = refl.sigma.astype(np.float32).astype(np.float64)
    return out


def _select(refl: ReflectionList, cell: Cell, opts: StatsOptions) -> tuple[ReflectionList, dict]:
    """check_hkl's fom_select_reflections: finite I and sigma, inside the fixed limits."""
    finite = np.isfinite(refl.I) & np.isfinite(refl.sigma)
    r = cell.one_over_d(refl.h, refl.k, refl.l)
    inside = np.ones(len(refl), bool)
    if opts.lowres:
        inside &= r >= crystfel_limit(opts.lowres)
    if opts.highres:
        inside &= r <= crystfel_limit(opts.highres)
    rejected = {"non_finite": int(np.count_nonzero(~finite)),
                "outside_resolution": int(np.count_nonzero(finite & ~inside))}  # fmt: skip
    return refl.take(finite & inside), rejected


def list_stats(path: str, opts: StatsOptions | None = None) -> dict:
    """check_hkl's per-shell figures of a stream, ``.hkl`` or MTZ, with the half-sets'
    CC1/2, CC* and Rsplit as compare_hkl computes them (module docs).

    Returns
    -------
    dict
        The JSON-ready report (keys in :data:`STATS_JSON_KEYS`).

    Raises
    ------
    StreamfilterError
        Unreadable input, no cell, no point group for a stream, a list without the given
        symmetry, no reflection inside the limits.
    """
    opts = opts or StatsOptions()
    if path != "-" and not os.path.exists(path):
        raise StreamfilterError("no such file", path=path)
    is_list = is_mtz_file(path) or is_hkl_file(path)
    src = _read_list(path, opts) if is_list else _read_stream(path, opts)
    src.merged = as_read_by_crystfel(src.merged)
    if src.halves is not None:
        src.halves = (as_read_by_crystfel(src.halves[0]), as_read_by_crystfel(src.halves[1]))
    data, rejected = _select(src.merged, src.cell, opts)
    if len(data) == 0:
        raise StreamfilterError("no reflections inside the resolution limits", path=path)
    lo, hi = _limits(data, src.cell, opts)
    shells = Shells.equal_volume(lo, hi, opts.nshells)
    st = list_statistics(data, src.cell, src.pg, shells)
    rows = [{**d, **row} for d, row in zip(shells.describe(), st.shell_rows(), strict=True)]
    overall = dict(st.overall)
    if src.halves is not None:
        _add_half_figures(src, shells, opts, rows, overall)
    from streamfilter.analysis.compare import _cell_dict

    info = {"path": path, "column": None, "point_group": src.pg.symbol, **src.info,
            "scaled": opts.scale if src.halves is not None else None}  # fmt: skip
    return {"inputs": info, "cell": _cell_dict(src.cell, src.cell.source),
            "rejected": rejected, "overall": overall, "shells": rows}  # fmt: skip


def _add_half_figures(src: _Input, shells: Shells, opts: StatsOptions, rows: list[dict],
                      overall: dict) -> None:  # fmt: skip
    """CC1/2, CC*, Rsplit between the half-sets on ``shells`` (compare_hkl's figures)."""
    h1, h2 = src.halves  # type: ignore[misc]
    try:
        c = compare_lists(h1, h2, src.cell, src.pg, shells=shells, scale=opts.scale)
    except StreamfilterError as e:
        overall["half_sets_error"] = str(e)
        return
    for i, row in enumerate(rows):
        row.update(cc_half=float(c.cc[i]), cc_star=_crystfel_cc_star(c.cc[i]),
                   rsplit_percent=100.0 * float(c.rsplit[i]), n_half_pairs=int(c.n[i]))  # fmt: skip
    overall.update(cc_half=c.cc_overall, cc_star=_crystfel_cc_star(c.cc_overall),
                   rsplit_percent=100.0 * c.rsplit_overall, n_half_pairs=c.n_overall,
                   scale_G=c.scale_G, scale_B_A2=c.scale_B)  # fmt: skip


def _crystfel_cc_star(cc: float) -> float:
    """CC* as compare_hkl prints it: 0 for CC1/2 = 0, NaN below."""
    return 0.0 if cc == 0 else cc_star(float(cc))


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def format_stats(report: dict) -> str:
    """The terminal table of a :func:`list_stats` report (check_hkl's columns, then the
    half-set figures)."""
    from streamfilter.analysis.report import _d_range, _f

    inp, c, rej = report["inputs"], report["cell"], report["rejected"]
    out = [
        f"{inp['path']} ({inp['kind']}{', column ' + inp['column'] if inp['column'] else ''}),"
        f" point group {inp['point_group']}",
        f"cell {c['a_A']:.2f} {c['b_A']:.2f} {c['c_A']:.2f} A {c['alpha_deg']:.2f} "
        f"{c['beta_deg']:.2f} {c['gamma_deg']:.2f} deg {c['centering']} ({c['source']})",
        f"half-sets: {inp['halves'] or 'none'}"
        + ("" if inp["halves"] is None else
           f" ({'Wilson-scaled' if inp['scaled'] else 'not scaled'}, as compare_hkl"
           f"{'' if inp['scaled'] else ' -u'})"),
    ]  # fmt: skip
    if rej["non_finite"] or rej["outside_resolution"]:
        out.append(f"left out: {rej['non_finite']} with non-finite I or sigma, "
                   f"{rej['outside_resolution']} outside the resolution limits")  # fmt: skip
    halves = "cc_half" in report["overall"]
    head = (f"{'d/A':>13} {'uniq':>6} {'possible':>8} {'compl%':>7} {'meas':>7} {'mult':>5} "
            f"{'<I/s>':>7} {'<I>':>10}")  # fmt: skip
    if halves:
        head += f" {'CC1/2':>9} {'CC*':>9} {'Rsplit%':>8} {'npair':>6}"
    out.append(head)
    for row in report["shells"] + [dict(report["overall"], d_min_A=None)]:
        line = (f"{_d_range(row):>13} {row['n_unique']:>6} {row['possible']:>8} "
                f"{_f(row['completeness_percent'], '7.2f')} {row['n_measurements']:>7} "
                f"{_f(row['multiplicity'], '5.2f')} {_f(row['mean_I_over_sigma'], '7.2f')} "
                f"{_f(row['mean_I'], '10.2f')}")  # fmt: skip
        if halves:
            line += (f" {_f(row['cc_half'], '9.7f')} {_f(row['cc_star'], '9.7f')} "
                     f"{_f(row['rsplit_percent'], '8.2f')} {row['n_half_pairs']:>6}")  # fmt: skip
        out.append(line)
    if "half_sets_error" in report["overall"]:
        out.append(f"half-sets: {report['overall']['half_sets_error']}")
    return "\n".join(out) + "\n"


def overall_line(report: dict) -> str:
    """One summary line (for standard error)."""
    o = report["overall"]
    text = (f"{o['n_unique']} unique reflections of {o['possible']} possible "
            f"({o['completeness_percent']:.2f}%), multiplicity {o['multiplicity']:.2f}, "
            f"<I/sigma> {o['mean_I_over_sigma']:.2f}")  # fmt: skip
    if "cc_half" in o and not math.isnan(o["cc_half"]):
        text += f", CC1/2 {o['cc_half']:.4f}, Rsplit {o['rsplit_percent']:.2f}%"
    return text
