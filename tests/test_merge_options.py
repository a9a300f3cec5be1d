"""``streamfilter merge`` with process_hkl's options equals process_hkl (CrystFEL 0.12.0), and
point-group / index arguments that begin with '-' work in every subcommand.

The stream is generated in the test (tests/merge_stream.py, fixed seed); the outputs of the
real process_hkl on it are recorded under tests/data/merge/ (README there).  Rows are compared
as printed: every digit process_hkl prints.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from streamfilter.analysis.merge import MergeOptions, merge_streams
from streamfilter.analysis.polarisation import (
    HORIZONTAL,
    NONE,
    Polarisation,
    parse_polarisation,
    polarisation_factors,
)
from streamfilter.cli import build_parser, main
from streamfilter.cli._common import join_dash_values
from tests.merge_stream import CASES, build_merge_stream

DATA = Path(__file__).parent / "data" / "merge"
STREAM_MD5 = "9d693a77144ba97fc0b720d95cca11b7"
PROCESS_HKL = shutil.which("process_hkl") or (
    "/work/crystfel/bin/process_hkl" if os.access("/work/crystfel/bin/process_hkl", os.X_OK)
    else None)  # fmt: skip


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("merge") / "merge_synth.stream"
    path.write_bytes(build_merge_stream())
    return path


def _rows(path: Path) -> list[str]:
    """Symmetry line and reflection rows of a reflection list, as printed."""
    lines = path.read_text().splitlines()
    return [lines[1], *lines[3 : lines.index("End of reflections")]]


def _merge(stream: Path, out: Path, opts: list[str]) -> int:
    """``streamfilter merge -i STREAM -o OUT OPTIONS``: process_hkl's command line."""
    stat = out.with_suffix(".stat")
    opts = [o.replace("STAT", str(stat)) for o in opts]
    return main(["merge", "-i", str(stream), "-o", str(out), "-q", *opts])


def test_generated_stream_is_the_one_the_references_were_recorded_from(stream):
    assert hashlib.md5(stream.read_bytes()).hexdigest() == STREAM_MD5


@pytest.mark.parametrize("name", list(CASES))
def test_merge_equals_recorded_process_hkl(stream, tmp_path, name):
    """Each option (polarisation, min/max filters, even/odd, start/stop, scale, stat, point
    groups beginning with '-') gives process_hkl's rows, digit for digit."""
    out = tmp_path / f"{name}.hkl"
    assert _merge(stream, out, CASES[name]) == 0
    assert _rows(out) == _rows(DATA / f"{name}.hkl")
    if (DATA / f"{name}.stat").exists():
        assert out.with_suffix(".stat").read_text() == (DATA / f"{name}.stat").read_text()


def test_options_change_the_merge(stream, tmp_path):
    """The recorded cases are not all the same list: each option takes effect."""
    rows = {name: _rows(DATA / f"{name}.hkl") for name in CASES}
    base = rows["y4mmm"]
    for name in CASES:
        if name in ("y4mmm", "stat"):
            continue
        assert rows[name] != base, name
    assert rows["pol_none"] == rows["no_pol"]
    assert rows["default"][0] == "Symmetry: 1"  # process_hkl's default point group


@pytest.mark.skipif(PROCESS_HKL is None, reason="CrystFEL's process_hkl is not installed")
@pytest.mark.parametrize("name", ["default", "y_m42m", "combined", "stat", "min_cc"])
def test_recorded_outputs_are_what_process_hkl_writes(stream, tmp_path, name):
    opts = [o.replace("STAT", f"{name}.stat") for o in CASES[name]]
    subprocess.run([PROCESS_HKL, "-i", str(stream), "-o", f"{name}.hkl", *opts],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)  # fmt: skip
    assert _rows(tmp_path / f"{name}.hkl") == _rows(DATA / f"{name}.hkl")


@pytest.mark.skipif(PROCESS_HKL is None, reason="CrystFEL's process_hkl is not installed")
def test_default_polarisation_equals_process_hkl_on_ref_small(ref_small, tmp_path):
    """process_hkl's default (horizontal polarisation) on 30 simulated frames."""
    stream = ref_small / "lyso_dev_r345.stream"
    subprocess.run([PROCESS_HKL, "-i", str(stream), "-o", "ph.hkl", "-y", "4/mmm", "--scale"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=300)  # fmt: skip
    out = tmp_path / "sf.hkl"
    assert main(["merge", str(stream), "-y", "4/mmm", "--scale", "-o", str(out), "-q"]) == 0
    assert _rows(out) == _rows(tmp_path / "ph.hkl")


def test_two_streams_merge_as_one(stream, tmp_path):
    """Crystals are counted over all the streams (even/odd), as by process_hkl."""
    text = stream.read_bytes()
    cut = text.index(b"----- Begin chunk -----\nImage filename: merge_synth.h5\nEvent: //13")
    head = text[: text.index(b"----- Begin chunk -----")]
    first, second = tmp_path / "a.stream", tmp_path / "b.stream"
    first.write_bytes(text[:cut])
    second.write_bytes(head + text[cut:])
    out = tmp_path / "two.hkl"
    assert main(["merge", str(first), str(second), "-y", "4/mmm", "--even-only", "-o",
                 str(out), "-q"]) == 0  # fmt: skip
    assert _rows(out) == _rows(DATA / "even.hkl")


# --------------------------------------------------------------------------------------------
# Polarisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("none", NONE),
    ("horiz", HORIZONTAL),
    ("horizontal", HORIZONTAL),
    ("vert", Polarisation(1.0, math.pi / 2)),
    ("vert50", Polarisation(0.5, math.pi / 2)),
    ("45deg70", Polarisation(0.7, math.radians(45))),
    ("deg", Polarisation(1.0, 0.0)),
])  # fmt: skip
def test_polarisation_values_as_process_hkl_reads_them(text, expected):
    assert parse_polarisation(text) == expected


