"""Warnings of streamfilter's own categories reach the user of the command line as one plain
line each (``streamfilter CMD: warning: MESSAGE``), naming the geometry they come from."""

from __future__ import annotations

import re
import warnings

import pytest

from streamfilter.cli import _plain_warnings, main
from streamfilter.geometry import GeometryWarning

from .conftest import REPO

EXAMPLE = REPO / "stream_files"


@pytest.fixture
def geom(tmp_path):
    """The example's geometry with two lines that draw a GeometryWarning each."""
    text = (EXAMPLE / "example.geom").read_text()
    text = text.replace("adu_per_photon = 1\n", "adu_per_photon = 1\nmax_adu = 60000\nfoo = 3\n")
    path = tmp_path / "warned.geom"
    path.write_text(text)
    return path


def _warning_lines(err: str, command: str) -> list[str]:
    assert "GeometryWarning" not in err and not re.search(r"\.py:\d+:", err), err
    return [line for line in err.splitlines() if line.startswith(f"streamfilter {command}: ")]


@pytest.mark.parametrize("command", ["reintegrate", "check"])
def test_geometry_warnings_are_plain_lines_naming_the_g_file(command, geom, tmp_path, capsys):
    argv = [command, str(EXAMPLE / "example.stream"), "-g", str(geom)]
    if command == "reintegrate":
        argv += ["-o", str(tmp_path / "out.stream"), "-q"]
    main(argv)
    lines = _warning_lines(capsys.readouterr().err, command)
    assert lines == [
        f"streamfilter {command}: warning: {geom}, line 8, key 'max_adu': max_adu is set; "
        "CrystFEL advises cutting at merge time",
        f"streamfilter {command}: warning: {geom}, line 9, key 'foo': unknown key, kept but "
        "not used",
    ]


def test_the_embedded_geometry_is_named_as_such(tmp_path, capsys):
    text = (EXAMPLE / "example.stream").read_text()
    stream = tmp_path / "s.stream"
    stream.write_text(text.replace("adu_per_photon = 1\n", "adu_per_photon = 1\nfoo = 3\n", 1))
    assert main(["reintegrate", str(stream), "-o", str(tmp_path / "out.stream"), "-q",
                 "--data-root", str(EXAMPLE)]) == 0
    lines = _warning_lines(capsys.readouterr().err, "reintegrate")
    assert lines == ["streamfilter reintegrate: warning: <stream geometry>, line 8, key 'foo': "
                     "unknown key, kept but not used"]


def test_each_message_once_others_untouched_and_restored(capsys):
    before = warnings.showwarning
    with pytest.warns(UserWarning, match="not ours"):
        with _plain_warnings("info"):
            warnings.simplefilter("always")
            for _ in range(3):
                warnings.warn("geometry says no", GeometryWarning, stacklevel=1)
            warnings.warn("not ours", UserWarning, stacklevel=1)
    assert warnings.showwarning is before
    assert capsys.readouterr().err == "streamfilter info: warning: geometry says no\n"
