"""``streamfilter stats``: check_hkl's table and compare_hkl's half-set figures, number for
number with CrystFEL 0.12.0's recorded outputs (tests/data/stats/README.md)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamfilter.analysis.hkl import read_hkl
from streamfilter.analysis.liststats import StatsOptions, list_stats
from streamfilter.analysis.mtz import write_mtz
from streamfilter.analysis.symmetry import point_group
from streamfilter.cli import main
from streamfilter.crystal import read_cell

DATA = Path(__file__).resolve().parent / "data" / "stats"
CRYSTFEL_BIN = Path("/work/crystfel/bin")


def _dat(name: str) -> np.ndarray:
    return np.loadtxt(DATA / name, skiprows=1)


def _overall(name: str, key: str) -> float:
    """A figure from a recorded log line: ``Overall CC = 0.97`` / ``Overall <snr> = 12.1``."""
    text = (DATA / name).read_text()
    return float(re.search(re.escape(key) + r"\s*=\s*([-\d.]+)", text).group(1))


def _check_shells(report: dict, dat: np.ndarray) -> None:
    """Every column of check_hkl's shell file, to its printed precision."""
    rows = report["shells"]
    col = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    assert np.array_equal(col("n_unique"), dat[:, 1])
    assert np.array_equal(col("possible"), dat[:, 2])
    assert np.array_equal(col("n_measurements"), dat[:, 4])
    assert np.allclose(col("completeness_percent"), dat[:, 3], rtol=0, atol=0.005001)
    assert np.allclose(col("multiplicity"), dat[:, 5], rtol=0, atol=0.05001)
    assert np.allclose(col("mean_I_over_sigma"), dat[:, 6], rtol=0, atol=0.005001)
    assert np.allclose(col("mean_I"), dat[:, 7], rtol=0, atol=0.005001)
    assert np.allclose(col("one_over_d_min_nm"), dat[:, 9], rtol=0, atol=0.0005001)
    assert np.allclose(col("one_over_d_max_nm"), dat[:, 10], rtol=0, atol=0.0005001)


def _check_overall(report: dict, log: str) -> None:
    o = report["overall"]
    text = (DATA / log).read_text()
    assert f"{o['n_measurements']} measurements in total." in text
    assert f"{o['n_unique']} reflections in total." in text
    assert f"{o['possible']} reflections possible." in text
    assert f"Overall <snr> = {o['mean_I_over_sigma']:f}" in text
    assert f"Overall redundancy = {o['multiplicity']:f}" in text
    assert f"Overall completeness = {o['completeness_percent']:f} %" in text


def _check_halves(report: dict, suffix: str, per_shell: bool = True) -> None:
    """CC1/2, CC*, Rsplit as compare_hkl --fom=CC|CCstar|Rsplit printed them."""
    o = report["overall"]
    assert f"{o['cc_half']:.7f}" == f"{_overall(f'halves_CC_{suffix}.log', 'Overall CC'):.7f}"
    assert f"{o['cc_star']:.7f}" == f"{_overall(f'halves_CCstar_{suffix}.log', 'Overall CC*'):.7f}"
    assert f"{o['rsplit_percent']:.2f}" == (
        f"{_overall(f'halves_Rsplit_{suffix}.log', 'Overall Rsplit'):.2f}"
    )
    if not per_shell:
        return
    rows = report["shells"]
    for key, fom, atol in (("cc_half", "CC", 5.001e-8), ("cc_star", "CCstar", 5.001e-8),
                           ("rsplit_percent", "Rsplit", 0.005001)):  # fmt: skip
        dat = _dat(f"halves_{fom}_{suffix}.dat")
        assert np.array_equal([r["n_half_pairs"] for r in rows], dat[:, 2])
        assert np.allclose([r[key] for r in rows], dat[:, 1], rtol=0, atol=atol)


def _stats(path: Path, **kw) -> dict:
    return list_stats(str(path), StatsOptions(cell=str(DATA / "mono.cell"), nshells=8, **kw))


def test_stats_with_limits_equal_check_hkl_and_compare_hkl():
    """check_hkl/compare_hkl -y 2/m_uab --nshells=8 --lowres=20 --highres=3.5, a C-centred
    monoclinic list with a negative I, a zero sigma and a NaN sigma."""
    report = _stats(DATA / "mono.hkl", lowres=20, highres=3.5)
    assert report["inputs"]["point_group"] == "2/m_uab"  # the list's own Symmetry:
    assert report["rejected"] == {"non_finite": 1, "outside_resolution": 128}
    _check_shells(report, _dat("check_limits.dat"))
    _check_overall(report, "check_limits.log")
    _check_halves(report, "limits")


def test_stats_default_range_equals_check_hkl_and_compare_hkl_overall():
    report = _stats(DATA / "mono.hkl")
    _check_shells(report, _dat("check_default.dat"))
    _check_overall(report, "check_default.log")
    # compare_hkl spans its shells over the pairs' range: the overall figures agree
    _check_halves(report, "default", per_shell=False)


def test_stats_unscaled_halves_equal_compare_hkl_u():
    report = _stats(DATA / "mono.hkl", lowres=20, highres=3.5, scale=False)
    _check_halves(report, "limits_u")