@pytest.mark.parametrize("bad", ["", "90", "sideways", "5horiz", "horiz101", "45deg-3",
                                 "horizontal100x", "vertvertvertvert"])  # fmt: skip
def test_bad_polarisation_is_refused(bad, stream, tmp_path, capsys):
    with pytest.raises(ValueError):
        parse_polarisation(bad)
    with pytest.raises(SystemExit) as e:
        main(["merge", str(stream), "-o", str(tmp_path / "x.hkl"), f"--polarisation={bad}"])
    assert e.value.code == 2 and "polarisation" in capsys.readouterr().err
    assert not (tmp_path / "x.hkl").exists()


def test_polarisation_factor_physics():
    """Unpolarised (50 %): (1 + cos^2 2theta) / 2 whatever phi; fully polarised along x: no
    intensity scattered along x at 2theta = 90 deg, full along y."""
    rng = np.random.default_rng(5)
    h, k, l = rng.integers(-8, 9, (3, 200))  # noqa: E741
    astar, bstar, cstar = np.eye(3) * 0.3  # nm^-1
    energy = 12398.42 / 1.0  # about 1 A
    pol = polarisation_factors(h, k, l, astar, bstar, cstar, energy,
                               Polarisation(0.5, 0.0))  # fmt: skip
    q = np.stack([h, k, l], 1) * 0.3e9
    k0 = 1 / ((6.62606896e-34 * 299792458.0) / (energy * 1.6021773e-19))
    kout = q + [0, 0, k0]
    cos2t = kout[:, 2] / np.linalg.norm(kout, axis=1)
    assert np.allclose(pol, (1 + cos2t**2) / 2, rtol=1e-12)
    assert np.all(polarisation_factors(h, k, l, astar, bstar, cstar, energy, NONE) == 1)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_no_input_is_refused(tmp_path, capsys):
    assert main(["merge", "-o", str(tmp_path / "x.hkl")]) == 2
    assert "input stream" in capsys.readouterr().err


def test_even_and_odd_together_are_refused(stream, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["merge", str(stream), "-o", str(tmp_path / "x.hkl"), "--even-only", "--odd-only"])
    assert e.value.code == 2


def test_scale_from_standard_input_is_refused(stream, tmp_path, capsys, monkeypatch):
    """process_hkl cannot rewind standard input and merges once without saying so; here it
    is an error before anything is written."""
    monkeypatch.setattr("sys.stdin", open(stream, "rb"))  # noqa: SIM115
    assert main(["merge", "-", "--scale", "-o", str(tmp_path / "x.hkl")]) == 2
    assert "standard input" in capsys.readouterr().err
    assert not (tmp_path / "x.hkl").exists()


def test_polarisation_needs_the_photon_energy(stream, tmp_path, capsys):
    broken = tmp_path / "nophoton.stream"
    text = stream.read_bytes()
    broken.write_bytes(text.replace(b"photon_energy_eV = ", b"photon_energy_XX = ", 3))
    assert main(["merge", str(broken), "-o", str(tmp_path / "x.hkl")]) == 2
    err = capsys.readouterr().err
    assert "nophoton.stream" in err and "chunk 0" in err and "photon_energy_eV" in err
    assert main(["merge", str(broken), "-o", str(tmp_path / "x.hkl"), "--no-polarisation",
                 "-q"]) == 0  # fmt: skip


def test_library_default_is_no_polarisation(stream):
    merged, _ = merge_streams([stream], "4/mmm")
    corrected, _ = merge_streams([stream], "4/mmm",
                                 options=MergeOptions(polarisation=HORIZONTAL))  # fmt: skip
    expected = _rows(DATA / "pol_none.hkl")[1:]
    assert [f"{h:4d} {k:4d} {l:4d} {i:10.2f}" for h, k, l, i in
            zip(merged.h, merged.k, merged.l, merged.I, strict=True)] == \
        [r[:25] for r in expected]  # fmt: skip
    assert not np.array_equal(merged.I, corrected.I)


# --------------------------------------------------------------------------------------------
# Arguments that begin with '-'
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["-42m", "-4m2", "-3_R", "-3m_R", "-3_H", "-3m1_H",
                                    "-31m_H", "-6m2", "-62m", "-43m", "-1", "-3_H", "-4", "-6"])
