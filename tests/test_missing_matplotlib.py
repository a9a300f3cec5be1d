"""``compare --plots`` and ``inspect --png`` without matplotlib: refused before any reading."""

from __future__ import annotations

import sys

import pytest

from streamfilter.cli import main


@pytest.fixture
def no_matplotlib(monkeypatch):
    """matplotlib (and every submodule already imported) made unimportable."""
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def _refused(capsys, option: str) -> None:
    err = capsys.readouterr().err
    assert f"{option} needs matplotlib" in err
    assert "pip install 'streamfilter[plot]'" in err
    assert "no such file" not in err.lower() and "missing.stream" not in err


def test_compare_plots_without_matplotlib_fails_before_reading(no_matplotlib, tmp_path, capsys):
    a, b = tmp_path / "missing.stream", tmp_path / "also-missing.stream"
    rc = main(["compare", str(a), str(b), "--plots", str(tmp_path / "figs"), "-q"])
    assert rc == 2
    _refused(capsys, "--plots")
    assert not (tmp_path / "figs").exists()


@pytest.mark.parametrize("what", [["--hkl", "1,2,3"], ["--threshold", "100"]])
def test_inspect_png_without_matplotlib_fails_before_reading(
    no_matplotlib, tmp_path, capsys, what
):
    png = tmp_path / "box.png"
    stream = str(tmp_path / "missing.stream")
    rc = main(["inspect", stream, "--chunk", "0", *what, "--png", str(png)])
    assert rc == 2
    _refused(capsys, "--png")
    assert not png.exists()


def test_without_plots_matplotlib_is_not_needed(no_matplotlib, tmp_path, capsys):
    """The check is made only when figures are asked for."""
    rc = main(["compare", str(tmp_path / "missing.stream"), str(tmp_path / "b.stream"), "-q"])
    assert rc == 2
    assert "needs matplotlib" not in capsys.readouterr().err
