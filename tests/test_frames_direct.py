"""Reading whole deflate chunks without HDF5's filter pipeline gives HDF5's own values.

``frames._direct.DirectPlan`` inflates a frame's chunk itself (ISA-L or zlib) and un-shuffles
it with numpy; every value must equal what the plain HDF5 read with its float32 conversion
gives, and anything it does not support must be left to HDF5.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from streamfilter.frames._direct import DirectPlan
from streamfilter.frames.hdf5 import read_hyperslab


def hdf5_read(ds: h5py.Dataset, slab: tuple) -> np.ndarray:
    out = np.empty(slab[1][1:], np.float32)
    read_hyperslab(ds, slab, out)
    return out


def frames_of(dtype: str, rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        a = rng.normal(0, 1e6, size=(3, 32, 48)).astype(dtype)
        a[0, 0, :4] = [np.nan, np.inf, -np.inf, -0.0]
        return a
    native = np.dtype(dtype).newbyteorder("=")
    a = rng.integers(info.min, info.max, size=(3, 32, 48), endpoint=True, dtype=native)
    a[0, 0, :3] = [info.min, info.max, 0]
    if np.dtype(dtype).itemsize >= 4:  # values float32 cannot hold exactly (rounding ties)
        a[1, 0, :4] = [2**24 + 1, 2**25 + 3, min(2**31 - 1, info.max), 16777219]
    return a.astype(dtype)


@pytest.mark.parametrize("dtype", ["<i4", ">i4", "<u4", "<u2", "<i2", "u1", "i1", "<f4"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_direct_read_equals_hdf5(tmp_path, dtype, shuffle) -> None:
    rng = np.random.default_rng(3)
    data = frames_of(dtype, rng)
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "d",
            data=data,
            chunks=(1, 32, 48),
            compression="gzip",
            compression_opts=4,
            shuffle=shuffle,
        )
    with h5py.File(path, "r") as f:
        ds = f["d"]
        plan = DirectPlan.of(ds)
        assert plan is not None
        for i in range(3):
            slab = ((i, 0, 0), (1, 32, 48))
            out = np.empty((32, 48), np.float32)
            assert plan.read(ds, slab, out)
            ref = hdf5_read(ds, slab)
            assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))  # bit for bit
            assert np.array_equal(out, data[i].astype(np.float32), equal_nan=True)


def test_unsupported_layouts_are_left_to_hdf5(tmp_path) -> None:
    data = np.arange(2 * 16 * 16, dtype="<i4").reshape(2, 16, 16)
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("lzf", data=data, chunks=(1, 16, 16), compression="lzf")
        f.create_dataset("plain", data=data)
        f.create_dataset("i8", data=data.astype("<i8"), chunks=(1, 16, 16), compression="gzip")
        f.create_dataset(
            "fletcher", data=data, chunks=(1, 16, 16), compression="gzip", fletcher32=True
        )
        f.create_dataset("split", data=data, chunks=(1, 8, 16), compression="gzip")
        f.create_dataset(
            "empty",
            shape=(2, 16, 16),
            dtype="<i4",
            chunks=(1, 16, 16),
            compression="gzip",
            fillvalue=5,
        )
    with h5py.File(path, "r") as f:
        for name in ("lzf", "plain", "i8", "fletcher"):
            assert DirectPlan.of(f[name]) is None, name
        out = np.empty((16, 16), np.float32)
        # a frame that spans two chunks, and a chunk never written (fill value)
        assert not DirectPlan.of(f["split"]).read(f["split"], ((0, 0, 0), (1, 16, 16)), out)
        assert not DirectPlan.of(f["empty"]).read(f["empty"], ((1, 0, 0), (1, 16, 16)), out)
        assert np.all(hdf5_read(f["empty"], ((1, 0, 0), (1, 16, 16))) == 5)


def test_frames_of_ref_small_match_hdf5(ref_small) -> None:
    with h5py.File(ref_small / "lyso_dev.h5", "r") as f:
        ds = f["/entry/data/data"]
        plan = DirectPlan.of(ds)
        assert plan is not None and plan.shuffle
        for i in range(ds.shape[0]):
            slab = ((i, 0, 0), (1, *ds.shape[1:]))
            out = np.empty(ds.shape[1:], np.float32)
            assert plan.read(ds, slab, out)
            assert np.array_equal(out, hdf5_read(ds, slab))


@pytest.mark.parametrize("dtype", ["<i4", "<u4", ">i4"])
def test_small_values_two_plane_path(tmp_path, dtype) -> None:
    """Frames whose values all fit 16 bits take a shortcut; one value above must not."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 65536, size=(3, 32, 48)).astype(dtype)
    data[0, 0, :2] = [0, 65535]
    data[1, 5, 7] = 65536
    data[2, 9, 9] = 2**24 + 1
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(1, 32, 48), compression="gzip", shuffle=True)
    with h5py.File(path, "r") as f:
        ds = f["d"]
        plan = DirectPlan.of(ds)
        for i in range(3):
            slab = ((i, 0, 0), (1, 32, 48))
            out = np.empty((32, 48), np.float32)
            assert plan.read(ds, slab, out)
            assert np.array_equal(out, hdf5_read(ds, slab))
            assert np.array_equal(out, data[i].astype(np.float32))


def test_plans_do_not_keep_files_open(ref_small) -> None:
    """Direct-read plans belong to the FrameSource's record of each open dataset: a
    FrameSource dropped without close() leaves no open file behind, and close() forgets
    its plans with its datasets."""
    import gc

    from streamfilter.frames import FrameSource
    from streamfilter.geometry import parse_geometry

    def open_files() -> int:
        return h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE)

    det = parse_geometry((ref_small / "detector_multi.geom").read_text())
    before = open_files()
    src = FrameSource(det, [ref_small])
    src.load("lyso_dev.h5", "//3")
    plans = [st.plan for st in src._datasets.values()]
    assert any(isinstance(p, DirectPlan) for p in plans) and open_files() == before + 1
    del src
    gc.collect()
    assert open_files() == before
    with FrameSource(det, [ref_small]) as src:
        src.load("lyso_dev.h5", "//4")
    assert not src._datasets and open_files() == before


@pytest.mark.parametrize("dtype", ["<i4", "<u4", "<f4"])
def test_direct_read_of_frames_whose_high_bytes_are_zero(tmp_path, dtype) -> None:
    """The two-plane shortcut for counts below 65536 is for integers only: float32 words
    whose two high bytes are zero are subnormals and must keep their values."""
    rng = np.random.default_rng(4)
    if dtype == "<f4":
        data = rng.integers(0, 65536, size=(2, 16, 24), dtype=np.uint32).view("<f4")
    else:
        data = rng.integers(0, 65536, size=(2, 16, 24)).astype(dtype)
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, chunks=(1, 16, 24), compression="gzip", shuffle=True)
    with h5py.File(path, "r") as f:
        ds = f["d"]
        plan = DirectPlan.of(ds)
        for i in range(2):
            slab = ((i, 0, 0), (1, 16, 24))
            out = np.empty((16, 24), np.float32)
            assert plan.read(ds, slab, out)
            assert np.array_equal(out.view(np.uint32), hdf5_read(ds, slab).view(np.uint32))
            assert np.array_equal(out, data[i].astype(np.float32))