def test_point_groups_beginning_with_minus_parse_everywhere(symbol):
    for command in (["merge", "s.stream"], ["compare", "a.stream", "b.stream"],
                    ["stats", "s.stream"]):
        for flag in ("-y", "--symmetry", "--sym"):
            argv = join_dash_values([*command, flag, symbol, "-o", "x"]
                                    if command[0] == "merge" else [*command, flag, symbol])
            args = build_parser(command[0]).parse_args(argv)
            assert args.symmetry == symbol


def test_negative_indices_parse_for_inspect():
    argv = join_dash_values(["inspect", "s.stream", "--chunk", "0", "--hkl", "-2,0,-1"])
    assert build_parser("inspect").parse_args(argv).hkl == (-2, 0, -1)
    argv = join_dash_values(["inspect", "s.stream", "--chunk", "0", "--hkl", "-10,-3,4"])
    assert build_parser("inspect").parse_args(argv).hkl == (-10, -3, 4)


def test_dash_pre_pass_leaves_other_words_alone():
    argv = ["merge", "-", "-y", "4/mmm", "-o", "-", "-q", "--", "-y", "-1"]
    assert join_dash_values(argv) == argv
    assert join_dash_values(["compare", "a", "b", "-y", "-q"]) == ["compare", "a", "b", "-y",
                                                                   "-q"]  # fmt: skip


def test_compare_with_a_point_group_beginning_with_minus(stream, capsys):
    assert main(["compare", str(stream), str(stream), "-y", "-42m", "-q"]) == 0
    assert "-42m" in capsys.readouterr().out


def test_stats_with_a_point_group_beginning_with_minus(tmp_path, capsys):
    """check_hkl's table of a recorded -42m merge, the point group given with a space."""
    cell = tmp_path / "tetragonal.cell"
    cell.write_text("CrystFEL unit cell file version 1.0\n\nlattice_type = tetragonal\n"
                    "centering = P\nunique_axis = c\na = 79.0 A\nb = 79.0 A\nc = 38.0 A\n"
                    "al = 90.0 deg\nbe = 90.0 deg\nga = 90.0 deg\n")  # fmt: skip
    assert main(["stats", str(DATA / "y_m42m.hkl"), "-y", "-42m", "-p", str(cell)]) == 0
    assert "overall" in capsys.readouterr().out


def test_stop_after_counts_over_all_the_streams(stream, tmp_path):
    """--stop-after N merges N crystals in all, however the crystals are split into streams
    (process_hkl, stopped in its first stream, would merge the whole of the second)."""
    text = stream.read_bytes()
    cut = text.index(b"----- Begin chunk -----\nImage filename: merge_synth.h5\nEvent: //6")
    head = text[: text.index(b"----- Begin chunk -----")]
    first, second = tmp_path / "a.stream", tmp_path / "b.stream"
    first.write_bytes(text[:cut])
    second.write_bytes(head + text[cut:])
    opts = MergeOptions(start_after=3, stop_after=10, polarisation=HORIZONTAL)
    merged, merger = merge_streams([first, second], "4/mmm", options=opts)
    assert merger.stats.n_crystals_merged == 10
    out = tmp_path / "two.hkl"
    assert main(["merge", str(first), str(second), "-y", "4/mmm", "--start-after=3",
                 "--stop-after=10", "-o", str(out), "-q"]) == 0  # fmt: skip
    assert _rows(out) == _rows(DATA / "start_stop.hkl")


def test_means_follow_process_hkls_running_update():
    """Mean and sigma are process_hkl's running update, bit for bit, however the
    observations fall into batches (a mean taken as sum / n differs in the last bits, which
    turned one printed digit of 7111 on a 113 MB stream)."""
    from streamfilter.analysis.merge import _Accumulator
    from streamfilter.analysis.symmetry import pack_hkl, point_group

    rng = np.random.default_rng(3)
    h, k, l = (rng.integers(-3, 4, 5000) for _ in range(3))  # noqa: E741
    values = np.round(rng.normal(0.0, 30.0, h.size), 2)
    pg = point_group("4/mmm")
    acc = _Accumulator(pg, batch=397)
    for start in range(0, h.size, 101):
        acc.add(pack_hkl(h, k, l)[start : start + 101], values[start : start + 101])
    got = acc.result(1, "4/mmm")
    state: dict[int, tuple[float, float, float]] = {}
    for key, x in zip(pg.reduce_keys(pack_hkl(h, k, l)).tolist(), values.tolist(), strict=True):
        mean, sumweight, m2 = state.get(key, (0.0, 0.0, 0.0))
        temp = 1.0 + sumweight
        delta = x - mean
        r = delta * 1.0 / temp
        state[key] = (mean + r, temp, m2 + sumweight * delta * r)
    keys = sorted(state)
    assert np.array_equal(got.keys(), np.array(keys))
    assert got.I.tolist() == [state[key][0] for key in keys]
    assert got.sigma.tolist() == [math.sqrt(state[key][2] / state[key][1])
                                  / math.sqrt(state[key][1]) for key in keys]  # fmt: skip
