"""The lattice helpers every analysis shares: 1/d, centring absences, shells, value parsers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamfilter.analysis.shells import Shells
from streamfilter.cli import main as cli_main
from streamfilter.crystal import (
    Cell,
    centring_absent,
    d_A,
    invA,
    median_cell,
    one_over_d,
    parse_hkl,
    parse_int_radius,
)
from streamfilter.errors import StreamfilterError


def test_one_over_d_from_reciprocal_vectors_and_from_a_cell():
    cell = Cell(79.1, 79.1, 37.9, 90.0, 90.0, 90.0)
    h, k, l = np.array([1, 0, 3, 2]), np.array([0, 1, 4, -2]), np.array([0, 0, 0, 5])  # noqa: E741
    expected = 10.0 * np.sqrt((h / 79.1) ** 2 + (k / 79.1) ** 2 + (l / 37.9) ** 2)
    np.testing.assert_allclose(cell.one_over_d(h, k, l), expected, rtol=1e-12)
    astar, bstar, cstar = (10.0 * v for v in cell.reciprocal_basis())  # nm^-1
    np.testing.assert_allclose(one_over_d(h, k, l, astar, bstar, cstar), expected, rtol=1e-12)
    assert one_over_d(h.reshape(2, 2), k.reshape(2, 2), l.reshape(2, 2), astar, bstar,
                      cstar).shape == (2, 2)  # fmt: skip
    assert invA(10.0) == 1.0 and d_A(5.0) == 2.0 and d_A(d_A(3.5)) == 3.5


@pytest.mark.parametrize("centering", ["P", "A", "B", "C", "I", "F", "R", "H", "i", None])
def test_centring_absences_follow_the_lattice(centering):
    hkl = np.stack(np.meshgrid(*[np.arange(-4, 5)] * 3, indexing="ij")).reshape(3, -1)
    h, k, l = hkl  # noqa: E741
    got = centring_absent(h, k, l, centering)
    assert got.shape == h.shape
    present = {  # the reflections each centring lets through (CrystFEL's forbidden_reflection)
        "A": (k + l) % 2 == 0,
        "B": (h + l) % 2 == 0,
        "C": (h + k) % 2 == 0,
        "I": (h + k + l) % 2 == 0,
        "F": ((h + k) % 2 == 0) & ((h + l) % 2 == 0) & ((k + l) % 2 == 0),
        "H": (-h + k + l) % 3 == 0,
    }.get((centering or "P").upper(), np.ones(h.shape, bool))
    assert np.array_equal(~got, present)


def test_median_cell_of_crystals():
    class X:
        def __init__(self, cell, centering):
            self.cell, self.centering = cell, centering

    xs = [X((7.9, 7.9, 3.8, 90, 90, 90), "I"), X((8.1, 8.1, 3.8, 90, 90, 90), "I"), X(None, "P")]
    cell = median_cell(xs)
    assert cell.a == pytest.approx(80.0) and cell.centering == "I"
    assert median_cell([X(None, None)]) is None


def test_shells_from_d_and_the_lowest_edge():
    s = Shells.from_d((math.inf, 6.0, 3.5, 0.0))
    assert s.labels() == ["inf-6.00", "6.00-3.50", "3.50-0.00"]
    assert s.d_max.tolist() == [math.inf, 6.0, 3.5] and s.d_min.tolist() == [6.0, 3.5, 0.0]
    r = d_A(np.array([10.0, 6.0, 5.0, 3.5, 1.0]))
    assert s.assign(r, lowest_edge_inside=False).tolist() == [0, 0, 1, 1, 2]
    water = Shells.from_d((3.5, 2.95))
    assert water.assign(d_A(np.array([3.5, 3.2, 2.95, 2.9]))).tolist() == [0, 0, 0, -1]
    assert water.assign(
        d_A(np.array([3.5, 3.2, 2.95, 2.9])), lowest_edge_inside=False
    ).tolist() == [-1, 0, 0, -1]
    with pytest.raises(StreamfilterError, match="must decrease"):
        Shells.from_d((2.0, 3.0))


def test_int_radius_follows_reintegrate():
    assert parse_int_radius("3,4,5") == (3.0, 4.0, 5.0)
    assert parse_int_radius("2.5,4,4") == (2.5, 4.0, 4.0)
    for bad in ("3,3,5", "0,4,5", "4,3,5", "3,5,4", "3,4", "a,b,c", ""):
        with pytest.raises(StreamfilterError, match="r1 < r2 <= r3"):
            parse_int_radius(bad)


def test_hkl_triples():
    assert parse_hkl("-3,2,1") == (-3, 2, 1)
    assert parse_hkl("1 2 3") == (1, 2, 3)
    for bad in ("1,2", "1,2,3,4", "1,x,3"):
        with pytest.raises(StreamfilterError, match="3 comma-separated integers"):
            parse_hkl(bad)


def test_inspect_command_line_uses_the_shared_parsers(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["inspect", "x.stream", "--chunk", "0", "--hkl=1,2,3", "--int-radius", "3,3,5"])
    assert e.value.code == 2
    assert "r1 < r2 <= r3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["inspect", "x.stream", "--chunk", "0", "--hkl=1,2"])
    assert "expected 3 comma-separated integers" in capsys.readouterr().err
