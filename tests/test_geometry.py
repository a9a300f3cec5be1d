"""CrystFEL geometry parsing: ref-small geometries, the spec's worked examples, defaults,
units, bad regions, and errors that name the file, line and key."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest

from streamfilter.errors import StreamfilterError
from streamfilter.geometry import (
    GeometryError,
    GeometryWarning,
    MaskSpec,
    UnknownPanelError,
    load_geometry,
    parse_geometry,
)

BEGIN_GEOM = "----- Begin geometry file -----"
END_GEOM = "----- End geometry file -----"


def embedded_geometry(stream_path) -> str:
    text = stream_path.read_text()
    start = text.index(BEGIN_GEOM) + len(BEGIN_GEOM) + 1
    return text[start : text.index(END_GEOM)]


def panel_block(name: str, min_fs=0, max_fs=9, min_ss=0, max_ss=9, cx=0.0, cy=0.0) -> str:
    return (
        f"{name}/min_fs = {min_fs}\n{name}/max_fs = {max_fs}\n"
        f"{name}/min_ss = {min_ss}\n{name}/max_ss = {max_ss}\n"
        f"{name}/corner_x = {cx}\n{name}/corner_y = {cy}\n"
        f"{name}/fs = x\n{name}/ss = y\n"
    )


HEAD = "photon_energy = 9500 eV\nclen = 0.1\nres = 10000\nadu_per_photon = 2\n"


# ---------------------------------------------------------------------------------------------
# ref-small


def check_ref_small_detector(det, dims):
    assert [p.name for p in det.panels] == ["p0", "p1"]
    assert [p.index for p in det.panels] == [0, 1]
    p0, p1 = det.panels
    assert (p0.min_fs, p0.max_fs, p0.min_ss, p0.max_ss) == (0, 511, 0, 255)
    assert (p1.min_fs, p1.max_fs, p1.min_ss, p1.max_ss) == (0, 511, 256, 511)
    assert (p0.width, p0.height, p1.width, p1.height) == (512, 256, 512, 256)
    assert (p0.corner_x, p0.corner_y) == (-250.3, -261.7)
    assert (p1.corner_x, p1.corner_y) == (-250.3, 6.3)
    for p in det.panels:
        assert p.fs == (1.0, 0.0, 0.0) and p.ss == (0.0, 1.0, 0.0)
        assert p.res == 5813.953488
        assert p.pixel_pitch == pytest.approx(172e-6, rel=1e-9)
        assert p.adu_per_photon == 1.0 and p.adu_per_eV is None
        assert p.adu_per_photon_at(12000.0) == 1.0
        assert p.max_adu == math.inf and p.coffset == 0.0
        assert p.data == "/entry/data/data"
        assert p.dims == dims
        assert p.masks == (MaskSpec("/entry/data/mask", None, 0x0, 0x1),)
        assert not p.no_index and p.mask_edge_pixels == 0 and p.flags == ()
    assert det.clen == 0.075 and det.clen_m() == 0.075
    assert det.photon_energy == 12000.0 and det.photon_energy_eV() == 12000.0
    assert det.bad_regions == []
    assert det.warnings == []


def test_ref_small_multi_geometry(ref_small):
    det = load_geometry(ref_small / "detector_multi.geom")
    check_ref_small_detector(det, ("%", "ss", "fs"))
    assert det.source == str(ref_small / "detector_multi.geom")
    assert det.text == (ref_small / "detector_multi.geom").read_text()


def test_ref_small_single_geometry(ref_small):
    check_ref_small_detector(load_geometry(ref_small / "detector_single.geom"), ("ss", "fs"))


def test_ref_small_sim_geometry_has_bandwidth_and_default_data(ref_small):
    det = load_geometry(ref_small / "sim_single.geom")
    assert det.bandwidth == 0.001
    assert [p.data for p in det.panels] == ["/data/data"] * 2
    assert all(p.masks == () for p in det.panels)


@pytest.mark.parametrize(
    "stream, dims",
    [("lyso_dev_r345.stream", ("%", "ss", "fs")), ("lyso_dev_single_r345.stream", ("ss", "fs"))],
)
def test_ref_small_stream_embedded_geometry(ref_small, stream, dims):
    text = embedded_geometry(ref_small / stream)
    det = parse_geometry(text, source="<stream geometry>")
    check_ref_small_detector(det, dims)
    geom_file = "detector_multi.geom" if "%" in dims else "detector_single.geom"
    from_file = load_geometry(ref_small / geom_file)
    assert det.panels == from_file.panels


def test_ref_small_panel_index_of_matches_stream_panel_column(ref_small):
    det = load_geometry(ref_small / "detector_multi.geom")
    rows = [
        line.split()
        for line in (ref_small / "lyso_dev_r345.stream").read_text().splitlines()
        if len(line.split()) == 10 and line.split()[-1] in ("p0", "p1")
    ]
    fs = np.array([float(r[7]) for r in rows])
    ss = np.array([float(r[8]) for r in rows])
    names = np.array([r[9] for r in rows])
    assert len(rows) == 11102
    idx = det.panel_index_of(fs, ss)
    assert np.array_equal(np.array([det.panels[i].name for i in idx]), names)


# ---------------------------------------------------------------------------------------------
# Spec worked examples (coordinates-and-geometry.md 3.4-3.6, 5.1)

CSPAD = (
    HEAD
    + "data = /data/data ; 2-D array 1480 (ss) x 1552 (fs)\n"
    + panel_block("q1a2", 388, 581, 185, 369)
    + "q1a2/fs = -0.0059x +0.99998y\nq1a2/ss = -0.99998x -0.0059y\n"
)

STACK = (
    HEAD
    + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
    + panel_block("m0", 0, 1023, 0, 511)
)

AGIPD = (
    HEAD
    + "data = /entry_1/instrument_1/detector_1/data\ndim0 = %\ndim2 = ss\ndim3 = fs\n"
    + "p3a5/dim1 = 3\n"
    + panel_block("p3a5", 0, 127, 320, 383)
    + "p3a4/dim1 = 3\n"
    + panel_block("p3a4", 0, 127, 256, 319)
    + "p0a0/dim1 = 0\n"
    + panel_block("p0a0", 0, 127, 0, 63)
)


def test_cspad_slab_example():
    det = parse_geometry(CSPAD)
    p = det.panel("q1a2")
    assert (p.min_fs, p.max_fs, p.min_ss, p.max_ss) == (388, 581, 185, 369)
    assert (p.width, p.height) == (194, 185)
    assert p.fs == (-0.0059, 0.99998, 0.0) and p.ss == (-0.99998, -0.0059, 0.0)
    assert p.dims == ("ss", "fs") and p.data == "/data/data"
    # Row "444.7 195.8 q1a2": panel-relative (56.7, 10.8), array element data[195][444]
    assert det.panel_index_of(444.7, 195.8) == 0
    assert det.panel_index_of(387.99, 195.8) == -1 and det.panel_index_of(581.99, 369.99) == 0
    assert det.panel_index_of(582.0, 200.0) == -1


def test_stack_example_dims():
    assert parse_geometry(STACK).panel("m0").dims == ("%", "ss", "fs")


def test_agipd_example_per_panel_fixed_dim():
    det = parse_geometry(AGIPD)
    assert det.panel("p3a5").dims == ("%", 3, "ss", "fs")
    assert det.panel("p0a0").dims == ("%", 0, "ss", "fs")
    # Every module shares fs 0-127: fs/ss alone cannot name the panel.
    det2 = parse_geometry(
        AGIPD.replace("p0a0/min_ss = 0", "p0a0/min_ss = 320").replace(
            "p0a0/max_ss = 63", "p0a0/max_ss = 383"
        )
    )
    with pytest.raises(GeometryError, match="p3a5.*p0a0|p0a0.*p3a5"):
        det2.panel_index_of([17.4], [333.1])


# ---------------------------------------------------------------------------------------------
# Syntax and semantics


def test_comments_blank_lines_crlf_and_spacing():
    text = (
        "; preamble comment\n\n"
        "  photon_energy = 9.5 keV   ; comment after value\n"
        "clen=75 mm\r\n"
        "\tres = 10000\n"
        "adu_per_eV = 0.0042 ;\n" + panel_block("a") + "a/corner_x = -3.5 ; overrides\n"
    )
    det = parse_geometry(text)
    assert det.photon_energy == 9500.0
    assert det.clen == pytest.approx(0.075)
    p = det.panel("a")
    assert p.corner_x == -3.5
    assert p.adu_per_eV == 0.0042 and p.adu_per_photon is None
    assert p.adu_per_photon_at(9500.0) == pytest.approx(0.0042 * 9500.0)


def test_defaults_apply_only_to_panels_mentioned_after():
    text = (
        "photon_energy = 9500\nclen = 0.1\nadu_per_photon = 1\n"
        "res = 1000\ncoffset = 0.5\ndata = /a\n"
        + panel_block("first")
        + "res = 2000\ndata = /b\nmax_adu = 100\n"
        + panel_block("second")
        + "first/res = 3000\n"
    )
    with pytest.warns(GeometryWarning, match="max_adu"):
        det = parse_geometry(text)
    first, second = det.panels
    assert (first.res, first.data, first.max_adu) == (3000.0, "/a", math.inf)
    assert (second.res, second.data, second.max_adu) == (2000.0, "/b", 100.0)
    assert first.coffset == second.coffset == 0.5
    assert det.clen_m() == 0.1  # clen is global, never a panel default


def test_trailing_defaults_warn():
    with pytest.warns(GeometryWarning, match="no effect"):
        det = parse_geometry(HEAD + panel_block("a") + "res = 5\n")
    assert det.panel("a").res == 10000.0


@pytest.mark.parametrize(
    "text, vec",
    [
        ("x", (1.0, 0.0, 0.0)),
        ("-y", (0.0, -1.0, 0.0)),
        ("-0.0059x +0.99998y", (-0.0059, 0.99998, 0.0)),
        ("0.5x+0.5y-0.25z", (0.5, 0.5, -0.25)),
        ("+1.0x", (1.0, 0.0, 0.0)),
        ("x +x", (2.0, 0.0, 0.0)),
    ],
)
def test_direction_vectors(text, vec):
    det = parse_geometry(HEAD + panel_block("a") + f"a/fs = {text}\n")
    assert det.panel("a").fs == pytest.approx(vec)


def test_masks_legacy_names_hex_and_numbered():
    text = (
        HEAD
        + "mask = /m/legacy\nmask_file = other.h5\nmask_good = 0x10\nmask_bad = 0xFF00\n"
        + "mask3_data = /m/three\nmask3_goodbits = 5\nmask3_badbits = 0x2\n"
        + panel_block("a")
    )
    p = parse_geometry(text).panel("a")
    assert p.masks == (
        MaskSpec("/m/legacy", "other.h5", 0x10, 0xFF00),
        MaskSpec("/m/three", None, 5, 2),
    )


def test_flags_satmap_edges_no_index():
    text = (
        HEAD
        + "flag_morethan = 65534\nflag_lessthan = -1\nflag_equal = 7\nflag_morethan = 60000\n"
        + "saturation_map = /sat\nsaturation_map_file = sat.h5\nmask_edge_pixels = 2\n"
        + panel_block("a")
        + "a/no_index = true\n"
        + panel_block("b")
        + "b/no_index = 0\n"
    )
    a = parse_geometry(text).panel("a")
    assert a.flags == (
        ("morethan", 65534.0),
        ("lessthan", -1.0),
        ("equal", 7.0),
        ("morethan", 60000.0),
    )
    assert (a.flag_morethan, a.flag_lessthan, a.flag_equal) == (60000.0, -1.0, 7.0)
    assert (a.saturation_map, a.saturation_map_file) == ("/sat", "sat.h5")
    assert a.mask_edge_pixels == 2 and a.no_index
    assert not parse_geometry(text).panel("b").no_index


def test_header_paths_and_units():
    text = (
        "photon_energy = /LCLS/photon_energy_eV\n"
        "clen = /LCLS/detector_1/EncoderValue\n"
        "detector_shift_x = /shift/x mm\ndetector_shift_y = 0.001\n"
        "bandwidth = 1e-3\nres = 1000\nadu_per_photon = 1\n" + panel_block("a")
    )
    det = parse_geometry(text)
    assert det.clen == "/LCLS/detector_1/EncoderValue"
    assert det.photon_energy == "/LCLS/photon_energy_eV"
    assert det.bandwidth == 1e-3
    hv = {"/LCLS/detector_1/EncoderValue": 75.0, "/LCLS/photon_energy_eV": 9000.0, "/shift/x": 2.0}
    assert det.clen_m(hv) == pytest.approx(0.075)  # header clen is in mm
    assert det.photon_energy_eV(hv) == 9000.0
    assert det.detector_shift_m(hv) == pytest.approx((0.002, 0.001))
    assert set(det.header_paths()) == set(hv)
    with pytest.raises(GeometryError, match="EncoderValue"):
        det.clen_m()


def test_wavelength_and_header_clen_in_metres():
    det = parse_geometry(
        "wavelength = 1.3 A\nclen = /c m\nres = 1\nadu_per_photon = 1\n" + panel_block("a")
    )
    assert det.photon_energy_eV() == pytest.approx(12398.419843320026 / 1.3)
    assert det.clen_m({"/c": 0.2}) == 0.2


def test_groups_kept_unknown_keys_warn_and_are_kept():
    text = (
        HEAD
        + panel_block("a")
        + panel_block("b")
        + "group_ab = a,b\ngroup_all = ab\nrigid_group_q0 = a,b\n"
        + "a/wibble = 3\nfrobnicate = yes\nbadrow_direction = x\n"
    )
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        det = parse_geometry(text, source="t.geom")
    messages = [str(w.message) for w in rec if issubclass(w.category, GeometryWarning)]
    assert any("t.geom, line 24, key 'a/wibble'" in m for m in messages)
    assert any("key 'frobnicate'" in m for m in messages)
    assert det.groups == {"ab": ["a", "b"], "all": ["ab"]}
    assert det.rigid_groups == {"rigid_group_q0": ["a", "b"]}
    assert det.panel("a").extra == {"wibble": "3"}
    assert det.extra["frobnicate"] == "yes"


# ---------------------------------------------------------------------------------------------
# Bad regions and the static bad map


def test_bad_region_fsss_in_data_coordinates():
    text = (
        HEAD
        + panel_block("top", 0, 9, 0, 4)
        + panel_block("bottom", 0, 9, 5, 9)
        + "badA/min_fs = 2\nbadA/max_fs = 3\nbadA/min_ss = 6\nbadA/max_ss = 8\n"
        + "badA/panel = bottom\n"
    )
    det = parse_geometry(text)
    bad = det.panel_bad_mask("bottom")
    expect = np.zeros((5, 10), bool)
    expect[1:4, 2:4] = True  # ss 6-8 -> panel rows 1-3
    assert np.array_equal(bad, expect)
    assert not det.panel_bad_mask("top").any()


def test_bad_region_xy_tests_pixel_corner_with_strict_inequalities():
    # Panel corner at (-5, -5), fs=+x, ss=+y: the corner of pixel (fs, ss) is (fs-5, ss-5).
    text = (
        HEAD
        + panel_block("a", 0, 9, 0, 9, cx=-5.0, cy=-5.0)
        + "badX/min_x = -2.0\nbadX/max_x = 1.0\nbadX/min_y = -5.5\nbadX/max_y = 0.5\n"
    )
    bad = parse_geometry(text).panel_bad_mask("a")
    # x = fs - 5 in (-2, 1) -> fs 4, 5 (fs 3 gives x = -2, excluded: strict)
    # y = ss - 5 in (-5.5, 0.5) -> ss 0..5
    expect = np.zeros((10, 10), bool)
    expect[0:6, 4:6] = True
    assert np.array_equal(bad, expect)


def test_bad_region_xy_follows_detector_shift():
    text = (
        HEAD.replace("res = 10000", "res = 1000")
        + "detector_shift_x = /shift\n"
        + panel_block("a", 0, 9, 0, 0, cx=0.0, cy=0.0)
        + "badX/min_x = 2.5\nbadX/max_x = 4.5\nbadX/min_y = -1\nbadX/max_y = 1\n"
    )
    det = parse_geometry(text.replace("detector_shift_x = /shift\n", ""))
    assert np.flatnonzero(det.panel_bad_mask("a")[0]).tolist() == [3, 4]
    det = parse_geometry(text + "detector_shift_y = 0\n")
    # 1 mm shift = 1 pixel at res 1000: corners move +1 px, so fs 2 and 3 are inside.
    bad = det.panel_bad_mask("a", {"/shift": 0.001})
    assert np.flatnonzero(bad[0]).tolist() == [2, 3]


def test_edge_pixels_and_no_index():
    det = parse_geometry(
        HEAD
        + "mask_edge_pixels = 1\n"
        + panel_block("a", 0, 4, 0, 3)
        + "mask_edge_pixels = 0\n"
        + panel_block("b")
        + "b/no_index = 1\n"
    )
    bad = det.panel_bad_mask("a")
    assert bad.sum() == 4 * 5 - 2 * 3 and not bad[1:3, 1:4].any()
    assert det.panel_bad_mask("b").all()


def test_bad_region_panel_guessed_when_unambiguous():
    text = HEAD + panel_block("top", 0, 9, 0, 4) + panel_block("bottom", 0, 9, 5, 9)
    text += "bad1/min_fs = 0\nbad1/max_fs = 1\nbad1/min_ss = 7\nbad1/max_ss = 7\n"
    with pytest.warns(GeometryWarning, match="bottom"):
        det = parse_geometry(text)
    assert det.bad_regions[0].panel == "bottom"


# ---------------------------------------------------------------------------------------------
# Errors


def expect_error(text, line_no, key, match):
    with pytest.raises(GeometryError) as info:
        parse_geometry(text, source="det.geom")
    err = info.value
    assert (err.source, err.line_no, err.key) == ("det.geom", line_no, key)
    msg = str(err)
    assert msg.startswith("det.geom")
    if line_no is not None:
        assert f"line {line_no}" in msg
    if key is not None:
        assert f"'{key}'" in msg
    assert match in msg
    return err


def test_error_line_without_equals():
    expect_error(HEAD + "this is not a statement\n" + panel_block("a"), 5, None, "key = value")


def test_error_bad_number():
    expect_error(HEAD + panel_block("a") + "a/corner_x = 12abc\n", 13, "a/corner_x", "12abc")


def test_error_non_integer_bound():
    expect_error(
        HEAD + panel_block("a").replace("a/max_fs = 9", "a/max_fs = 9.5"), 6, "a/max_fs", "integer"
    )


def test_error_bad_direction():
    expect_error(
        HEAD + panel_block("a").replace("a/fs = x", "a/fs = 2q"), 11, "a/fs", "invalid direction"
    )


def test_error_missing_corner_names_panel_and_key():
    text = HEAD + panel_block("q0").replace("q0/corner_y = 0.0\n", "")
    expect_error(text, 5, "q0/corner_y", "panel q0 needs corner_y")


def test_error_missing_bounds_and_res():
    expect_error(HEAD + panel_block("a").replace("a/min_ss = 0\n", ""), 5, "a/min_ss", "panel a")
    expect_error(HEAD.replace("res = 10000\n", "") + panel_block("a"), 4, "a/res", "res")


def test_error_fs_axis_before_ss():
    expect_error(HEAD + "dim0 = fs\ndim1 = ss\n" + panel_block("a"), 5, "a/dim0", "followed by")


def test_error_dims_with_gap():
    text = HEAD + "dim0 = %\ndim1 = ss\ndim2 = fs\n" + panel_block("a") + "a/dim4 = 3\n"
    expect_error(text, 16, "a/dim3", "dim3 is not set")


def test_error_dims_forgetting_default_dim1_fs():
    # dim1 keeps its default 'fs' when only dim0, dim2 and dim3 are set (as in CrystFEL)
    err = expect_error(
        HEAD + "dim0 = %\ndim2 = ss\ndim3 = fs\n" + panel_block("a"), 7, "a/dim3", "(%, fs, ss, fs)"
    )
    assert "dim1 = fs unless set" in str(err)


def test_error_bad_region_outside_panel_and_unknown_panel():
    base = HEAD + panel_block("a")
    expect_error(
        base + "badB/min_fs = 5\nbadB/max_fs = 12\nbadB/min_ss = 0\nbadB/max_ss = 1\n",
        13,
        "badB",
        "outside panel a",
    )
    expect_error(
        base + "badB/min_fs = 5\nbadB/max_fs = 6\nbadB/min_ss = 0\nbadB/max_ss = 1\n"
        "badB/panel = zz\n",
        17,
        "badB/panel",
        "no such panel 'zz'",
    )


def test_error_bad_region_mixing_xy_and_fsss():
    expect_error(
        HEAD + panel_block("a") + "badC/min_x = 1\nbadC/min_fs = 2\n", 14, "badC/min_fs", "mix"
    )


def test_error_units_and_empty_values():
    expect_error("photon_energy = 9 MeV\n" + panel_block("a"), 1, "photon_energy", "unit")
    expect_error("clen = 75 furlongs\n" + panel_block("a"), 1, "clen", "furlongs")
    expect_error(HEAD + panel_block("a") + "a/res =\n", 13, "a/res", "empty value")


def test_error_no_panels_and_mask_without_data():
    expect_error(HEAD, None, None, "no panel")
    expect_error(
        HEAD + "mask0_badbits = 1\n" + panel_block("a"), 5, "a/mask0_data", "no data location"
    )


def test_unknown_panel_is_keyerror_and_errors_pickle():
    det = parse_geometry(HEAD + panel_block("a"), source="x.geom")
    with pytest.raises(KeyError) as info:
        det.panel("nope")
    assert isinstance(info.value, UnknownPanelError)
    assert "no panel named 'nope'" in str(info.value) and "x.geom" in str(info.value)
    err = GeometryError("x.geom", 3, "a/res", "bad")
    assert isinstance(err, StreamfilterError) and isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.source, again.line_no, again.key, str(again)) == (
        "x.geom",
        3,
        "a/res",
        "x.geom, line 3, key 'a/res': bad",
    )


def test_missing_gain_only_fails_when_asked():
    det = parse_geometry(HEAD.replace("adu_per_photon = 2\n", "") + panel_block("a"))
    with pytest.raises(GeometryError, match="adu_per_photon"):
        det.panel("a").adu_per_photon_at(9500.0)


def test_load_geometry_missing_file(tmp_path):
    with pytest.raises(GeometryError, match="cannot read geometry file") as info:
        load_geometry(tmp_path / "none.geom")
    assert info.value.source == str(tmp_path / "none.geom")