def test_stats_of_an_mtz_equal_check_hkl_of_the_same_list(tmp_path):
    """The list and its half-sets written as one MTZ (cell and C centring from the MTZ)."""
    cell = read_cell(DATA / "mono.cell")
    pg = point_group("2/m_uab")
    lists = [read_hkl(DATA / f"mono.hkl{x}") for x in ("", "1", "2")]
    mtz = tmp_path / "mono.mtz"
    write_mtz(mtz, lists[0], cell, pg, halves=(lists[1], lists[2]))
    report = list_stats(str(mtz), StatsOptions(nshells=8, lowres=20, highres=3.5))
    assert report["cell"]["centering"] == "C"
    assert report["inputs"]["halves"] == "columns I_HALF1, I_HALF2"
    _check_shells(report, _dat("check_limits.dat"))
    _check_overall(report, "check_limits.log")
    _check_halves(report, "limits")


def test_stats_of_a_stream_equal_check_hkl_and_compare_hkl_of_its_merge(ref_small):
    """stats STREAM == check_hkl/compare_hkl on merge --halves' output (recorded)."""
    report = list_stats(str(ref_small / "lyso_dev_r345.stream"),
                        StatsOptions(symmetry="4/mmm", lowres=30, highres=2.0))  # fmt: skip
    assert report["inputs"]["n_crystals"] == 30
    dat = _dat("r345_stream_check.dat")
    _check_shells(report, dat)
    _check_overall(report, "r345_stream_check.log")
    o = report["overall"]
    for key, fom, fmt in (("cc_half", "CC", ".7f"), ("cc_star", "CCstar", ".7f"),
                          ("rsplit_percent", "Rsplit", ".2f")):  # fmt: skip
        label = "Overall CC*" if fom == "CCstar" else f"Overall {fom}"
        logged = _overall(f"r345_stream_halves_{fom}.log", label)
        assert format(o[key], fmt) == format(logged, fmt)
        d = _dat(f"r345_stream_halves_{fom}.dat")
        tol = 0.005001 if fom == "Rsplit" else 5.001e-8
        assert np.allclose([r[key] for r in report["shells"]], d[:, 1], rtol=0, atol=tol)


def test_stats_cli_text_and_json(tmp_path, capsys):
    out = tmp_path / "s.json"
    status = main(["stats", str(DATA / "mono.hkl"), "-p", str(DATA / "mono.cell"),
                   "--shells", "8", "--lowres", "20", "--highres", "3.5", "--json", str(out)])
    assert status == 0
    text = capsys.readouterr()
    assert "CC1/2" in text.out and "overall" in text.out
    report = json.loads(out.read_text())
    assert report["overall"]["completeness_percent"] == pytest.approx(75.422139, abs=1e-6)
    assert report["overall"]["mean_I_over_sigma"] == pytest.approx(12.350105, abs=1e-6)
    assert len(report["shells"]) == 8


def test_stats_refuses_what_check_hkl_refuses(tmp_path, capsys):
    hkl = str(DATA / "mono.hkl")
    assert main(["stats", hkl]) == 2  # no cell for a .hkl
    assert "-p" in capsys.readouterr().err
    # the list does not have 2/m symmetry in the default setting (unique axis c)
    assert main(["stats", hkl, "-p", str(DATA / "mono.cell"), "-y", "2/m"]) == 2
    assert "symmetry 2/m" in capsys.readouterr().err
    assert main(["stats", str(tmp_path / "missing.mtz")]) == 2
    assert "missing.mtz: no such file" in capsys.readouterr().err


@pytest.mark.skipif(not (CRYSTFEL_BIN / "check_hkl").exists(), reason="CrystFEL 0.12 binaries "
                    "not installed (/work/crystfel/bin)")  # fmt: skip
def test_stats_equal_live_check_hkl_on_merge_output(ref_small, tmp_path):
    """merge --halves, then the real check_hkl and compare_hkl, against stats of the stream."""
    stream = ref_small / "lyso_dev_r234.stream"
    cellf = ref_small / "lysozyme.cell"
    hkl = tmp_path / "m.hkl"
    assert main(["merge", str(stream), "-y", "4/mmm", "--halves", "--seed", "3", "-o", str(hkl),
                 "--polarisation=none", "-q"]) == 0  # stats merges without it  # fmt: skip
    lim = ["--lowres=25", "--highres=2.2", "--nshells=6"]
    subprocess.run([str(CRYSTFEL_BIN / "check_hkl"), "-y", "4/mmm", "-p", str(cellf), *lim,
                    f"--shell-file={tmp_path / 'c.dat'}", str(hkl)], check=True,
                   capture_output=True, cwd=tmp_path)  # fmt: skip
    cc = subprocess.run([str(CRYSTFEL_BIN / "compare_hkl"), "-y", "4/mmm", "-p", str(cellf), *lim,
                         "--fom=CC", f"--shell-file={tmp_path / 'cc.dat'}", f"{hkl}1", f"{hkl}2"],
                        check=True, capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    report = list_stats(str(stream), StatsOptions(symmetry="4/mmm", seed=3, lowres=25,
                                                  highres=2.2, nshells=6))  # fmt: skip
    _check_shells(report, np.loadtxt(tmp_path / "c.dat", skiprows=1))
    logged = float(re.search(r"Overall CC = ([-\d.]+)", cc.stderr + cc.stdout).group(1))
    assert f"{report['overall']['cc_half']:.7f}" == f"{logged:.7f}"
    d = np.loadtxt(tmp_path / "cc.dat", skiprows=1)
    assert np.allclose([r["cc_half"] for r in report["shells"]], d[:, 1], rtol=0, atol=5.001e-8)
