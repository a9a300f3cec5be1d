"""HDF5 frame access: every reflection pixel of the ref-small streams equals plain h5py,
bad maps equal the stored masks and the truth, the spec's layouts (slab, 3-D stack, 4-D
modules, path placeholders), masks/flags/bad regions, compression, errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

import streamfilter.frames.source as frames_source
from streamfilter.errors import StreamfilterError
from streamfilter.frames import (
    EventID,
    FrameError,
    FrameNotFoundError,
    FrameReadError,
    FrameSource,
    parse_event,
    substitute_path,
)
from streamfilter.geometry import load_geometry, parse_geometry

HEAD = "photon_energy = 9500 eV\nclen = 0.1\nres = 10000\nadu_per_photon = 1\n"


def panel_block(name, min_fs, max_fs, min_ss, max_ss, cx=0.0, cy=0.0) -> str:
    return (
        f"{name}/min_fs = {min_fs}\n{name}/max_fs = {max_fs}\n"
        f"{name}/min_ss = {min_ss}\n{name}/max_ss = {max_ss}\n"
        f"{name}/corner_x = {cx}\n{name}/corner_y = {cy}\n{name}/fs = x\n{name}/ss = y\n"
    )


def stream_chunks(path: Path) -> list[dict]:
    """Image filename, event and reflection rows (fs, ss, panel) of every chunk."""
    chunks, cur, in_refl = [], None, False
    for line in path.read_text().splitlines():
        if line.startswith("----- Begin chunk"):
            cur = {"file": None, "event": None, "fs": [], "ss": [], "panel": []}
        elif line.startswith("Image filename: "):
            cur["file"] = line.split(": ", 1)[1]
        elif line.startswith("Event: "):
            cur["event"] = line.split(": ", 1)[1]
        elif line == "Reflections measured after indexing":
            in_refl = True
        elif line == "End of reflections":
            in_refl = False
        elif in_refl:
            cols = line.split()
            if len(cols) == 10 and cols[0] != "h":
                cur["fs"].append(float(cols[7]))
                cur["ss"].append(float(cols[8]))
                cur["panel"].append(cols[9])
        elif line.startswith("----- End chunk"):
            chunks.append(cur)
    return chunks


@pytest.fixture
def count_reads(monkeypatch):
    """Records the HDF5 dataset name of every hyperslab read the frame source makes."""
    calls: list[str] = []
    original = frames_source.read_hyperslab

    def spy(ds, slab, out, plan=None):
        calls.append(ds.name)
        return original(ds, slab, out, plan)

    monkeypatch.setattr(frames_source, "read_hyperslab", spy)
    return calls


def open_file_count() -> int:
    return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)


# ---------------------------------------------------------------------------------------------
# ref-small


def check_reflection_pixels(src, det, chunks, raw_frame, mask_bad, truth_bad):
    n_rows = 0
    for ch in chunks:
        frame = src.load(ch["file"], ch["event"])
        raw = raw_frame(ch)
        fs = np.array(ch["fs"])
        ss = np.array(ch["ss"])
        names = np.array(ch["panel"])
        for p in det.panels:
            sel = names == p.name
            ifs = fs[sel].astype(int)  # truncation: pixel i covers [i, i+1)
            iss = ss[sel].astype(int)
            got = frame.data[p.name][iss - p.min_ss, ifs - p.min_fs]
            assert got.dtype == np.float32
            assert np.array_equal(got, raw[iss, ifs].astype(np.float32))
            n_rows += int(sel.sum())
        # whole panels too, and the bad map against the mask and the truth
        assert np.array_equal(np.vstack([frame.data["p0"], frame.data["p1"]]), raw)
        bad = np.vstack([frame.bad["p0"], frame.bad["p1"]])
        assert np.array_equal(bad, mask_bad)
        assert np.array_equal(bad, truth_bad)
        assert frame.saturation is None
    return n_rows


def test_ref_small_multi_event_every_reflection(ref_small, tmp_path, monkeypatch, count_reads):
    monkeypatch.chdir(tmp_path)  # the search dir, not the cwd, must resolve the file
    det = load_geometry(ref_small / "detector_multi.geom")
    chunks = stream_chunks(ref_small / "lyso_dev_r345.stream")
    assert len(chunks) == 30 and {c["file"] for c in chunks} == {"lyso_dev.h5"}
    with h5py.File(ref_small / "lyso_dev.h5") as f, h5py.File(ref_small / "lyso_dev_truth.h5") as t:
        stack = f["/entry/data/data"][()]
        mask_bad = (f["/entry/data/mask"][()] & 1) != 0
        truth_bad = t["bad_pixels/dead"][()] | t["bad_pixels/hot"][()]
    count_reads.clear()
    with FrameSource(det, [ref_small]) as src:
        n = check_reflection_pixels(
            src, det, chunks, lambda ch: stack[int(ch["event"][2:])], mask_bad, truth_bad
        )
    assert n == 11102
    # one hyperslab per frame for both panels; the shared 2-D mask is read once
    assert count_reads.count("/entry/data/data") == 30
    assert count_reads.count("/entry/data/mask") == 1
    assert mask_bad.sum() == 197


def test_ref_small_single_frame_files(ref_small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    det = load_geometry(ref_small / "detector_single.geom")
    chunks = stream_chunks(ref_small / "lyso_dev_single_r345.stream")
    assert [c["event"] for c in chunks] == ["//"] * 5
    assert chunks[2]["file"] == "lyso_dev_single/frame002.h5"
    with h5py.File(ref_small / "lyso_dev.h5") as f, h5py.File(ref_small / "lyso_dev_truth.h5") as t:
        stack = f["/entry/data/data"][:5]
        mask_bad = (f["/entry/data/mask"][()] & 1) != 0
        truth_bad = t["bad_pixels/dead"][()] | t["bad_pixels/hot"][()]

    def raw(ch):
        with h5py.File(ref_small / ch["file"]) as g:
            own = g["/entry/data/data"][()]
        assert np.array_equal(own, stack[int(ch["file"][-6:-3])])  # same frames as the stack
        return own

    with FrameSource(det, [ref_small], max_open_files=2) as src:
        n = check_reflection_pixels(src, det, chunks, raw, mask_bad, truth_bad)
        assert src.load(chunks[0]["file"], None).event == "//"  # old streams: no Event line
    assert n == 1857


# ---------------------------------------------------------------------------------------------
# Events


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("//", EventID((), ())),
        (None, EventID((), ())),
        ("//17", EventID((), (17,))),
        ("run_3//", EventID(("run_3",), ())),
        ("run_3//2/17", EventID(("run_3",), (2, 17))),
        ("a/b//0", EventID(("a", "b"), (0,))),
    ],
)
def test_parse_event(text, parsed):
    assert parse_event(text) == parsed


@pytest.mark.parametrize("text", ["17", "//a", "//1//2", "//-1", "a//b/"])
def test_parse_event_rejects(text):
    with pytest.raises(ValueError, match="invalid event ID"):
        parse_event(text)


def test_substitute_path():
    assert substitute_path("/data/%/raw", ("run_3",), allow_extra=False) == "/data/run_3/raw"
    assert substitute_path("/%/x/%", ("a", "b"), allow_extra=False) == "/a/x/b"
    assert substitute_path("/mask", ("a",), allow_extra=True) == "/mask"
    with pytest.raises(ValueError, match="1 path part"):
        substitute_path("/%/%", ("a",), allow_extra=False)
    with pytest.raises(ValueError):
        substitute_path("/mask", ("a",), allow_extra=False)


# ---------------------------------------------------------------------------------------------
# Spec worked examples


def test_cspad_slab_two_panels_one_read(tmp_path, count_reads):
    rng = np.random.default_rng(1234)
    data = rng.integers(0, 30000, size=(1480, 1552), dtype=np.int16)
    with h5py.File(tmp_path / "cspad.h5", "w") as f:
        f["/data/data"] = data
    det = parse_geometry(
        HEAD
        + "data = /data/data\n"
        + panel_block("q1a2", 388, 581, 185, 369)
        + panel_block("q0a0", 0, 193, 0, 184)
    )
    with FrameSource(det, [tmp_path]) as src:
        frame = src.load("cspad.h5", "//")
    # Row "444.7 195.8 q1a2": panel pixel (56, 10) is data[195][444]
    assert frame.data["q1a2"][10, 56] == data[195, 444]
    assert np.array_equal(frame.data["q1a2"], data[185:370, 388:582])
    assert np.array_equal(frame.data["q0a0"], data[0:185, 0:194])
    assert frame.data["q1a2"].shape == (185, 194)
    assert count_reads == ["/data/data"]
    assert not frame.bad["q1a2"].any()


def stack_file(path, n_frames, ss, fs, frames, dtype=np.int32, seed=7):
    """A chunked (n_frames, ss, fs) stack in which only ``frames`` are written."""
    rng = np.random.default_rng(seed)
    written = {}
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("/entry/data/data", (n_frames, ss, fs), dtype, chunks=(1, ss, fs))
        for i in frames:
            written[i] = rng.integers(0, 5000, size=(ss, fs)).astype(dtype)
            ds[i] = written[i]
    return written


def test_stack_example_event_index(tmp_path):
    written = stack_file(tmp_path / "lyso_017.h5", 242, 512, 1024, [0, 241])
    det = parse_geometry(
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + panel_block("m0", 0, 1023, 0, 511)
    )
    with FrameSource(det, [tmp_path]) as src:
        frame = src.load("lyso_017.h5", "//241")
        # row "100.2 300.9 m0" -> element [241, 300, 100]
        assert frame.data["m0"][300, 100] == written[241][300, 100]
        assert np.array_equal(frame.data["m0"], written[241])
        assert np.array_equal(src.load("lyso_017.h5", "//0").data["m0"], written[0])
        with pytest.raises(FrameReadError, match=r"event index 242 is out of range .*size 242"):
            src.load("lyso_017.h5", "//242")
        with pytest.raises(FrameReadError, match="0 dim part"):
            src.load("lyso_017.h5", "//")


def test_agipd_4d_modules_one_read(tmp_path, count_reads):
    rng = np.random.default_rng(55)
    module_data = rng.normal(100.0, 10.0, size=(16, 512, 128)).astype(np.float32)
    module_data[3, 333, 17] = 12345.0
    module_data[3, 330, 5] = np.nan
    module_data[0, 10, 20] = np.inf
    path = "/entry_1/instrument_1/detector_1/data"
    with h5py.File(tmp_path / "agipd.h5", "w") as f:
        ds = f.create_dataset(path, (56, 16, 512, 128), np.float32, chunks=(1, 16, 512, 128))
        ds[55] = module_data
    det = parse_geometry(
        HEAD
        + f"data = {path}\ndim0 = %\ndim2 = ss\ndim3 = fs\n"
        + "p3a5/dim1 = 3\n"
        + panel_block("p3a5", 0, 127, 320, 383)
        + "p3a4/dim1 = 3\n"
        + panel_block("p3a4", 0, 127, 256, 319)
        + "p0a0/dim1 = 0\n"
        + panel_block("p0a0", 0, 127, 0, 63)
    )
    count_reads.clear()
    with FrameSource(det, [tmp_path]) as src:
        frame = src.load("agipd.h5", "//55")
    assert count_reads == [path]
    # row "17.4 333.1 p3a5", Event //55 -> element [55, 3, 333, 17]
    assert frame.data["p3a5"][333 - 320, 17] == np.float32(12345.0)
    np.testing.assert_array_equal(frame.data["p3a5"], module_data[3, 320:384])
    np.testing.assert_array_equal(frame.data["p3a4"], module_data[3, 256:320])
    np.testing.assert_array_equal(frame.data["p0a0"], module_data[0, 0:64])
    # non-finite pixels of a float dataset are bad, nothing else
    assert np.argwhere(frame.bad["p3a5"]).tolist() == [[10, 5]]
    assert np.argwhere(frame.bad["p0a0"]).tolist() == [[10, 20]]
    assert not frame.bad["p3a4"].any()


@pytest.mark.parametrize(
    "panels, flat",
    [
        # two panels stacked along ss, in geometry order: one flat block, no copy
        ([("a", 0, 63, 0, 31), ("b", 0, 63, 32, 63)], True),
        # the same panels listed the other way round: not in geometry order
        ([("b", 0, 63, 32, 63), ("a", 0, 63, 0, 31)], False),
        # side by side along fs: each panel's rows interleave with the other's
        ([("a", 0, 31, 0, 63), ("b", 32, 63, 0, 63)], False),
        # a gap between them
        ([("a", 0, 63, 0, 29), ("b", 0, 63, 32, 63)], False),
    ],
)
def test_flat_data_is_the_panels_in_geometry_order(tmp_path, panels, flat):
    data = np.arange(64 * 64, dtype=np.int32).reshape(64, 64)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["/d"] = data
    det = parse_geometry(HEAD + "data = /d\n" + "".join(panel_block(*p) for p in panels))
    with FrameSource(det, [tmp_path]) as src:
        frame = src.load("f.h5", "//")
    if not flat:
        assert frame.flat_data is None
        return
    joined = np.concatenate([frame.data[p.name].reshape(-1) for p in det.panels])
    np.testing.assert_array_equal(frame.flat_data, joined)
    assert all(np.shares_memory(frame.data[p.name], frame.flat_data) for p in det.panels)


def test_flat_data_of_modules_along_a_fixed_axis(tmp_path):
    """Modules of a 4-D array (event, module, ss, fs), each a whole module in order."""
    data = np.arange(2 * 3 * 8 * 4, dtype=np.float32).reshape(2, 3, 8, 4)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["/d"] = data
    geom = HEAD + "data = /d\ndim0 = %\ndim2 = ss\ndim3 = fs\n"
    for m in range(3):
        geom += f"m{m}/dim1 = {m}\n" + panel_block(f"m{m}", 0, 3, 0, 7, cx=10.0 * m)
    with FrameSource(parse_geometry(geom), [tmp_path]) as src:
        frame = src.load("m.h5", "//1")
    np.testing.assert_array_equal(frame.flat_data, data[1].reshape(-1))


def test_path_placeholders(tmp_path):
    rng = np.random.default_rng(3)
    runs = {r: rng.integers(0, 100, size=(4, 8, 10)).astype(np.uint16) for r in ("run_3", "run_4")}
    with h5py.File(tmp_path / "runs.h5", "w") as f:
        for r, arr in runs.items():
            f[f"/data/{r}/raw"] = arr
            f[f"/data/{r}/img"] = arr[1]
        f["/mask"] = np.zeros((8, 10), np.uint8)
        f["/mask"][2, 3] = 1
    geom = (
        HEAD
        + "data = /data/%/raw\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + "mask0_data = /mask\nmask0_badbits = 1\n"
        + panel_block("a", 0, 9, 0, 7)
    )
    with FrameSource(parse_geometry(geom), [tmp_path]) as src:
        frame = src.load("runs.h5", "run_3//2")
        assert np.array_equal(frame.data["a"], runs["run_3"][2])
        assert np.array_equal(src.load("runs.h5", "run_4//0").data["a"], runs["run_4"][0])
        # a static mask without placeholders serves every run and frame
        assert np.argwhere(frame.bad["a"]).tolist() == [[2, 3]]
        with pytest.raises(FrameReadError, match=r"0 path part.*'/data/%/raw'"):
            src.load("runs.h5", "//2")
        with pytest.raises(FrameReadError, match=r"'/data/run_9/raw'.*missing.*run_3, run_4"):
            src.load("runs.h5", "run_9//2")
    geom2 = HEAD + "data = /data/%/img\n" + panel_block("a", 0, 9, 0, 7)
    with FrameSource(parse_geometry(geom2), [tmp_path]) as src:
        assert np.array_equal(src.load("runs.h5", "run_4//").data["a"], runs["run_4"][1])


# ---------------------------------------------------------------------------------------------
# Bad-pixel map: masks (own file and another file), flags, regions, satmap, no_index


def test_bad_map_matches_crystfel_rules(tmp_path, monkeypatch):
    rng = np.random.default_rng(2024)
    h, w = 16, 20
    data = rng.uniform(1.0, 900.0, size=(2 * h, w)).astype(np.float32)
    data[0, 0] = 1500.0  # > flag_morethan
    data[0, 1] = -3.0  # < flag_lessthan
    data[0, 2], data[0, 3], data[0, 4] = 7.4, 6.6, 7.6  # rint: 7, 7, 8 (flag_equal = 7)
    data[0, 5] = np.nan
    data[0, 6] = -np.inf
    sat = rng.uniform(500, 600, size=(2 * h, w)).astype(np.float32)
    m0 = np.full((2 * h, w), 0x4, np.uint16)  # goodbits 0x4, badbits 0x1: all good ...
    rows, cols = rng.integers(1, 2 * h, size=12), rng.integers(0, w, size=12)
    m0[rows, cols] = rng.integers(0, 8, size=12)  # ... except a few pixels (not in row 0)
    m1 = np.zeros((2 * h, w), np.uint8)
    m1[5, 7] = 0x80
    with h5py.File(tmp_path / "img.h5", "w") as f:
        f["/data/data"] = data
        f["/m1"] = m1
        f["/sat"] = sat
    (tmp_path / "masks").mkdir()
    with h5py.File(tmp_path / "masks" / "mask.h5", "w") as f:
        f["/m"] = m0
    geom = (
        HEAD
        + "flag_morethan = 1000\nflag_lessthan = 0\nflag_equal = 7\n"
        + "mask0_file = mask.h5\nmask0_data = /m\nmask0_goodbits = 0x4\nmask0_badbits = 0x1\n"
        + "mask1_data = /m1\nmask1_badbits = 0x80\nsaturation_map = /sat\n"
        + panel_block("a", 0, w - 1, 0, h - 1, cx=-10.0, cy=-8.0)
        + panel_block("b", 0, w - 1, h, 2 * h - 1)
        + "b/no_index = true\n"
        + "badR/min_fs = 2\nbadR/max_fs = 4\nbadR/min_ss = 3\nbadR/max_ss = 3\nbadR/panel = a\n"
        # corner x = fs - 10: (4.5, 6) holds fs = 15 only (fs = 16 gives x = 6: strict)
        + "badX/min_x = 4.5\nbadX/max_x = 6\nbadX/min_y = -100\nbadX/max_y = 100\n"
    )
    monkeypatch.chdir(tmp_path)
    src = FrameSource(parse_geometry(geom), [tmp_path, tmp_path / "masks"])
    frame = src.load("img.h5", "//")

    a = data[:h]
    flagged = (a > 1000) | (a < 0) | (np.rint(a) == 7) | ~np.isfinite(a)
    assert flagged[0, :7].tolist() == [True, True, True, True, False, True, True]
    expect = flagged | ((m0[:h] & 4) != 4) | ((m0[:h] & 1) != 0) | ((m1[:h] & 0x80) != 0)
    expect[3, 2:5] = True
    expect[:, 15] = True
    assert np.array_equal(frame.bad["a"], expect)
    assert np.array_equal(frame.bad["a"][0, :15], flagged[0, :15])  # row 0: flags only
    assert 0 < (expect & ~flagged).sum() < h * w // 4
    assert frame.bad["b"].all() and frame.bad["b"].shape == (h, w)
    assert np.array_equal(frame.data["b"], data[h:])
    assert np.array_equal(frame.saturation["a"], sat[:h])
    assert np.array_equal(frame.saturation["b"], sat[h:])

    # the static part is cached, not shared mutable state: a second load is identical
    again = src.load("img.h5", "//")
    assert np.array_equal(again.bad["a"], expect)
    assert not again.bad["b"].flags.writeable
    src.close()


def test_static_mask_in_other_file_and_edge_pixels(tmp_path, count_reads):
    written = stack_file(tmp_path / "stack.h5", 3, 6, 8, [0, 1, 2])
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["/mask"] = np.full((6, 8), 0x4, np.int32)  # goodbits 0x4 present everywhere ...
        f["/mask"][4, 4] = 0  # ... except here
    geom = (
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\nmask_edge_pixels = 1\n"
        + "mask0_data = /mask\nmask0_file = m.h5\nmask0_goodbits = 0x4\n"
        + panel_block("a", 0, 7, 0, 5)
    )
    with FrameSource(parse_geometry(geom), [tmp_path]) as src:
        frames = [src.load("stack.h5", f"//{i}") for i in range(3)]
    expect = np.ones((6, 8), bool)
    expect[1:5, 1:7] = False
    expect[4, 4] = True
    for i, fr in enumerate(frames):
        assert np.array_equal(fr.data["a"], written[i])
        assert np.array_equal(fr.bad["a"], expect)
    assert count_reads.count("/mask") == 1


def test_bitshuffle_lz4_reads_equal_to_gzip(tmp_path):
    rng = np.random.default_rng(99)
    data = rng.poisson(20.0, size=(3, 64, 48)).astype(np.int32)
    with h5py.File(tmp_path / "gz.h5", "w") as f:
        f.create_dataset("/d", data=data, chunks=(1, 64, 48), compression="gzip", shuffle=True)
    with h5py.File(tmp_path / "bslz4.h5", "w") as f:
        f.create_dataset("/d", data=data, chunks=(1, 64, 48), **hdf5plugin.Bitshuffle(cname="lz4"))
    with h5py.File(tmp_path / "bslz4.h5") as f:
        assert "32008" in f["/d"]._filters  # really bitshuffle
    det = parse_geometry(
        HEAD + "data = /d\ndim0 = %\ndim1 = ss\ndim2 = fs\n" + panel_block("a", 0, 47, 0, 63)
    )
    with FrameSource(det, [tmp_path]) as src:
        for i in range(3):
            gz = src.load("gz.h5", f"//{i}").data["a"]
            bs = src.load("bslz4.h5", f"//{i}").data["a"]
            assert np.array_equal(gz, bs) and np.array_equal(bs, data[i])


# ---------------------------------------------------------------------------------------------
# Files: resolution, handle cache, pickling


def test_resolve_order_and_not_found_message(tmp_path, monkeypatch):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    (d2 / "x.h5").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    det = parse_geometry(HEAD + panel_block("a", 0, 1, 0, 1))
    src = FrameSource(det, [d1, d2])
    assert src.resolve("sub/x.h5") == d2 / "x.h5"  # basename fallback
    (d1 / "x.h5").write_bytes(b"")
    assert FrameSource(det, [d1, d2]).resolve("x.h5") == d1 / "x.h5"  # first dir wins
    with pytest.raises(FrameNotFoundError) as info:
        src.load("runs/missing.h5", "//4")
    err = info.value
    assert (err.filename, err.event) == ("runs/missing.h5", "//4")
    assert err.searched == [
        str(d1 / "runs/missing.h5"),
        str(d2 / "runs/missing.h5"),
        str(d1 / "missing.h5"),
        str(d2 / "missing.h5"),
        "runs/missing.h5",
    ]
    for p in err.searched:
        assert p in str(err)
    assert isinstance(err, FrameError) and isinstance(err, StreamfilterError)
    assert pickle.loads(pickle.dumps(err)).searched == err.searched


def _moved_beamtime(tmp_path):
    """Two run folders of a beamtime recorded under /gpfs/old and moved to tmp/new; the
    frame files of both runs have the same base name."""
    new = tmp_path / "new"
    written = {}
    for run, seed in (("run12", 1), ("run13", 2)):
        d = new / "beamtime" / "raw" / run
        d.mkdir(parents=True)
        written[run] = stack_file(d / "x.h5", 2, 4, 5, [0, 1], seed=seed)
    det = parse_geometry(
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + panel_block("a", 0, 4, 0, 3)
    )
    return new, written, det


def test_data_root_maps_moved_absolute_paths_by_their_last_components(tmp_path):
    new, written, det = _moved_beamtime(tmp_path)
    stream_dir = tmp_path / "streams"
    stream_dir.mkdir()
    (stream_dir / "x.h5").write_bytes(b"")  # a same-named file: longer matches come first
    with FrameSource(det, [stream_dir, new]) as src:
        for run in ("run12", "run13"):
            name = f"/gpfs/old/beamtime/raw/{run}/x.h5"
            assert src.resolve(name) == new / "beamtime" / "raw" / run / "x.h5"
            frame = src.load(name, "//1")
            assert np.array_equal(frame.data["a"], written[run][1])
    # a relative name with directories: the same rule (full name, then shorter tails)
    with FrameSource(det, [stream_dir, new / "beamtime"]) as src:
        assert src.resolve("raw/run13/x.h5") == new / "beamtime" / "raw" / "run13" / "x.h5"
        assert src.resolve("elsewhere/raw/run12/x.h5") == (
            new / "beamtime" / "raw" / "run12" / "x.h5"
        )
    # the order tried: the name as written, then the last k components, k = all .. 1,
    # longest first across the directories
    src = FrameSource(det, [stream_dir, new])
    with pytest.raises(FrameNotFoundError) as info:
        src.resolve("/gpfs/old/run99/y.h5")
    assert info.value.searched == [
        "/gpfs/old/run99/y.h5",
        str(stream_dir / "gpfs/old/run99/y.h5"),
        str(new / "gpfs/old/run99/y.h5"),
        str(stream_dir / "old/run99/y.h5"),
        str(new / "old/run99/y.h5"),
        str(stream_dir / "run99/y.h5"),
        str(new / "run99/y.h5"),
        str(stream_dir / "y.h5"),
        str(new / "y.h5"),
    ]


def test_data_root_old_equals_new_replaces_a_prefix(tmp_path):
    new, written, det = _moved_beamtime(tmp_path)
    target = new / "beamtime"
    other = tmp_path / "other"
    (other / "raw" / "run12").mkdir(parents=True)
    (other / "raw" / "run12" / "x.h5").write_bytes(b"")  # a tail match: the mapping wins
    with FrameSource(det, [other, f"/gpfs/old/beamtime/={target}"]) as src:
        assert src.path_maps == [("/gpfs/old/beamtime", target)]
        assert src.search_dirs == [other]
        name = "/gpfs/old/beamtime/raw/run12/x.h5"
        assert src.resolve(name) == target / "raw" / "run12" / "x.h5"
        assert np.array_equal(src.load(name, "//0").data["a"], written["run12"][0])
        # only whole components: /gpfs/old/beamtime2/... is not under /gpfs/old/beamtime
        with pytest.raises(FrameNotFoundError) as info:
            src.resolve("/gpfs/old/beamtime2/raw/run12/y.h5")
        assert not any(str(target) in p for p in info.value.searched)
    # the mapping survives pickling (worker processes)
    src = pickle.loads(pickle.dumps(FrameSource(det, [f"/gpfs/old={new}"])))
    assert src.resolve("/gpfs/old/beamtime/raw/run13/x.h5") == (
        new / "beamtime" / "raw" / "run13" / "x.h5"
    )
    # a directory whose name holds '=' is a directory
    odd = tmp_path / "a=b"
    odd.mkdir()
    (odd / "z.h5").write_bytes(b"")
    src = FrameSource(det, [odd])
    assert src.search_dirs == [odd] and src.path_maps == []
    assert src.resolve("/somewhere/z.h5") == odd / "z.h5"


def test_not_found_hint_fits_absolute_and_relative_names(tmp_path):
    det = parse_geometry(HEAD + panel_block("a", 0, 1, 0, 1))
    src = FrameSource(det, [tmp_path, "/gpfs/old=/gpfs/new"])
    with pytest.raises(FrameNotFoundError) as info:
        src.load("/gpfs/old/run1/f.h5", "//3")
    err = info.value
    text = str(err)
    assert "/gpfs/new/run1/f.h5" == err.searched[0]  # the mapping is tried first
    for p in err.searched:
        assert p in text
    assert "absolute path" in text and "OLD=NEW" in text and "NEWDIR" in text
    assert "where indexamajig ran" not in text
    assert pickle.loads(pickle.dumps(err)).hint == err.hint
    with pytest.raises(FrameNotFoundError) as info:
        src.load("run1/f.h5", "//3")
    assert "where indexamajig ran" in str(info.value)
    assert "absolute path" not in str(info.value)


def test_file_handle_cache_is_bounded(tmp_path):
    for k in range(3):
        stack_file(tmp_path / f"f{k}.h5", 2, 4, 5, [0, 1], seed=k)
    det = parse_geometry(
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + panel_block("a", 0, 4, 0, 3)
    )
    before = open_file_count()
    src = FrameSource(det, [tmp_path], max_open_files=2)
    for k in range(3):
        for i in range(2):
            src.load(f"f{k}.h5", f"//{i}")
    assert open_file_count() - before == 2
    copy = pickle.loads(pickle.dumps(src))  # no handles travel; the copy reopens
    assert np.array_equal(copy.load("f0.h5", "//1").data["a"], src.load("f0.h5", "//1").data["a"])
    src.close()
    copy.close()
    assert open_file_count() == before


# ---------------------------------------------------------------------------------------------
# Errors


def simple_source(tmp_path, geom_tail="", data_path="/entry/data/data"):
    stack_file(tmp_path / "s.h5", 30, 8, 6, [0])
    det = parse_geometry(
        HEAD
        + f"data = {data_path}\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + geom_tail
        + (panel_block("a", 0, 5, 0, 7) if "a/min_fs" not in geom_tail else "")
    )
    return FrameSource(det, [tmp_path])


def test_error_missing_dataset(tmp_path):
    with simple_source(tmp_path, data_path="/entry/data/nope") as src:
        with pytest.raises(FrameReadError) as info:
            src.load("s.h5", "//0")
    msg = str(info.value)
    assert "'/entry/data/nope'" in msg and "missing" in msg and "holds: data" in msg
    assert info.value.filename == "s.h5" and info.value.event == "//0"


def test_error_event_out_of_range(tmp_path):
    with simple_source(tmp_path) as src, pytest.raises(FrameReadError) as info:
        src.load("s.h5", "//30")
    assert "event index 30 is out of range for axis 0 (size 30)" in str(info.value)
    assert "'/entry/data/data'" in str(info.value)


def test_error_rank_mismatch(tmp_path):
    stack_file(tmp_path / "s.h5", 30, 8, 6, [0])
    det = parse_geometry(HEAD + "data = /entry/data/data\n" + panel_block("a", 0, 5, 0, 7))
    with FrameSource(det, [tmp_path]) as src, pytest.raises(FrameReadError) as info:
        src.load("s.h5", "//")
    assert "shape (30, 8, 6) (rank 3)" in str(info.value) and "(ss, fs)" in str(info.value)


def test_error_panel_outside_array(tmp_path):
    with simple_source(tmp_path, panel_block("a", 0, 5, 0, 8)) as src:
        with pytest.raises(FrameReadError, match=r"max_ss 8 on axis 1 \(ss\).*\(30, 8, 6\)"):
            src.load("s.h5", "//0")


def test_error_bad_event_string(tmp_path):
    with simple_source(tmp_path) as src, pytest.raises(FrameReadError, match="no '//'"):
        src.load("s.h5", "17")


def test_error_truncated_file(tmp_path):
    stack_file(tmp_path / "t.h5", 30, 8, 6, [0])
    raw = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(raw[: len(raw) // 3])
    det = parse_geometry(
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + panel_block("a", 0, 5, 0, 7)
    )
    with FrameSource(det, [tmp_path]) as src, pytest.raises(FrameReadError) as info:
        src.load("t.h5", "//0")
    assert "unreadable or truncated" in str(info.value)


def test_error_missing_mask_file_and_dataset(tmp_path):
    tail = "mask0_file = nomask.h5\nmask0_data = /m\nmask0_badbits = 1\n"
    with simple_source(tmp_path, tail) as src, pytest.raises(FrameReadError) as info:
        src.load("s.h5", "//0")
    assert "'nomask.h5' not found" in str(info.value)
    with simple_source(tmp_path, "mask0_data = /m\nmask0_badbits = 1\n") as src:
        with pytest.raises(FrameReadError, match="mask dataset '/m'"):
            src.load("s.h5", "//0")


def test_header_values_per_frame_and_shifted_xy_region(tmp_path):
    stack_file(tmp_path / "h.h5", 3, 1, 10, [0, 1, 2])
    with h5py.File(tmp_path / "h.h5", "a") as f:
        f["/LCLS/clen_mm"] = 75.0  # scalar: every frame
        f["/LCLS/energy"] = np.array([9000.0, 9100.0, 9200.0])  # per frame
        f["/shift_x"] = np.array([0.0, 0.001, 0.002])  # metres: 1 px and 2 px at res 1000
    geom = (
        "photon_energy = /LCLS/energy\nclen = /LCLS/clen_mm\nres = 1000\nadu_per_eV = 0.001\n"
        "detector_shift_x = /shift_x\ndetector_shift_y = 0\n"
        "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + panel_block("a", 0, 9, 0, 0)
        + "badX/min_x = 2.5\nbadX/max_x = 4.5\nbadX/min_y = -1\nbadX/max_y = 1\n"
    )
    det = parse_geometry(geom)
    with FrameSource(det, [tmp_path]) as src:
        frames = [src.load("h.h5", f"//{i}") for i in range(3)]
    for i, fr in enumerate(frames):
        assert det.clen_m(fr.header) == pytest.approx(0.075)
        assert det.photon_energy_eV(fr.header) == 9000.0 + 100.0 * i
        assert det.panel("a").adu_per_photon_at(det.photon_energy_eV(fr.header)) == pytest.approx(
            9.0 + 0.1 * i
        )
    # corner x = fs + shift_px must lie in (2.5, 4.5)
    assert [np.flatnonzero(fr.bad["a"][0]).tolist() for fr in frames] == [[3, 4], [2, 3], [1, 2]]


def test_single_open_file_with_masks_in_two_files(tmp_path):
    written = stack_file(tmp_path / "img.h5", 2, 4, 6, [0, 1])
    with h5py.File(tmp_path / "img.h5", "a") as f:
        f["/m1"] = np.zeros((4, 6), np.uint8)
        f["/m1"][1, 1] = 2
        f["/sat"] = np.full((4, 6), 99.0, np.float32)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["/m0"] = np.zeros((4, 6), np.uint8)
        f["/m0"][2, 5] = 1
    geom = (
        HEAD
        + "data = /entry/data/data\ndim0 = %\ndim1 = ss\ndim2 = fs\n"
        + "mask0_file = other.h5\nmask0_data = /m0\nmask0_badbits = 1\n"
        + "mask1_data = /m1\nmask1_badbits = 2\nsaturation_map = /sat\n"
        + panel_block("a", 0, 5, 0, 3)
    )
    # opening other.h5 evicts (closes) img.h5; later reads from img.h5 must reopen it
    with FrameSource(parse_geometry(geom), [tmp_path], max_open_files=1) as src:
        for i in (0, 1, 0):
            fr = src.load("img.h5", f"//{i}")
            assert np.array_equal(fr.data["a"], written[i])
            assert np.argwhere(fr.bad["a"]).tolist() == [[1, 1], [2, 5]]
            assert (fr.saturation["a"] == 99.0).all()
