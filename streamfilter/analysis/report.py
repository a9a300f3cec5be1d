"""The report of ``streamfilter compare``: terminal tables and JSON.

:func:`format_report` turns the ``report`` dict of :func:`~streamfilter.analysis.compare.
compare_streams` into the tables printed on the terminal; :func:`write_json` writes it as
JSON (NaN as null).  The keys are listed in :data:`JSON_KEYS` (also the epilog of
``streamfilter compare --help``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np

JSON_KEYS = """\
JSON report of ``streamfilter compare`` (NaN is written as null):

inputs: a, b, reference (paths), point_group, min_measurements, half_set_seed,
  pair_by (how chunks were paired: file, serial, event-offset:K, map:FILE; null for lists)
observations: null when no chunk of A has a partner in B (by default: the same image file,
  resolved as reintegrate finds it, and the same Event); else
  frames_a, frames_b, frames_common   chunks with crystals in A, in B, in both
  crystals_a, crystals_b              crystals with a reflection table
  crystals_matched                    crystal pairs matched by orientation
  crystals_reindexed                  matched pairs whose reindexing matrix R is not identity
  reindex_matrices                    {"[[r11,r12,r13],...]": count}, h_b = h_a . R
  n_a, n_b                            observations (reflection rows) in A, in B
  matched, only_a, only_b             observations matched / unmatched
  overall: n_matched, cc_I, median_ratio_I, cc_sigma, median_ratio_sigma,
           cc_I_over_sigma, median_ratio_I_over_sigma
           (CC: Pearson over matched pairs; median_ratio: median of B/A over pairs where
            both values are > 0)
  shells: list, one per resolution shell of 1/d from crystal A's reciprocal vectors
          (equal volume between --lowres and --highres, default all observations; overall
          figures use every matched pair, also those outside the shells):
          shell, one_over_d_min_nm, one_over_d_max_nm, d_max_A, d_min_A, d_centre_A,
          matched, only_a, only_b, and the statistics of "overall"
