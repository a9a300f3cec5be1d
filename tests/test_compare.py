"""Stream comparison: reindexing, observation matching, compare_hkl/check_hkl figures, plots."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re

import numpy as np
import pytest

from streamfilter.analysis.compare import CompareOptions, compare_streams
from streamfilter.analysis.hkl import ReflectionList, read_hkl
from streamfilter.analysis.matching import reindex_matrix
from streamfilter.analysis.shells import Shells
from streamfilter.analysis.statistics import compare_lists, list_statistics
from streamfilter.analysis.symmetry import point_group
from streamfilter.cli.compare import add_parser as add_compare_parser
from streamfilter.crystal import CellFormatError, parse_cell, read_cell
from streamfilter.stream import StreamWriter, TableUpdate, read_stream

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (h, k, l) -> (k, h, -l): swaps a* and b* and inverts c*; a 4/mmm operation, det +1.
SWAP = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])


def _dat(path):
    return np.loadtxt(path, skiprows=1)


# --------------------------------------------------------------------------------------------
# compare_hkl and check_hkl figures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "merge, cc_overall",
    [("r345_process_hkl", 0.8593736), ("r234_process_hkl", 0.8548668),
     ("r345_unity", 0.9026245), ("r234_partialator", 0.9955476)],
)  # fmt: skip
def test_cc_and_r1i_vs_truth_equal_compare_hkl(ref_small, merge, cc_overall):
    """compare_hkl -y 4/mmm -p lysozyme.cell --highres=2.0 --nshells=10 --fom=CC|R1I."""
    cell = read_cell(ref_small / "lysozyme.cell")
    data = read_hkl(ref_small / f"lyso_dev_{merge}.hkl")
    truth = read_hkl(ref_small / "truth.hkl")
    c = compare_lists(data, truth, cell, point_group("4/mmm"), nshells=10, rmax=5.0)
    assert c.cc_overall == pytest.approx(cc_overall, abs=1e-7)
    cc_dat = _dat(ref_small / f"shells/{merge}_CC_vs_truth.dat")
    r1_dat = _dat(ref_small / f"shells/{merge}_R1I_vs_truth.dat")
    assert np.array_equal(c.n, cc_dat[:, 2].astype(int))
    assert np.allclose(c.cc, cc_dat[:, 1], rtol=0, atol=1e-7)  # printed with %10.7f
    assert np.allclose(100 * c.r1i, r1_dat[:, 1], rtol=0, atol=0.0051)  # printed with %10.2f
    assert np.allclose(c.shells.rmin, cc_dat[:, 4], atol=5e-4)
    assert np.allclose(c.shells.rmax, cc_dat[:, 5], atol=5e-4)
    overall_r1 = {"r345_process_hkl": 38.42, "r234_process_hkl": 38.88, "r345_unity": 30.74,
                  "r234_partialator": 6.86}[merge]  # fmt: skip
    assert 100 * c.r1i_overall == pytest.approx(overall_r1, abs=0.0051)


@pytest.mark.parametrize("merge", ["r345_process_hkl", "r234_unity", "r345_partialator"])
def test_list_statistics_equal_check_hkl(ref_small, merge):
    """check_hkl -y 4/mmm -p lysozyme.cell --highres=2.0 --nshells=10."""
    cell = read_cell(ref_small / "lysozyme.cell")
    pg = point_group("4/mmm")
    data = read_hkl(ref_small / f"lyso_dev_{merge}.hkl")
    data = data.take(cell.one_over_d(data.h, data.k, data.l) <= 5.0)
    rmin = float(cell.one_over_d(data.h, data.k, data.l).min())
    st = list_statistics(data, cell, pg, Shells.equal_volume(rmin, 5.0, 10))
    chk = _dat(ref_small / f"shells/{merge}_check.dat")
    assert np.array_equal(st.n_unique, chk[:, 1].astype(int))
    assert np.array_equal(st.possible, chk[:, 2].astype(int))
    assert np.array_equal(st.n_measurements, chk[:, 4].astype(int))
    assert np.allclose(st.completeness, chk[:, 3], atol=0.0051)
    assert np.allclose(st.multiplicity, chk[:, 5], atol=0.051)
    assert np.allclose(st.mean_snr, chk[:, 6], atol=0.0051)
    assert np.allclose(st.mean_I, chk[:, 7], atol=0.0051)


def test_compare_lists_known_relation():
    """List 2 = 2 x list 1 minus some rows: CC 1, Wilson scale G = 1/2 and B = 0, R1 = 0."""
    rng = np.random.default_rng(5)
    pg = point_group("mmm")
    h, k, l = pg.asymmetric_indices(*rng.integers(-20, 21, (3, 3000)))  # noqa: E741
    keys = np.unique(np.stack([h, k, l], 1), axis=0)
    n = len(keys)
    refl = ReflectionList(*keys.T, rng.exponential(1000, n), np.ones(n), np.full(n, 3))
    keep = np.arange(n) % 5 != 0
    other = dataclasses.replace(refl.take(keep), I=2 * refl.I[keep])
    cell = parse_cell("a = 50 A\nb = 60 A\nc = 70 A\nal = 90 deg\nbe = 90 deg\nga = 90 deg\n")
    c = compare_lists(refl, other, cell, pg, nshells=5)
    assert c.n_overall == int(keep.sum()) == int(c.n.sum())
    assert c.cc_overall == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(c.cc, 1.0, atol=1e-12)
    assert (c.scale_G, c.scale_B) == (pytest.approx(0.5), pytest.approx(0.0, abs=1e-9))
    assert c.r1i_overall == pytest.approx(0.0, abs=1e-12)
    unscaled = compare_lists(refl, other, cell, pg, nshells=5, scale=False)
    assert unscaled.r1i_overall == pytest.approx(1.0)  # sum|I - 2I| / sum I


def test_equal_volume_shells_and_assignment():
    s = Shells.equal_volume(0.5, 5.0, 4)
    assert np.allclose(np.diff(s.edges**3), (5.0**3 - 0.5**3) / 4)
    r = np.array([0.5, 0.50001, s.edges[1], s.edges[1] + 1e-9, 5.0, 5.0001, 0.4, np.nan])
    assert s.assign(r).tolist() == [0, 0, 0, 1, 3, -1, -1, -1]


def test_cell_parsing(ref_small):
    cell = read_cell(ref_small / "lysozyme.cell")
    assert cell.parameters == (79.1, 79.1, 37.9, 90.0, 90.0, 90.0) and cell.centering == "P"
    assert cell.one_over_d(0, 0, 1) == pytest.approx(10 / 37.9)
    with read_stream(ref_small / "lyso_dev_r345.stream") as r:
        assert parse_cell(r.header.cell_text).parameters == (79.1, 79.1, 37.9, 90, 90, 90)
    pdb = "CRYST1   79.100   79.100   37.900  90.00  90.00  90.00 I 41 2 2     8\n"
    assert parse_cell(pdb).centering == "I" and parse_cell(pdb).c == 37.9
    nm = parse_cell("a = 7.91 nm\nb = 7.91 nm\nc = 3.79 nm\nal = 90 deg\nbe = 90 deg\nga = 120 deg")
    assert nm.a == pytest.approx(79.1) and nm.gamma == 120
    with pytest.raises(CellFormatError, match="missing ga"):
        parse_cell("a = 1 A\nb = 1 A\nc = 1 A\nal = 90 deg\nbe = 90 deg\n", "x.cell")


# --------------------------------------------------------------------------------------------
# Reindexing
# --------------------------------------------------------------------------------------------


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def test_reindex_matrix_recovers_setting_change():
    rng = np.random.default_rng(3)
    basis = np.diag([1 / 7.9, 1 / 7.9, 1 / 3.8]) @ _random_rotation(rng)
    for p in (SWAP, np.eye(3, dtype=int), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])):
        noisy = p @ basis * (1 + 1e-3 * rng.normal(size=(3, 3)))  # refinement noise
        rmat, dev = reindex_matrix(basis, noisy)
        assert np.array_equal(rmat, np.rint(np.linalg.inv(p)).astype(int)) and dev < 0.02
        hkl = rng.integers(-10, 11, (50, 3))
        # the same scattering vector: h_b . B = h_a . A with h_b = h_a . R
        assert np.allclose((hkl @ rmat) @ (p @ basis), hkl @ basis)
    other = np.diag([1 / 7.9, 1 / 7.9, 1 / 3.8]) @ _random_rotation(rng)
    assert reindex_matrix(basis, other)[0] is None


# --------------------------------------------------------------------------------------------
# Stream comparison
# --------------------------------------------------------------------------------------------


def _vector_line(name: str, v: np.ndarray) -> bytes:
    return ("%s = %+9.7f %+9.7f %+9.7f nm^-1" % (name, *v)).encode()  # noqa: UP031


def _make_modified_stream(src, dst) -> dict:
    """Copy of ``src`` with I x 2, every 7th row (from the 4th) dropped, and every other
    crystal re-indexed through SWAP (rows a*, b*, c* -> b*, a*, -c*; hkl -> k, h, -l)."""
    removed = 0
    n_crystals = 0
    with read_stream(src) as reader, StreamWriter(dst) as out:
        out.write_header(reader.header)
        for chunk in reader:
            updates = {}
            swaps = []
            for i, xtal in enumerate(chunk.crystals):
                t = xtal.reflections
                keep = np.arange(len(t)) % 7 != 3
                removed += int((~keep).sum())
                t = t.take(keep)
                t = dataclasses.replace(t, I=2.0 * t.I)
                if n_crystals % 2 == 1:
                    hkl = np.stack([t.h, t.k, t.l], 1) @ SWAP
                    t = dataclasses.replace(t, h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2])
                    swaps.append(xtal)
                updates[i] = TableUpdate(t)
                n_crystals += 1
            body = chunk.rewrite(updates)
            for xtal in swaps:
                new = {"astar": xtal.bstar, "bstar": xtal.astar, "cstar": -xtal.cstar}
                for name, vec in new.items():
                    line = _vector_line(name, vec)
                    pattern = rb"(?m)^" + name.encode() + rb" = .*$"
                    body = re.sub(pattern, lambda _m, line=line: line, body, count=1)
            out.write_chunk(chunk, body)
    return {"removed": removed, "crystals": n_crystals}


def test_compare_known_relation(ref_small, tmp_path):
    a = ref_small / "lyso_dev_r345.stream"
    b = tmp_path / "modified.stream"
    made = _make_modified_stream(a, b)
    res = compare_streams(str(a), str(b), CompareOptions(symmetry="4/mmm"))
    obs = res.report["observations"]
    assert obs["crystals_matched"] == made["crystals"] == 30
    assert obs["crystals_reindexed"] == 15
    assert obs["reindex_matrices"] == {"[[1, 0, 0], [0, 1, 0], [0, 0, 1]]": 15,
                                       "[[0, 1, 0], [1, 0, 0], [0, 0, -1]]": 15}  # fmt: skip
    assert obs["n_a"] == 11102 and obs["n_b"] == 11102 - made["removed"]
    assert obs["matched"] == 11102 - made["removed"]
    assert obs["only_a"] == made["removed"] and obs["only_b"] == 0
    ov = obs["overall"]
    assert ov["median_ratio_I"] == pytest.approx(2.0, abs=1e-9)
    assert ov["cc_I"] == pytest.approx(1.0, abs=1e-9)
    assert ov["median_ratio_sigma"] == 1.0 and ov["cc_sigma"] == pytest.approx(1.0, abs=1e-12)
    assert ov["median_ratio_I_over_sigma"] == pytest.approx(2.0, abs=1e-9)
    assert sum(s["matched"] for s in obs["shells"]) == obs["matched"]
    assert sum(s["only_a"] for s in obs["shells"]) == obs["only_a"]
    for s in obs["shells"]:
        assert s["median_ratio_I"] == pytest.approx(2.0, abs=1e-9)
    p = res.pairs
    assert np.allclose(p.I_b, 2.0 * p.I_a, rtol=1e-7, atol=0.006)
    # Merged level: re-indexed crystals land on the same unique reflections, so wherever B
    # kept every observation of a reflection, merged I(B) = 2 I(A) (to the 0.01 of a .hkl).
    ma, mb = res.merged_a, res.merged_b
    common, ia, ib = np.intersect1d(ma.keys(), mb.keys(), return_indices=True)
    assert np.isin(mb.keys(), ma.keys()).all() and len(common) > 1000
    same_n = ma.nmeas[ia] == mb.nmeas[ib]
    assert same_n.sum() > 1000
    assert np.allclose(mb.I[ib][same_n], 2 * ma.I[ia][same_n], rtol=0, atol=0.0151)
    assert np.allclose(mb.sigma[ib][same_n], 2 * ma.sigma[ia][same_n], rtol=0, atol=0.0151)


def _independent_match_count(path_a, path_b) -> tuple[int, int, int, int]:
    """Matched observations counted through the lab frame instead of an integer matrix:
    every B reflection's scattering vector h_b . B is expressed in crystal A's basis and
    rounded.  Also: the naive count of identical (frame, h, k, l), the number of A rows, and
    the number of frames whose two bases differ by more than refinement noise."""

    def load(path):
        out = {}
        with read_stream(path) as r:
            for chunk in r:
                for x in chunk.crystals:
                    t = x.reflections
                    basis = np.array([x.astar, x.bstar, x.cstar])
                    out[(chunk.filename, chunk.event)] = (basis, np.stack([t.h, t.k, t.l], 1))
        return out

    fa, fb = load(path_a), load(path_b)
    matched = naive = n_other_setting = 0
    for frame, (basis_a, hkl_a) in fa.items():
        basis_b, hkl_b = fb[frame]
        n_other_setting += not np.allclose(basis_a, basis_b, atol=0.01)
        in_a = np.rint((hkl_b @ basis_b) @ np.linalg.inv(basis_a)).astype(int)
        set_a = {tuple(v) for v in hkl_a.tolist()}
        matched += sum(tuple(v) in set_a for v in in_a.tolist())
        naive += sum(tuple(v) in set_a for v in hkl_b.tolist())
    return matched, naive, sum(len(v[1]) for v in fa.values()), n_other_setting


@pytest.fixture(scope="module")
def ref_compare(ref_small, tmp_path_factory):
    """``streamfilter compare r345 r234 -y 4/mmm --reference truth.hkl --highres 2.0 ...``."""
    out = tmp_path_factory.mktemp("compare")
    parser = argparse.ArgumentParser(prog="streamfilter")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "compare", str(ref_small / "lyso_dev_r345.stream"), str(ref_small / "lyso_dev_r234.stream"),
        "-y", "4/mmm", "--reference", str(ref_small / "truth.hkl"), "--highres", "2.0",
        "--json", str(out / "report.json"), "--plots", str(out / "plots"), "-q",
    ])  # fmt: skip
    return args, out


def test_compare_ref_small_streams(ref_small, ref_compare, capsys):
    args, out = ref_compare
    assert args.func(args) == 0
    text = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    obs = report["observations"]
    matched, naive, n_a, n_other_setting = _independent_match_count(args.a, args.b)
    assert obs["matched"] == matched
    assert obs["n_a"] == n_a == 11102 and obs["n_b"] == 11262
    assert matched / obs["n_a"] > 0.99  # every r345 row has its r234 partner
    assert matched / obs["n_b"] > 0.98  # r234 has 160 more rows (smaller radii) than r345
    assert naive / n_a < 0.5  # without reindexing only ~30 % would pair
    assert obs["crystals_matched"] == 30
    assert obs["crystals_reindexed"] == n_other_setting == 21  # "most frames" (README)
    assert f"{obs['crystals_reindexed']} needed reindexing" in text
    merged = report["merged"]
    assert merged["cell"]["a_A"] == 79.1 and "unit-cell block" in merged["cell"]["source"]
    # The README baseline table (process_hkl + check_hkl/compare_hkl, d >= 2.0 A) for our
    # merges of r345 (A) and r234 (B).
    baseline = {"a": (2378, 27.712388, 2.545837, 14.918906, 2376, 0.8593736, 38.42),
                "b": (2409, 28.073651, 2.551266, 13.750202, 2407, 0.8548668, 38.88)}  # fmt: skip
    for side, (n, compl, mult, isig, n_ref, cc_ref, r1_ref) in baseline.items():
        ov = merged[side]["overall"]
        assert ov["n_unique"] == n and ov["n_crystals"] == 30
        assert ov["completeness_percent"] == pytest.approx(compl, abs=1e-6)
        assert ov["multiplicity"] == pytest.approx(mult, abs=1e-6)
        assert ov["mean_I_over_sigma"] == pytest.approx(isig, abs=1e-6)
        vs_ref = merged[f"{side}_vs_reference"]["overall"]
        assert vs_ref["n_pairs"] == n_ref
        assert vs_ref["cc"] == pytest.approx(cc_ref, abs=1e-7)
        assert vs_ref["r1i_percent"] == pytest.approx(r1_ref, abs=0.005)
    shells = merged["a"]["shells"]
    assert len(shells) == 10 and all(s["cc_half"] is None or -1 <= s["cc_half"] <= 1
                                     for s in shells)  # fmt: skip
    cch = merged["a"]["overall"]["cc_half"]
    assert merged["a"]["overall"]["cc_star"] == pytest.approx(np.sqrt(2 * cch / (1 + cch)))
    assert 0.99 < merged["a_vs_b"]["overall"]["cc"] <= 1.0


def test_compare_plots_are_png(ref_compare):
    import matplotlib.image

    args, out = ref_compare
    if not (out / "plots").exists():
        assert args.func(args) == 0
    names = {"intensity_scatter.png", "ratio_vs_resolution.png", "isigma_hist.png",
             "cc_per_shell.png"}  # fmt: skip
    assert {p.name for p in (out / "plots").iterdir()} == names
    for name in names:
        data = (out / "plots" / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5000
        img = matplotlib.image.imread(out / "plots" / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_compare_two_reflection_lists(ref_small, capsys):
    """Two .hkl files: merged level only, symmetry from the files."""
    parser = argparse.ArgumentParser(prog="streamfilter")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "compare", str(ref_small / "lyso_dev_r345_process_hkl.hkl"), str(ref_small / "truth.hkl"),
        "-p", str(ref_small / "lysozyme.cell"), "--highres", "2.0", "-q",
    ])  # fmt: skip
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "Merged in 4/mmm" in text
    assert re.search(r"overall\s+2376\s+0\.8593736\s+38\.42", text)


# --------------------------------------------------------------------------------------------
# Pairing chunks (--pair-by), half-set files, the point-group warning
# --------------------------------------------------------------------------------------------


def _compare_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="streamfilter")
    add_compare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", *map(str, argv), "-q"])
    assert args.func(args) == 0
    return capsys.readouterr()


def _rewrite_lines(src, dst, edit) -> None:
    """Copy a stream, passing each line through ``edit`` (line -> line)."""
    with open(src) as f, open(dst, "w") as out:
        out.writelines(edit(line) for line in f)


def test_same_file_named_relative_and_absolute_pairs(ref_small, tmp_path, capsys):
    """A names ``lyso_dev.h5`` (beside it), B the absolute path of the same file, from
    another directory: every frame pairs, as with identical names."""
    a = ref_small / "lyso_dev_r345.stream"
    b = tmp_path / "abs.stream"
    absolute = f"Image filename: {(ref_small / 'lyso_dev.h5').resolve()}\n"
    _rewrite_lines(ref_small / "lyso_dev_r234.stream", b,
                   lambda s: absolute if s.startswith("Image filename:") else s)  # fmt: skip
    err = _compare_cli([a, b, "--json", tmp_path / "r.json"], capsys).err
    assert "no point group given (-y): merging in -1" in err
    obs = json.loads((tmp_path / "r.json").read_text())["observations"]
    assert obs["frames_common"] == 30 and obs["crystals_matched"] == 30
    assert obs["crystals_reindexed"] == 21
    assert obs["matched"] == 11102 and obs["only_b"] == 160  # r234 has 160 more rows


def test_moved_frames_pair_through_data_root(ref_small, tmp_path, capsys):
    """Two streams, away from the frames, name them under two directories that no longer
    exist; --data-root finds the one file both mean (as reintegrate would) and their chunks
    pair again."""
    moved = []
    for name, old in (("r345", "/beamtime/raw"), ("r234", "/scratch/copy")):
        path = tmp_path / name / f"{name}.stream"
        path.parent.mkdir()
        _rewrite_lines(ref_small / f"lyso_dev_{name}.stream", path,
                       lambda s, old=old: f"Image filename: {old}/lyso_dev.h5\n"
                       if s.startswith("Image filename:") else s)  # fmt: skip
        moved.append(path)
    args = [*moved, "-y", "4/mmm", "--json", tmp_path / "r.json"]
    _compare_cli(args, capsys)
    assert json.loads((tmp_path / "r.json").read_text())["observations"] is None
    _compare_cli([*args, "--data-root", ref_small], capsys)
    obs = json.loads((tmp_path / "r.json").read_text())["observations"]
    assert obs["frames_common"] == 30 and obs["matched"] == 11102


def test_no_warning_with_a_point_group(ref_small, capsys):
    lists = [ref_small / "lyso_dev_r345_unity.hkl", ref_small / "lyso_dev_r234_unity.hkl",
             "-p", ref_small / "lysozyme.cell"]
    assert "point group" not in _compare_cli([*lists, "-y", "4/mmm"], capsys).err
    assert "point group" not in _compare_cli(lists, capsys).err  # the lists' own Symmetry


@pytest.fixture(scope="module")
def dose_series(ref_small, tmp_path_factory):
    """B: r345 with every chunk's event number + 1, as the next frame of a dose series
    would be stored (serial numbers kept), named by absolute path."""
    b = tmp_path_factory.mktemp("dose") / "second_dose.stream"
    absolute = f"Image filename: {(ref_small / 'lyso_dev.h5').resolve()}\n"

    def edit(line):
        if line.startswith("Event: //"):
            return f"Event: //{int(line[9:]) + 1}\n"
        return absolute if line.startswith("Image filename:") else line

    _rewrite_lines(ref_small / "lyso_dev_r345.stream", b, edit)
    return ref_small / "lyso_dev_r345.stream", b


def _obs(a, b, pair_by):
    from streamfilter.analysis.pairing import parse_pair_by

    opts = CompareOptions(symmetry="4/mmm", pairing=parse_pair_by(pair_by))
    return compare_streams(str(a), str(b), opts).report["observations"]


@pytest.mark.parametrize("pair_by", ["event-offset:1", "serial", "map"])
def test_pair_by_pairs_a_dose_series(dose_series, tmp_path, pair_by):
    """By file and event the shifted chunks hold other crystals (nothing matches); paired by
    event offset, serial number or a map file every observation finds its own twin."""
    a, b = dose_series
    by_event = _obs(a, b, "file")
    assert by_event["frames_common"] == 29 and by_event["crystals_matched"] == 0
    if pair_by == "map":  # half the chunks by serial number, half by FILE//EVENT
        lines = [f"{n} {n}\n" if n % 2 else f"lyso_dev.h5//{n - 1} {a.parent}/lyso_dev.h5//{n}\n"
                 for n in range(1, 31)]  # fmt: skip
        mapping = tmp_path / "pairs.txt"
        mapping.write_text("# A B\n" + "".join(lines))
        pair_by = f"map:{mapping}"
    obs = _obs(a, b, pair_by)
    assert obs["frames_common"] == 30 and obs["crystals_matched"] == 30
    assert obs["crystals_reindexed"] == 0
    assert obs["matched"] == obs["n_a"] == obs["n_b"] == 11102
    assert obs["overall"]["median_ratio_I"] == 1.0 and obs["overall"]["cc_I"] == 1.0


def test_pair_by_errors_name_the_file_and_line(dose_series, tmp_path):
    from streamfilter.analysis.pairing import parse_pair_by
    from streamfilter.errors import StreamfilterError

    a, b = dose_series
    with pytest.raises(StreamfilterError, match="event-offset:K"):
        parse_pair_by("event-offset:x")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1\n2 2 2\n")
    with pytest.raises(StreamfilterError, match=r"bad\.txt, line 2: expected two columns"):
        _obs(a, b, f"map:{bad}")
    bad.write_text("1 1\n1 2\n")
    with pytest.raises(StreamfilterError, match=r"line 2: 1 is paired twice"):
        _obs(a, b, f"map:{bad}")


@pytest.mark.parametrize("name, cc_half, rsplit", [("r345_unity", 0.7872808, 29.36),
                                                   ("r234_unity", 0.6639302, 34.92)])
def test_half_set_files_give_compare_hkl_cc_half_and_rsplit(ref_small, name, cc_half, rsplit):
    """X.hkl1/X.hkl2 beside X.hkl are picked up: CC1/2 and Rsplit equal
    ``compare_hkl -y 4/mmm -p lysozyme.cell --highres=2.0 --fom=CC|Rsplit X.hkl1 X.hkl2``
    (CrystFEL 0.12.0, ref-small's commands.log)."""
    a = ref_small / f"lyso_dev_{name}.hkl"
    opts = CompareOptions(symmetry="4/mmm", cell=str(ref_small / "lysozyme.cell"), highres=2.0)
    rep = compare_streams(str(a), str(ref_small / "truth.hkl"), opts).report["merged"]
    ov = rep["a"]["overall"]
    assert ov["cc_half"] == pytest.approx(cc_half, abs=1e-7)
    assert ov["rsplit_percent"] == pytest.approx(rsplit, abs=0.005)
    assert f"lyso_dev_{name}.hkl1" in rep["a"]["half_sets"]
    assert sum(s["n_half_pairs"] for s in rep["a"]["shells"]) == ov["n_half_pairs"]
    assert "cc_half" not in rep["b"]["overall"]  # truth.hkl has no half-sets


def _texts(fig) -> str:
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        out += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
        out += [t.get_text() for t in ax.texts]
    return "\n".join(out)


def test_figures_name_inputs_draw_density_and_count_negatives(ref_small):
    """What the reader of each figure needs: the file names of A and B, density instead of
    a cloud of dots, the per-shell median, d in Angstrom, and the pairs a log axis cannot
    show counted; intensities of reflection lists are not called ADU."""
    pytest.importorskip("matplotlib", reason="matplotlib not installed (the [plot] extra)")
    from matplotlib.collections import PolyCollection

    from streamfilter.analysis.plots import compare_figures

    opts = CompareOptions(symmetry="4/mmm", highres=2.0)
    res = compare_streams(str(ref_small / "lyso_dev_r345.stream"),
                          str(ref_small / "lyso_dev_r234.stream"), opts)  # fmt: skip
    figs = compare_figures(res)
    for fig in figs.values():
        assert "A = lyso_dev_r345.stream" in _texts(fig)
        assert "B = lyso_dev_r234.stream" in _texts(fig)
    p = res.pairs
    positive = (p.I_a > 0) & (p.I_b > 0)
    scatter = figs["intensity_scatter.png"]
    hexes = [c for c in scatter.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(hexes) == 1 and hexes[0].get_array().sum() == positive.sum() == 9055
    text = _texts(scatter)
    assert "I(A) / ADU" in text and f"{(~positive).sum()} with I <= 0" in text
    ratio = figs["ratio_vs_resolution.png"]
    ax = ratio.axes[0]
    assert ax.get_xlabel().startswith("d / Å") and "2.5" in [t.get_text()
                                                              for t in ax.get_xticklabels()]
    median_line = [ln for ln in ax.lines if ln.get_label() == "median per shell"][0]
    j = res.obs_shells.assign(p.one_over_d[positive])
    r = p.I_b[positive] / p.I_a[positive]
    expected = [np.median(r[j == s]) for s in range(res.obs_shells.n)]
    assert np.allclose(median_line.get_ydata(), expected)
    lists = compare_streams(str(ref_small / "lyso_dev_r345_partialator.hkl"),
                            str(ref_small / "truth.hkl"),
                            CompareOptions(cell=str(ref_small / "lysozyme.cell")))  # fmt: skip
    text = _texts(compare_figures(lists)["intensity_scatter.png"])
    assert "I(A) (scaled)" in text and "ADU" not in text
    assert "lyso_dev_r345_partialator.hkl" in text
