"""Point groups, reflection lists and the process_hkl-style merge."""

from __future__ import annotations

import argparse

import gemmi
import numpy as np
import pytest

from streamfilter.analysis.hkl import (
    HklFormatError,
    ReflectionList,
    format_hkl,
    read_hkl,
    write_hkl,
)
from streamfilter.analysis.merge import Merger, merge_streams
from streamfilter.analysis.observations import CrystalObservations
from streamfilter.analysis.symmetry import (
    CRYSTFEL_POINT_GROUPS,
    PointGroupError,
    pack_hkl,
    point_group,
    unpack_hkl,
)
from streamfilter.cli.merge import add_parser as add_merge_parser

RNG_SEED = 20240611


def _random_hkl(n: int, lim: int = 9, seed: int = RNG_SEED) -> np.ndarray:
    return np.random.default_rng(seed).integers(-lim, lim + 1, size=(n, 3))


def _rows(text: str) -> list[str]:
    """The reflection rows of a reflection list's text (between header and end marker)."""
    lines = text.splitlines()
    return lines[3 : lines.index("End of reflections")]


# --------------------------------------------------------------------------------------------
# Symmetry
# --------------------------------------------------------------------------------------------


def _reference_asu(pg, hkl: np.ndarray) -> np.ndarray:
    """CrystFEL's get_asymm spelled out per reflection: no negative index preferred, then the
    lexicographically largest (h, k, l)."""
    out = []
    for row in hkl:
        eq = [tuple(int(x) for x in op @ row) for op in pg.ops]
        nonneg = [e for e in eq if min(e) >= 0]
        out.append(max(nonneg) if nonneg else max(eq))
    return np.array(out)


@pytest.mark.parametrize("symbol", CRYSTFEL_POINT_GROUPS + ("2/m_uab", "2_uaa", "mmm_uac"))
def test_asymmetric_unit_is_crystfel_choice_and_symmetry_invariant(symbol):
    pg = point_group(symbol)
    hkl = _random_hkl(300)
    ah, ak, al = pg.asymmetric_indices(hkl[:, 0], hkl[:, 1], hkl[:, 2])
    asu = np.stack([ah, ak, al], 1)
    assert np.array_equal(asu, _reference_asu(pg, hkl))
    # Every equivalent of a reflection reduces to the same representative.
    eq = pg.equivalents(hkl[:, 0], hkl[:, 1], hkl[:, 2])  # (n_ops, N, 3)
    for e in eq:
        assert np.array_equal(np.stack(pg.asymmetric_indices(e[:, 0], e[:, 1], e[:, 2]), 1), asu)
    # Operators form a group: closed under products, identity included.
    keys = {op.tobytes() for op in pg.ops}
    assert np.eye(3, dtype=np.int64).tobytes() in keys
    assert all((a @ b).tobytes() in keys for a in pg.ops for b in pg.ops)


def test_group_orders_and_friedel_rules():
    orders = {"1": 1, "-1": 2, "2/m": 4, "mmm": 8, "422": 8, "4/mmm": 16, "321_H": 6,
              "-3m_R": 12, "6/mmm": 24, "m-3m": 48}  # fmt: skip
    for sym, n in orders.items():
        assert point_group(sym).order == n
    assert point_group("4/mmm").is_centrosymmetric and not point_group("422").is_centrosymmetric
    assert point_group("422").laue().symbol == "4/mmm"
    assert point_group("321_H").laue().symbol == "-3m1_H"
    assert point_group("312_H").laue().symbol == "-31m_H"
    assert point_group("2_uab").laue().symbol == "2/m_uab"
    # 4/mmm: h >= k >= 0, l >= 0 (the asymmetric unit of ref-small's truth.hkl).
    hkl = _random_hkl(500)
    h, k, l = point_group("4/mmm").asymmetric_indices(*hkl.T)  # noqa: E741
    assert np.all(h >= k) and np.all(k >= 0) and np.all(l >= 0)
    # Friedel mates merge in 4/mmm but not in 422 (as in CrystFEL).
    g = np.array([3, 1, 2])
    assert not point_group("422").is_centric(*g) and point_group("4/mmm").is_centric(*g)
    assert point_group("422").is_centric(3, 1, 0)  # hk0 is centric in 422