merged:
  cell: a_A, b_A, c_A, alpha_deg, beta_deg, gamma_deg, centering, source
  shells: list of shell, one_over_d_min_nm, one_over_d_max_nm, d_max_A, d_min_A, d_centre_A
          (equal reciprocal volume, like check_hkl)
  a, b: merge of each stream (process_hkl-style plain mean, >= min_measurements):
    overall and each of shells: n_unique, possible, completeness_percent, n_measurements,
      multiplicity, mean_I, mean_I_over_sigma (check_hkl's SNR), cc_half, cc_star,
      n_half_pairs (CC1/2 between random half-sets of crystals, no scaling), rsplit_percent
      (sqrt(2) sum|I1 - I2| / sum(I1 + I2) over the half-sets);
      for a reflection list X.hkl with X.hkl1 and X.hkl2 beside it, CC1/2 and Rsplit of
      those two files as compare_hkl --fom=CC|Rsplit computes them (Wilson-scaled);
      half_sets: where the halves come from;
      overall also n_crystals, n_observations (streams)
  a_vs_b, a_vs_reference, b_vs_reference (the last two with --reference):
    overall: n_pairs, cc, r1i_percent, scale_G, scale_B_A2
    shells: n_pairs, cc, r1i_percent
    (as compare_hkl: second list Wilson-scaled to the first, I2 *= G exp(2 B s^2),
     s = 1/(2d); CC = Pearson; R1(I) = sum|I1 - I2| / sum I1)
"""


def _f(x, fmt: str) -> str:
    """Format a number, or '-' (right-aligned to the field width) for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        m = re.match(r"\d+", fmt)
        return "-".rjust(int(m.group(0)) if m else 1)
    return format(x, fmt)


def _d_range(row: dict) -> str:
    """``"d_max-d_min"`` of a shell row (two decimals), or ``"overall"``."""
    if row.get("d_min_A") is None:
        return "overall"
    return f"{_f(row['d_max_A'], '.2f')}-{row['d_min_A']:.2f}"


def format_report(report: dict) -> str:
    """The terminal tables of a compare report."""
    inp = report["inputs"]
    out = [f"A: {inp['a']}", f"B: {inp['b']}"]
    if inp.get("pair_by"):
        out.append(f"chunks paired by: {inp['pair_by']}")
    out += _observation_lines(report.get("observations"))
    m = report["merged"]
    c = m["cell"]
    out.append(
        f"\nMerged in {inp['point_group']} (>= {inp['min_measurements']} measurements); cell "
        f"{c['a_A']:.2f} {c['b_A']:.2f} {c['c_A']:.2f} A {c['alpha_deg']:.2f} "
        f"{c['beta_deg']:.2f} {c['gamma_deg']:.2f} deg {c['centering']} ({c['source']})"
    )
    shells = m["shells"] + [{"d_max_A": None, "d_min_A": None}]
    for name in ("a", "b"):
        out += _merged_lines(name, m[name], shells)
    tables = [("A vs B", m.get("a_vs_b"))]
    if "a_vs_reference" in m:
        tables += [("A vs ref", m["a_vs_reference"]), ("B vs ref", m["b_vs_reference"])]
    for title, t in tables:
        if t is not None:
            out += _comparison_lines(title, t, shells)
    return "\n".join(out) + "\n"


def _observation_lines(obs: dict | None) -> list[str]:
    """The observation-level table (matched observations per shell)."""
    if obs is None:
        return ["\nObservations: no chunk of A has a partner in B (see --pair-by), or "
                "reflection lists were given"]
    pa = 100.0 * obs["matched"] / obs["n_a"] if obs["n_a"] else math.nan
    pb = 100.0 * obs["matched"] / obs["n_b"] if obs["n_b"] else math.nan
    out = [
        f"\nObservations: {obs['frames_common']} frames in both; crystals matched "
        f"{obs['crystals_matched']} (A {obs['crystals_a']}, B {obs['crystals_b']}), "
        f"{obs['crystals_reindexed']} needed reindexing",
        f"  rows A {obs['n_a']}, B {obs['n_b']}; matched {obs['matched']} "
        f"({_f(pa, '.2f')}% of A, {_f(pb, '.2f')}% of B); only A {obs['only_a']}, "
        f"only B {obs['only_b']}",
        f"  {'d/A':>13} {'matched':>8} {'onlyA':>6} {'onlyB':>6} {'CC(I)':>7} "
        f"{'B/A I':>7} {'CC(sig)':>7} {'B/A sig':>7} {'CC(I/s)':>7} {'B/A I/s':>7}",
    ]
    overall = dict(
        obs["overall"],
        d_max_A=None,
        d_min_A=None,
        matched=obs["matched"],
        only_a=obs["only_a"],
        only_b=obs["only_b"],
    )
    for row in obs["shells"] + [overall]:
        out.append(
            f"  {_d_range(row):>13} {row['matched']:>8} {row['only_a']:>6} {row['only_b']:>6} "
            f"{_f(row['cc_I'], '7.4f')} {_f(row['median_ratio_I'], '7.3f')} "
            f"{_f(row['cc_sigma'], '7.4f')} {_f(row['median_ratio_sigma'], '7.3f')} "
            f"{_f(row['cc_I_over_sigma'], '7.4f')} "
            f"{_f(row['median_ratio_I_over_sigma'], '7.3f')}"
        )
    return out


def _merged_lines(name: str, st: dict, shells: list[dict]) -> list[str]:
    """check_hkl-style table of one merged stream (``name`` is ``"a"`` or ``"b"``)."""
    out = [
        f"  {name.upper()}: {'d/A':>13} {'uniq':>6} {'compl%':>7} {'mult':>5} "
        f"{'<I/s>':>7} {'CC1/2':>7} {'CC*':>7} {'npair':>6} {'Rsplit%':>7}"
    ]
    for shell, row in zip(shells, st["shells"] + [st["overall"]], strict=True):
        out.append(
            f"     {_d_range(shell):>13} {row['n_unique']:>6} "
            f"{_f(row['completeness_percent'], '7.2f')} "
            f"{_f(row['multiplicity'], '5.2f')} {_f(row['mean_I_over_sigma'], '7.2f')} "
            f"{_f(row.get('cc_half'), '7.4f')} {_f(row.get('cc_star'), '7.4f')} "
            f"{row.get('n_half_pairs', 0):>6} {_f(row.get('rsplit_percent'), '7.2f')}"
        )
    if st.get("half_sets"):
        out.append(f"     half-sets: {st['half_sets']}")
    return out


def _comparison_lines(title: str, t: dict, shells: list[dict]) -> list[str]:
    """compare_hkl-style table of CC and R1(I) between two lists (or the error)."""
    if "error" in t:
        return [f"  {title}: {t['error']}"]
    ov = t["overall"]
    out = [
        f"  {title}: {'d/A':>13} {'pairs':>6} {'CC':>9} {'R1(I)%':>7}   "
        f"(scale G {ov['scale_G']:.4g}, B {ov['scale_B_A2']:.3g} A^2)"
    ]
    for shell, row in zip(shells, t["shells"] + [ov], strict=True):
        out.append(
            f"     {_d_range(shell):>13} {row['n_pairs']:>6} {_f(row['cc'], '9.7f')} "
            f"{_f(row['r1i_percent'], '7.2f')}"
        )
    return out


def _json_clean(obj):
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def write_json(report: dict, path: str) -> None:
    """Write the report as JSON (``"-"`` = stdout); NaN and infinities become null."""
    text = json.dumps(_json_clean(report), indent=1)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    Path(path).write_text(text + "\n")
