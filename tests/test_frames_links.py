"""Master files whose image data sit behind HDF5 external links (one data file per run, as
Eiger/Jungfrau writers and EuXFEL/Cheetah tools make them), before and after the whole tree
moved to another place."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamfilter.frames import FrameReadError, FrameSource
from streamfilter.geometry import parse_geometry

GEOM = """\
photon_energy = 9000
clen = 0.1
res = 5000
adu_per_photon = 1
data = /entry/data/data
dim0 = %
dim1 = ss
dim2 = fs

a/min_fs = 0
a/max_fs = 15
a/min_ss = 0
a/max_ss = 15
a/corner_x = -8
a/corner_y = -8
a/fs = x
a/ss = y
"""


def beamtime(root: Path, absolute: bool) -> np.ndarray:
    """root/run1/master.h5 linking /entry/data/data to root/run1/raw/data_000.h5:/d, by a
    relative or an absolute file name; returns the pixels (3 frames)."""
    pixels = np.random.default_rng(1515).poisson(9.0, (3, 16, 16)).astype(np.float32)
    (root / "run1" / "raw").mkdir(parents=True)
    with h5py.File(root / "run1" / "raw" / "data_000.h5", "w") as f:
        f["d"] = pixels
    target = str(root / "run1" / "raw" / "data_000.h5") if absolute else "raw/data_000.h5"
    with h5py.File(root / "run1" / "master.h5", "w") as f:
        f["entry/data/data"] = h5py.ExternalLink(target, "/d")
    return pixels


@pytest.mark.parametrize("absolute", [False, True])
def test_linked_frames_read_before_and_after_the_data_moved(tmp_path, monkeypatch, absolute):
    monkeypatch.chdir(tmp_path)  # HDF5 also tries link names relative to the cwd
    old, new = tmp_path / "old", tmp_path / "new"
    pixels = beamtime(old, absolute)
    det = parse_geometry(GEOM)
    name = str(old / "run1" / "master.h5")  # as a stream written before the move names it
    np.testing.assert_array_equal(FrameSource(det).load(name, "//2").data["a"], pixels[2])
    shutil.move(old, new)
    for roots in ([new], [f"{old}={new}"]):
        frame = FrameSource(det, roots).load(name, "//1")
        np.testing.assert_array_equal(frame.data["a"], pixels[1])


def test_missing_link_target_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    beamtime(tmp_path / "old", absolute=True)
    (tmp_path / "old" / "run1" / "raw" / "data_000.h5").unlink()
    src = FrameSource(parse_geometry(GEOM))
    with pytest.raises(FrameReadError, match=r"external link to '.*data_000\.h5'.*not found"):
        src.load(str(tmp_path / "old" / "run1" / "master.h5"), "//0")