def test_unique_axis_matches_gemmi_settings():
    def gemmi_ops(name):
        sg = gemmi.find_spacegroup_by_name(name)
        rots = np.array([op.rot for op in sg.operations().sym_ops]) // gemmi.Op.DEN
        return {r.T.astype(np.int64).tobytes() for r in rots}

    def ops(sym):
        return {op.tobytes() for op in point_group(sym).ops}

    assert ops("2/m") == gemmi_ops("P 1 1 2/m")  # CrystFEL's default unique axis is c
    assert ops("2/m_uab") == gemmi_ops("P 1 2/m 1")
    assert ops("2/m_uaa") == gemmi_ops("P 2/m 1 1")
    assert ops("2_uab") == gemmi_ops("P 1 2 1")


@pytest.mark.parametrize("bad", ["4/mm", "P 4 2 2", "321", "2/m_uad", "4/mmm_H_R", ""])
def test_unknown_point_group_is_refused(bad):
    with pytest.raises(PointGroupError) as e:
        point_group(bad)
    assert repr(bad) in str(e.value) and "4/mmm" in str(e.value)


def test_pack_unpack_round_trip_and_order():
    hkl = _random_hkl(1000, lim=300)
    keys = pack_hkl(*hkl.T)
    assert np.array_equal(np.stack(unpack_hkl(keys), 1), hkl)
    order = np.argsort(keys)
    assert np.array_equal(order, np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0])))


# --------------------------------------------------------------------------------------------
# Merging arithmetic on synthetic crystals
# --------------------------------------------------------------------------------------------


def _crystal(hkl, intensity, sigma, index=0, limit=None, one_over_d=None):
    hkl = np.asarray(hkl, np.int32).reshape(-1, 3)
    n = len(hkl)
    return CrystalObservations(
        ("synthetic.h5", f"//{index}"), index, index, None, None, None, None, "P", limit,
        hkl[:, 0], hkl[:, 1], hkl[:, 2], np.asarray(intensity, float),
        np.asarray(sigma, float), np.full(n, np.nan) if one_over_d is None else
        np.asarray(one_over_d, float),
    )  # fmt: skip


def test_merge_mean_sigma_and_min_measurements():
    # (1,2,3) seen as itself, as (2,1,-3) and (-1,-2,-3) (all 4/mmm equivalents, Friedel too);
    # (5,0,0) seen once; (4,4,1) twice.
    m = Merger("4/mmm")
    m.add_crystal(_crystal([[1, 2, 3], [5, 0, 0], [4, 4, 1]], [10.0, 7.0, 3.0], [1, 1, 1], 0))
    m.add_crystal(_crystal([[2, 1, -3], [4, 4, -1]], [20.0, 5.0], [1, 1], 1))
    m.add_crystal(_crystal([[-1, -2, -3]], [36.0], [1], 2))
    out = m.result(min_measurements=2)
    got = {(int(h), int(k), int(l)): (i, s, n) for h, k, l, i, s, n in  # noqa: E741
           zip(out.h, out.k, out.l, out.I, out.sigma, out.nmeas, strict=True)}  # fmt: skip
    assert set(got) == {(2, 1, 3), (4, 4, 1)}  # (5,0,0) has one measurement only
    i, s, n = got[(2, 1, 3)]
    obs = np.array([10.0, 20.0, 36.0])
    assert n == 3 and i == pytest.approx(22.0)
    # process_hkl: sqrt(population variance) / sqrt(n)
    assert s == pytest.approx(np.sqrt(np.mean((obs - obs.mean()) ** 2)) / np.sqrt(3))
    assert got[(4, 4, 1)][:2] == pytest.approx((4.0, 1.0 / np.sqrt(2.0)))
    assert len(m.result(min_measurements=1)) == 3
    assert m.stats.n_crystals == 3 and m.stats.n_observations == 6


