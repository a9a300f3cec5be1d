"""The background plane of ``--method crystfel -grad``: solved by the system's GSL with
indexamajig's own calls when GSL is installed (the last bits decide how ``%.2f`` prints an
intensity on a print tie, which photon-counting data hit often), else by numpy, and the run
says which.

The expected values were recorded with GSL 2.7.1 (the library CrystFEL 0.12.0 links here),
through the same calls as CrystFEL's ``solve_svd``: full and partly masked background rings
of the radii 2,3,5, 3,4,5, 4,5,7 and 1,2,3, with Poisson(0.4) photon counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamfilter.cli import main
from streamfilter.integrate import gsl, plane
from streamfilter.integrate.plane import solve_normal_equations
from streamfilter.pipeline.config import ReintegrateConfig, provenance_line

# (normal matrix row-major, right-hand side, GSL's (a, b, c) as float.hex)
RECORDED = [
    ([1876, 1400, 280, 1400, 1876, 280, 280, 280, 56], [96.0, 116.0, 21.0],
     ["-0x1.35c81135c80ecp-6", "0x1.7a9f317a9f324p-6", "0x1.6a7cc5ea7cc4dp-2"]),
    ([1266, 900, 180, 900, 1266, 180, 180, 180, 36], [42.0, 57.0, 9.0],
     ["-0x1.0c9714fbcda3fp-7", "0x1.0c9714fbcda3dp-5", "0x1.04325c53ef366p-3"]),
    ([1456, 1102, 220, 1102, 1552, 230, 220, 230, 46], [47.0, 69.0, 15.0],
     ["-0x1.f54389b2d20c6p-5", "-0x1.df1966f89eda6p-7", "0x1.62386ef192275p-1"]),
    ([3870, 3013, 418, 3013, 4348, 456, 418, 456, 64], [103.0, 146.0, 18.0],
     ["-0x1.b3287f98a49f6p-7", "0x1.0f7f9f04a7c19p-6", "0x1.ffd45e75a9ca6p-3"]),
    ([242, 180, 60, 180, 242, 60, 60, 60, 20], [12.0, 13.0, 4.0],
     ["0x1.8af386fd09e54p-54", "0x1.084210842108dp-6", "0x1.3680d3680d355p-3"]),
]  # fmt: skip
M = np.array([r[0] for r in RECORDED], dtype=np.float64).reshape(-1, 3, 3)
RHS = np.array([r[1] for r in RECORDED])
WANT = np.array([[float.fromhex(x) for x in r[2]] for r in RECORDED])


@pytest.fixture
def no_gsl(monkeypatch):
    """GSL made unavailable: the library finder finds nothing."""
    monkeypatch.delenv(gsl.ENV, raising=False)
    monkeypatch.setattr(gsl, "_find_library", lambda name: None)
    gsl.reset()
    yield
    monkeypatch.undo()
    gsl.reset()


@pytest.fixture
def with_gsl(monkeypatch):
    """The system GSL (found as a run finds it); skip when it is absent."""
    monkeypatch.delenv(gsl.ENV, raising=False)
    gsl.reset()
    if gsl.gsl_library() is None:
        pytest.skip(f"GSL not available ({gsl.load_failure()}): install libgsl27 / conda gsl "
                    "to check the -grad plane against indexamajig's digits")
    yield gsl.gsl_library()
    gsl.reset()


def test_plane_equals_crystfels_bit_for_bit_with_gsl(with_gsl):
    got = solve_normal_equations(M, RHS)
    assert [[x.hex() for x in row] for row in got.tolist()] == [r[2] for r in RECORDED]
    np.testing.assert_array_equal(got, WANT)
    # the same systems repeated and shuffled (one factorisation per distinct matrix)
    order = np.random.default_rng(0).permutation(np.tile(np.arange(len(M)), 3))
    np.testing.assert_array_equal(solve_normal_equations(M[order], RHS[order]), WANT[order])
    assert plane.plane_solver() == f"GSL {with_gsl.version} ({with_gsl.soname}), as indexamajig"


@pytest.mark.parametrize("solver", ["gsl", "numpy"])
def test_plane_is_the_least_squares_plane(solver, request):
    request.getfixturevalue("with_gsl" if solver == "gsl" else "no_gsl")
    rng = np.random.default_rng(2)
    q, p = np.mgrid[0:11, 0:11]
    d2 = (p - 5) ** 2 + (q - 5) ** 2
    use = (d2 >= 9) & (d2 <= 25) & (rng.random(d2.shape) > 0.2)
    pp, qq = p[use].astype(float), q[use].astype(float)
    v = 0.3 * pp - 0.1 * qq + 7.0 + rng.normal(0, 1, pp.size)
    design = np.stack([pp, qq, np.ones_like(pp)], axis=1)
    got = solve_normal_equations((design.T @ design)[None], (design.T @ v)[None])[0]
    np.testing.assert_allclose(got, np.linalg.lstsq(design, v, rcond=None)[0], rtol=1e-12)
    np.testing.assert_allclose(solve_normal_equations(M, RHS), WANT, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("solver", ["gsl", "numpy"])
def test_no_background_pixel_gives_nan(solver, request):
    request.getfixturevalue("with_gsl" if solver == "gsl" else "no_gsl")
    m = np.concatenate([np.zeros((1, 3, 3)), M[:1]])
    got = solve_normal_equations(m, np.zeros((2, 3)))
    assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()


def test_without_gsl_numpy_solves_and_the_run_says_so(no_gsl, capsys):
    assert not plane.uses_gsl()
    np.testing.assert_array_equal(solve_normal_equations(M, RHS), plane.solve_numpy(M, RHS))
    grad = ReintegrateConfig("", method="crystfel", gradient=True)
    line = provenance_line(grad).decode()
    assert line.endswith(
        "; plane solver: numpy (libgsl not found): -grad intensities on %.2f ties may differ "
        "from indexamajig's in the last printed digit\n"
    )
    # no plane, no solver named
    assert "plane solver" not in provenance_line(ReintegrateConfig("", method="crystfel")).decode()
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "crystfel -grad plane solver: numpy (libgsl not found)" in capsys.readouterr().out


def test_with_gsl_the_run_names_it(with_gsl, capsys):
    line = provenance_line(ReintegrateConfig("", method="crystfel", gradient=True)).decode()
    assert f"; plane solver: GSL {with_gsl.version} ({with_gsl.soname}), as indexamajig" in line
    with pytest.raises(SystemExit):
        main(["--version"])
    assert f"plane solver: GSL {with_gsl.version}" in capsys.readouterr().out


def test_gsl_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(gsl.ENV, "off")
    gsl.reset()
    try:
        assert not plane.uses_gsl()
        assert plane.plane_solver().startswith(f"numpy ({gsl.ENV}=off): ")
    finally:
        monkeypatch.undo()
        gsl.reset()
