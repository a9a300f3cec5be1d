"""Geometry lines CrystFEL 0.12.0 refuses or reads differently from the obvious reading:
``group_*`` hierarchy checks, ``peak_list_type``, ``data`` paths without a leading slash and
``electron_voltage``.  The refusals were checked against the real ``list_events`` /
``indexamajig`` (``Unknown panel group 'p2'``, ``Duplicate panel group 'a'``, ``Invalid
top-level line 'peak_list_type'``), and ``indexamajig`` finds the same peaks with
``data = entry/data/data`` as with ``data = /entry/data/data``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from streamfilter.frames import FrameSource
from streamfilter.geometry import GeometryError, load_geometry, parse_geometry
from streamfilter.geometry.model import electron_wavelength_m

PANELS = """\
photon_energy = 9000
clen = 0.1
res = 5000
adu_per_photon = 1
data = /data/data_array

a/min_fs = 0
a/max_fs = 15
a/min_ss = 0
a/max_ss = 7
a/corner_x = -8
a/corner_y = -8
a/fs = x
a/ss = y

b/min_fs = 0
b/max_fs = 15
b/min_ss = 8
b/max_ss = 15
b/corner_x = -8
b/corner_y = 1
b/fs = x
b/ss = y
"""


@pytest.mark.parametrize(("extra", "line", "message"), [
    ("group_all = a,c\n", 25, r"group_all.*unknown panel group 'c'"),
    ("group_top = a\ngroup_top = b\n", 26, r"group_top.*duplicate panel group 'top'.*line 25"),
    ("group_a = b\n", 25, r"group_a.*duplicate panel group 'a': already a panel"),
    ("group_ab = a,b,a\n", 25, r"duplicate member 'a' in group 'ab'"),
    ("group_all = ab\ngroup_ab = a,b\n", 25, r"unknown panel group 'ab'.*earlier"),
])  # fmt: skip
def test_bad_group_hierarchy_is_refused_with_file_and_line(tmp_path, extra, line, message):
    geom = tmp_path / "det.geom"
    geom.write_text(PANELS + "\n" + extra)
    with pytest.raises(GeometryError, match=message) as err:
        load_geometry(geom)
    assert err.value.line_no == line
    assert str(geom) in str(err.value) and f"line {line}" in str(err.value)


def test_group_hierarchy_is_kept():
    det = parse_geometry(PANELS + "group_ab = a,b\ngroup_all = ab\n")
    assert det.groups == {"ab": ["a", "b"], "all": ["ab"]}


def test_bogus_peak_list_type_is_refused(tmp_path):
    geom = tmp_path / "det.geom"
    geom.write_text("peak_list_type = bogus\n" + PANELS)
    with pytest.raises(GeometryError, match=r"unknown peak list type 'bogus'.*auto, cxi, list3"):
        load_geometry(geom)
    for ok in ("auto", "cxi", "list3"):
        assert parse_geometry(f"peak_list_type = {ok}\n" + PANELS).extra["peak_list_type"] == ok


def test_relative_data_path_reads_from_the_root_group(tmp_path):
    """``data = data/data_array`` is ``/data/data_array`` (HDF5 opens it from the file)."""
    pixels = np.random.default_rng(15).poisson(20.0, (16, 16)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["data/data_array"] = pixels
    relative = parse_geometry(PANELS.replace("data = /data/", "data = data/"))
    frame = FrameSource(relative, [tmp_path]).load("f.h5", "//")
    np.testing.assert_array_equal(np.vstack([frame.data["a"], frame.data["b"]]), pixels)


@pytest.mark.parametrize(("line", "volts"), [("200 kV", 200e3), ("300000 V", 300e3)])
def test_electron_voltage_gives_the_relativistic_wavelength(line, volts):
    det = parse_geometry(PANELS.replace("photon_energy = 9000", f"electron_voltage = {line}"))
    # lambda = h / sqrt(2 m e V (1 + e V / (2 m c^2))): 0.025079 A at 200 kV, 0.019687 at 300
    expected = {200e3: 0.025079, 300e3: 0.019687}[volts]
    assert electron_wavelength_m(volts) * 1e10 == pytest.approx(expected, abs=1e-6)
    # the photon energy of that wavelength, as CrystFEL prints it (hc/lambda, hc = 12398.4 eV A)
    hc = det.photon_energy_eV() * electron_wavelength_m(volts) * 1e10
    assert hc == pytest.approx(12398.4, abs=0.05)