def test_merge_point_group_without_inversion_keeps_friedel_mates_apart():
    m = Merger("422")
    m.add_crystal(_crystal([[1, 2, 3], [-1, -2, -3]], [10.0, 30.0], [1, 1], 0))
    m.add_crystal(_crystal([[2, 1, -3], [1, 2, -3]], [14.0, 32.0], [1, 1], 1))
    out = m.result(min_measurements=1)
    assert len(out) == 2  # (1,2,3)~(2,1,-3) and (-1,-2,-3)~(1,2,-3) are Bijvoet mates in 422
    assert sorted(out.I.tolist()) == pytest.approx([12.0, 31.0])


def test_merge_filters_snr_resolution_and_nonfinite():
    m = Merger("-1", min_snr=2.0, push_res=0.5)
    xtal = _crystal(
        [[1, 0, 0], [2, 0, 0], [3, 0, 0], [4, 0, 0], [5, 0, 0]],
        [10.0, 1.0, 10.0, np.nan, 10.0], [1.0, 1.0, np.nan, 1.0, 1.0],
        limit=2.0, one_over_d=[1.0, 1.0, 1.0, 1.0, 2.6],
    )  # fmt: skip
    assert m.add_crystal(xtal) == 1  # only (1,0,0) survives
    assert (m.stats.n_rejected_snr, m.stats.n_rejected_res, m.stats.n_nonfinite) == (2, 1, 1)


def test_halves_split_crystals_evenly_and_reproducibly():
    rng = np.random.default_rng(RNG_SEED)
    crystals = [_crystal(rng.integers(-6, 7, (40, 3)), rng.normal(100, 10, 40), np.ones(40), i)
                for i in range(21)]  # fmt: skip

    def run(seed):
        m = Merger("mmm", halves=True, seed=seed)
        for x in crystals:
            m.add_crystal(x)
        return m.result(1), m.half_results(1)

    whole, (h1, h2) = run(7)
    assert abs(int(h1.nmeas.sum()) - int(h2.nmeas.sum())) <= 40  # 10 and 11 crystals
    assert int(h1.nmeas.sum() + h2.nmeas.sum()) == int(whole.nmeas.sum())
    again = run(7)[1]
    assert np.array_equal(again[0].I, h1.I) and np.array_equal(again[1].I, h2.I)
    other = run(8)[1][0]  # another seed, another split
    assert len(other) != len(h1) or not np.array_equal(other.I, h1.I)


# --------------------------------------------------------------------------------------------
# Reflection lists
# --------------------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    refl = ReflectionList(
        [3, 1, 1, -2], [0, 2, 0, 1], [1, 0, 5, 7], [1234.567, -3.2, 0.0, 1e6],
        [12.345, 0.5, 1.0, 2.0], [2, 3, 4, 9], [np.nan, 45.0, np.nan, -120.25], "mmm",
    )  # fmt: skip
    path = tmp_path / "x.hkl"
    write_hkl(path, refl, notes=["audit line"])
    text = path.read_text()
    assert text.splitlines()[:3] == [
        "CrystFEL reflection list version 2.0",
        "Symmetry: mmm",
        "   h    k    l          I    phase   sigma(I)   nmeas",
    ]
    assert _rows(text) == [
        "  -2    1    7 1000000.00  -120.25       2.00       9",
        "   1    0    5       0.00        -       1.00       4",
        "   1    2    0      -3.20    45.00       0.50       3",
        "   3    0    1    1234.57        -      12.35       2",
    ]
    back = read_hkl(path)
    assert back.symmetry == "mmm" and back.notes == ["audit line"]
    srt = refl.sorted()
    assert np.array_equal(back.h, srt.h) and np.array_equal(back.nmeas, srt.nmeas)
    assert np.allclose(back.I, srt.I, rtol=0, atol=0.0051)
    assert np.allclose(back.sigma, srt.sigma, rtol=0, atol=0.0051)
    assert np.array_equal(np.isnan(back.phase), np.isnan(srt.phase))


