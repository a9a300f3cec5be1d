"""MTZ output (``merge -o X.mtz``) and input (``stats``, ``compare``, ``--reference``)."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from streamfilter.analysis.compare import CompareOptions, compare_streams
from streamfilter.analysis.hkl import ReflectionList, read_hkl
from streamfilter.analysis.mtz import (
    crystfel_point_group,
    default_space_group,
    read_mtz,
    read_reflections,
    write_mtz,
)
from streamfilter.analysis.symmetry import CRYSTFEL_POINT_GROUPS, point_group, unpack_hkl
from streamfilter.cli import main
from streamfilter.crystal import Cell, read_cell
from streamfilter.errors import StreamfilterError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "stats"
EXAMPLE = REPO / "stream_files" / "example.stream"


def _mono() -> tuple[list[ReflectionList], Cell]:
    return [read_hkl(DATA / f"mono.hkl{x}") for x in ("", "1", "2")], read_cell(DATA / "mono.cell")


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).astype(np.float64)


def test_mtz_read_back_with_gemmi_cell_space_group_values_counts(tmp_path):
    (full, h1, h2), cell = _mono()
    path = tmp_path / "mono.mtz"
    write_mtz(path, full, cell, point_group("2/m_uab"), halves=(h1, h2), history=["audit"])
    mtz = gemmi.read_mtz_file(str(path))
    assert mtz.spacegroup.xhm() == "C 1 2 1"  # 2/m_uab's rotations, the cell's C centring
    assert mtz.cell.parameters == pytest.approx((30.0, 35.0, 40.0, 90.0, 105.0, 90.0))
    assert [(c.label, c.type) for c in mtz.columns] == [
        ("H", "H"), ("K", "H"), ("L", "H"), ("I", "J"), ("SIGI", "Q"), ("NMEAS", "I"),
        ("I_HALF1", "J"), ("SIGI_HALF1", "Q"), ("NMEAS_HALF1", "I"),
        ("I_HALF2", "J"), ("SIGI_HALF2", "Q"), ("NMEAS_HALF2", "I")]  # fmt: skip
    assert mtz.nreflections == len(full)
    assert "audit" in mtz.history
    # every row in the standard (CCP4) asymmetric unit, each the same reflection as in the list
    asu = gemmi.ReciprocalAsu(mtz.spacegroup)
    hkl = np.asarray(mtz.make_miller_array())
    assert all(asu.is_in(list(map(int, r))) for r in hkl)
    pg = point_group("2/m_uab")
    got = dict(zip(pg.asu_keys(hkl[:, 0], hkl[:, 1], hkl[:, 2]).tolist(),
                   np.asarray(mtz)[:, 3:6].tolist()))  # fmt: skip
    for key, i, s, n in zip(full.keys().tolist(), full.I, full.sigma, full.nmeas):
        gi, gs, gn = got[key]
        assert gi == _f32(i) and (gs == _f32(s) or np.isnan(s) and np.isnan(gs)) and gn == n


def test_mtz_round_trip_and_columns(tmp_path):
    (full, h1, h2), cell = _mono()
    path = tmp_path / "mono.mtz"
    write_mtz(path, full, cell, point_group("2/m_uab"), halves=(h1, h2))
    for column, ref in ((None, full), ("I_HALF1", h1), ("I_HALF2", h2)):
        back = read_mtz(path, column)
        ref = ref.sorted()
        assert back.symmetry == "2/m_uab"
        assert np.array_equal(back.keys(), ref.keys())
        assert np.array_equal(back.I, _f32(ref.I))
        assert np.array_equal(back.sigma, _f32(ref.sigma), equal_nan=True)
        assert np.array_equal(back.nmeas, ref.nmeas)
    with pytest.raises(StreamfilterError, match="no column 'F'"):
        read_mtz(path, "F")
    with pytest.raises(StreamfilterError, match="type Q, not an intensity"):
        read_mtz(path, "SIGI")
    assert len(read_reflections(DATA / "mono.hkl")) == len(full)


@pytest.mark.parametrize("symbol", [*CRYSTFEL_POINT_GROUPS, "2/m_uab", "2/m_uaa", "2_uab", "m_uaa"])
def test_default_space_group_has_the_laue_class_and_maps_back(symbol):
    pg = point_group(symbol)
    sg = default_space_group(pg)
    assert sg.is_symmorphic()
    if pg.is_centrosymmetric:
        assert sg.is_sohncke()  # merged I of a chiral crystal: the Laue group's rotations
    back = crystfel_point_group(sg, anomalous=not pg.is_centrosymmetric)
    assert back == pg or np.array_equal(back.ops, pg.ops)
    assert np.array_equal(crystfel_point_group(sg).ops, pg.laue().ops)


def test_acentric_point_group_writes_anomalous_pairs(tmp_path):
    """422 keeps Friedel mates apart: I(+)/I(-) columns, read back as the same rows."""
    pg = point_group("422")
    cell = Cell(50.0, 50.0, 70.0, 90.0, 90.0, 90.0)
    rng = np.random.default_rng(4)
    g = np.arange(-8, 9)
    h, k, l = (x.ravel() for x in np.meshgrid(g, g, g, indexing="ij"))  # noqa: E741
    keys = np.unique(pg.asu_keys(h, k, l))
    keys = keys[(keys != pg.asu_keys(0, 0, 0)) & (rng.random(keys.size) < 0.8)]
    h, k, l = unpack_hkl(keys)  # noqa: E741
    refl = ReflectionList(h, k, l, rng.normal(500, 200, keys.size), rng.uniform(5, 50, keys.size),
                          rng.integers(2, 9, keys.size), None, "422")  # fmt: skip
    path = tmp_path / "anom.mtz"
    mtz = write_mtz(path, refl, cell, pg)
    assert mtz.spacegroup.xhm() == "P 4 2 2"
    assert [c.label for c in mtz.columns_with_type("K")] == ["I(+)", "I(-)"]
    assert mtz.nreflections < len(refl)  # Friedel pairs share a row
    back = read_mtz(path)
    assert back.symmetry == "422"
    ref = refl.sorted()
    assert np.array_equal(back.keys(), ref.keys())
    assert np.array_equal(back.I, _f32(ref.I)) and np.array_equal(back.nmeas, ref.nmeas)


def test_space_group_option_must_have_the_laue_class(tmp_path):
    (full, _, _), cell = _mono()
    mtz = write_mtz(tmp_path / "a.mtz", full, cell, point_group("2/m_uab"), space_group="C 1 2 1")
    assert mtz.spacegroup.xhm() == "C 1 2 1"
    with pytest.raises(StreamfilterError, match="Laue class"):
        write_mtz(tmp_path / "b.mtz", full, cell, point_group("2/m_uab"), space_group="P 1 1 2")
    assert not (tmp_path / "b.mtz").exists()
    with pytest.raises(StreamfilterError, match="no merged reflections"):
        write_mtz(tmp_path / "c.mtz", full.take(np.zeros(len(full), bool)), cell,
                  point_group("2/m_uab"))  # fmt: skip


def test_merge_cli_writes_the_mtz_of_its_hkl(tmp_path, capsys):
    """merge -o X.mtz holds the numbers merge -o X.hkl writes (to the .hkl's 0.01)."""
    hkl, mtz_path = tmp_path / "m.hkl", tmp_path / "m.mtz"
    assert main(["merge", str(EXAMPLE), "-y", "4/mmm", "-o", str(hkl), "--halves", "-q"]) == 0
    assert main(["merge", str(EXAMPLE), "-y", "4/mmm", "-o", str(mtz_path), "--halves",
                 "--space-group", "P 43 21 2"]) == 0  # fmt: skip
    assert "space group P 43 21 2" in capsys.readouterr().err
    mtz = gemmi.read_mtz_file(str(mtz_path))
    assert mtz.spacegroup.xhm() == "P 43 21 2"
    assert mtz.cell.parameters == pytest.approx((79.1, 79.1, 37.9, 90, 90, 90), abs=1e-4)
    for suffix, column in (("", None), ("1", "I_HALF1"), ("2", "I_HALF2")):
        ref = read_hkl(f"{hkl}{suffix}").sorted()
        back = read_mtz(mtz_path, column)
        assert np.array_equal(back.keys(), ref.keys())
        assert np.abs(back.I - ref.I).max() <= 0.005 + 1e-3
        assert np.array_equal(back.nmeas, ref.nmeas)
    assert main(["merge", str(EXAMPLE), "-y", "4/mmm", "-o", str(hkl), "-p",
                 str(REPO / "stream_files" / "example.cell")]) == 2  # fmt: skip
    assert "apply to an MTZ output" in capsys.readouterr().err


def test_reciprocalspaceship_reads_our_mtz(tmp_path):
    rs = pytest.importorskip(
        "reciprocalspaceship",
        reason="reciprocalspaceship not installed (optional: pip install reciprocalspaceship "
        "to check that it reads streamfilter's MTZ files)",
    )
    (full, h1, h2), cell = _mono()
    path = tmp_path / "mono.mtz"
    write_mtz(path, full, cell, point_group("2/m_uab"), halves=(h1, h2))
    ds = rs.read_mtz(str(path))
    assert ds.spacegroup.xhm() == "C 1 2 1"
    assert ds.cell.parameters == pytest.approx((30.0, 35.0, 40.0, 90.0, 105.0, 90.0))
    assert len(ds) == len(full)
    assert str(ds.dtypes["I"]) == "Intensity" and str(ds.dtypes["SIGI"]) == "Stddev"
    assert str(ds.dtypes["NMEAS"]) == "MTZInt" and str(ds.dtypes["I_HALF1"]) == "Intensity"
    assert int(ds["NMEAS"].sum()) == int(full.nmeas.sum())


def test_compare_reads_mtz_inputs_and_reference(tmp_path):
    """An MTZ gives the same comparison as the .hkl it was written from."""
    (full, h1, h2), cell = _mono()
    pg = point_group("2/m_uab")
    mtz = tmp_path / "mono.mtz"
    write_mtz(mtz, full, cell, pg, halves=(h1, h2))
    opts = CompareOptions(symmetry="2/m_uab", cell=str(DATA / "mono.cell"))
    with_hkl = compare_streams(str(DATA / "mono.hkl1"), str(DATA / "mono.hkl2"),
                               CompareOptions(**{**opts.__dict__,
                                                 "reference": str(DATA / "mono.hkl")}))  # fmt: skip
    with_mtz = compare_streams(str(DATA / "mono.hkl1"), str(DATA / "mono.hkl2"),
                               CompareOptions(**{**opts.__dict__, "reference": str(mtz)}))
    a = with_hkl.report["merged"]["a_vs_reference"]["overall"]
    b = with_mtz.report["merged"]["a_vs_reference"]["overall"]
    assert b["n_pairs"] == a["n_pairs"] and b["cc"] == pytest.approx(a["cc"], abs=1e-7)
    # the two half columns of one MTZ against the two .hkl half-sets
    r = compare_streams(str(mtz), str(DATA / "mono.hkl1"),
                        CompareOptions(column="I_HALF1", cell=str(DATA / "mono.cell")))
    ab = r.report["merged"]["a_vs_b"]["overall"]
    assert ab["cc"] == pytest.approx(1.0, abs=1e-9) and ab["n_pairs"] == len(h1)
    assert r.report["inputs"]["point_group"] == "-1"
    with pytest.raises(StreamfilterError, match="MTZ inputs only"):
        compare_streams(str(DATA / "mono.hkl1"), str(DATA / "mono.hkl2"),
                        CompareOptions(column="I", cell=str(DATA / "mono.cell")))