def test_read_hkl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.hkl"
    p.write_text("CrystFEL reflection list version 2.0\nSymmetry: 1\n   h k l\n   1 2 3 4.0 - 1.0\n"
                 "End of reflections\n")  # fmt: skip
    with pytest.raises(HklFormatError) as e:
        read_hkl(p)
    assert e.value.line_no == 4 and "bad.hkl" in str(e.value) and "7 columns" in str(e.value)
    p.write_text(
        "CrystFEL reflection list version 2.0\nSymmetry: 1\nhdr\n   1    2    3  4.0 - 1.0 1\n"
    )
    with pytest.raises(HklFormatError, match="End of reflections"):
        read_hkl(p)
    p.write_text("something else\n")
    with pytest.raises(HklFormatError, match="not a CrystFEL reflection list"):
        read_hkl(p)


# --------------------------------------------------------------------------------------------
# Conformance with process_hkl on ref-small
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["r345", "r234"])
def test_merge_equals_process_hkl(ref_small, run):
    """process_hkl -y 4/mmm --polarisation=none: same reflections, same order, same digits."""
    merged, merger = merge_streams([ref_small / f"lyso_dev_{run}.stream"], "4/mmm")
    expected_text = (ref_small / f"lyso_dev_{run}_process_hkl.hkl").read_text()
    expected = read_hkl(ref_small / f"lyso_dev_{run}_process_hkl.hkl")
    assert len(merged) == len(expected) == {"r345": 2656, "r234": 2704}[run]
    assert _rows(format_hkl(merged)) == _rows(expected_text)
    assert merger.stats.n_crystals == 30
    assert merger.stats.n_observations == {"r345": 11102, "r234": 11262}[run]


def test_merge_command_writes_list_and_halves(ref_small, tmp_path):
    parser = argparse.ArgumentParser(prog="streamfilter")
    add_merge_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "m.hkl"
    stream = str(ref_small / "lyso_dev_r345.stream")
    args = parser.parse_args(["merge", stream, "-y", "4/mmm", "-o", str(out), "--halves", "-q",
                              "--polarisation=none"])
    assert args.func(args) == 0
    text = out.read_text()
    assert text.splitlines()[1] == "Symmetry: 4/mmm"
    assert _rows(text) == _rows((ref_small / "lyso_dev_r345_process_hkl.hkl").read_text())
    assert "Audit information from stream:" in text and "Generated by CrystFEL 0.12.0" in text
    whole = read_hkl(out)
    h1, h2 = read_hkl(f"{out}1"), read_hkl(f"{out}2")
    assert min(len(h1), len(h2)) > 300
    # Half-sets keep process_hkl's rule of >= 2 measurements, and are subsets of the whole.
    assert h1.nmeas.min() >= 2 and h2.nmeas.min() >= 2
    assert np.isin(h1.keys(), whole.keys()).all() and np.isin(h2.keys(), whole.keys()).all()


def test_merging_in_batches_gives_single_pass_means():
    """The merge holds the running figures per unique reflection, not the observations: in
    batches of any size, every mean equals the single pass's bit for bit and every sigma to
    rounding, so a stream of tens of GB merges in constant memory."""
    from streamfilter.analysis.merge import _Accumulator
    from streamfilter.analysis.symmetry import pack_hkl, point_group

    rng = np.random.default_rng(11)
    h, k, l = (rng.integers(-6, 7, 20_000) for _ in range(3))  # noqa: E741
    keys = pack_hkl(h, k, l)
    values = rng.normal(100.0, 30.0, keys.size) * rng.uniform(0.1, 10.0)
    pg = point_group("4/mmm")
    whole, batched = _Accumulator(pg, batch=10**9), _Accumulator(pg, batch=997)
    for start in range(0, keys.size, 313):
        for acc in (whole, batched):
            acc.add(keys[start : start + 313], values[start : start + 313])
    a, b = whole.result(1, "4/mmm"), batched.result(1, "4/mmm")
    assert len(a.h) > 150 and np.median(a.nmeas) > 50  # many batches per reflection
    np.testing.assert_array_equal(a.I, b.I)
    np.testing.assert_array_equal(a.nmeas, b.nmeas)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-12)
