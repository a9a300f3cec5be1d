"""The frame files of a simulated data set, in the format of its layout (:mod:`.layouts`).

:class:`FrameFiles` is opened once per data set, takes one frame after another
(:meth:`FrameFiles.write`, canvas layout, ADU) and writes them as the layout's detector
would: one multi-event HDF5 file (optionally with per-event CXI header arrays, a per-event
or external mask), an EIGER master file with an external link to a bitshuffle-LZ4 data file,
or one mini-CBF file per frame.  Bad-pixel values in the masks: 1 = dead, 2 = hot (a
non-zero value is bad); the ``two-panel`` layout keeps its good/bad bits (:mod:`.config`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from .canvas import Canvas
from .config import MASK_BAD, MASK_GOOD, SynthConfig
from .files import compression_kwargs
from .layouts import Layout

EIGER_MASK_PATH = "/entry/instrument/detector/detectorSpecific/pixel_mask"
CXI_LINK_PATH = "/entry_1/instrument_1/detector_1/data"


def bad_pixel_codes(dead: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """uint8 canvas: 1 on dead pixels, 2 on hot ones, 0 elsewhere."""
    return dead.astype(np.uint8) | (hot.astype(np.uint8) << 1)


class FrameFiles:
    """Write the frames of a data set into ``directory`` (see the module docstring).

    Parameters
    ----------
    directory : Path
    config : SynthConfig
    layout : Layout
    canvas : Canvas
    mask_path : str or None
        HDF5 path of the mask in the image file (the geometry's first mask), if any.
    dead, hot : bool canvas arrays
    integer : bool
        Store int32 (else float32) pixel values.
    """

    def __init__(self, directory: Path, config: SynthConfig, layout: Layout, canvas: Canvas,
                 mask_path: str | None, dead: np.ndarray, hot: np.ndarray,
                 integer: bool) -> None:
        self.directory, self.config, self.layout, self.canvas = directory, config, layout, canvas
        self.mask_path = mask_path
        self.codes = bad_pixel_codes(dead, hot)
        self.dtype = np.int32 if integer else np.float32
        self.paths: list[Path] = []
        self._h5: h5py.File | None = None
        self._data: h5py.Dataset | None = None
        self._mask: h5py.Dataset | None = None
        self._headers: dict[str, h5py.Dataset] = {}

    def __enter__(self) -> FrameFiles:
        fmt, n = self.layout.file_format, self.config.n_frames
        if fmt == "cbf":
            (self.directory / "cbf").mkdir(exist_ok=True)
            return self
        name = self.config.name
        stem = {"hdf5": f"{name}.h5", "cxi": f"{name}.cxi", "eiger": f"{name}_master.h5"}[fmt]
        self._h5 = h5py.File(self.directory / stem, "w")
        self.paths.append(self.directory / stem)
        shape = (n, *self.canvas.array_shape)
        frame_chunks = (1, *self.canvas.array_shape)
        if fmt == "eiger":
            self._eiger_files(shape, frame_chunks)
        else:
            self._data = self._h5.create_dataset(
                self.canvas.data_path, shape=shape, dtype=self.dtype, chunks=frame_chunks,
                track_times=False, **compression_kwargs(self.config))
        self._masks(shape, frame_chunks)
        if fmt == "cxi":
            self._h5[CXI_LINK_PATH] = h5py.SoftLink(self.canvas.data_path)
            for path in self.layout.header_paths.values():
                self._headers[path] = self._h5.create_dataset(path, shape=(n,), dtype="f8")
        return self

    def _eiger_files(self, shape: tuple, frame_chunks: tuple) -> None:
        data_name = f"{self.config.name}_data_000001.h5"
        with h5py.File(self.directory / data_name, "w") as f:
            f.create_dataset("/entry/data/data", shape=shape, dtype=self.dtype,
                             chunks=frame_chunks, track_times=False,
                             **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        self.paths.append(self.directory / data_name)
        assert self._h5 is not None
        self._h5[self.canvas.data_path] = h5py.ExternalLink(data_name, "/entry/data/data")
        self._data_file = h5py.File(self.directory / data_name, "a")
        self._data = self._data_file["/entry/data/data"]

    def _masks(self, shape: tuple, frame_chunks: tuple) -> None:
        kind, h5 = self.layout.mask, self._h5
        assert h5 is not None
        gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True,
              "track_times": False}
        codes = self.canvas.to_array(self.codes)
        if kind == "mask":
            mask = np.full(codes.shape, MASK_GOOD, dtype=np.uint8)
            mask[codes == 1] = 0
            mask[codes == 2] |= MASK_BAD
            h5.create_dataset(self.mask_path, data=mask, **compression_kwargs(self.config))
        elif kind == "static":
            h5.create_dataset(self.mask_path, data=codes.astype(np.uint32), **gz)
        elif kind == "per-event":
            dtype = np.uint16 if self.layout.file_format == "cxi" else np.uint32
            self._mask = h5.create_dataset(self.mask_path, shape=shape, dtype=dtype,
                                           chunks=frame_chunks, **gz)
        elif kind == "mask-file":
            path = self.directory / f"{self.config.name}_mask.h5"
            with h5py.File(path, "w") as f:
                f.create_dataset("/data/mask", data=codes.astype(np.uint32), **gz)
            self.paths.append(path)

    def write(self, i: int, counts: np.ndarray, info) -> None:
        """Store frame ``i`` (canvas layout, ADU); ``info`` its :class:`~.simulate.FrameInfo`."""
        if self.layout.file_format == "cbf":
            self._write_cbf(i, counts, info)
            return
        assert self._data is not None
        self._data[i] = self.canvas.to_array(counts)
        if self._mask is not None:
            self._mask[i] = self.canvas.to_array(self.codes)
        for path, ds in self._headers.items():
            ds[i] = info.header[path]

    def _write_cbf(self, i: int, counts: np.ndarray, info) -> None:
        """A PILATUS mini-CBF (byte offset, int32): -1 in the gaps, -2 on bad pixels."""
        import fabio.cbfimage

        data = counts.astype(np.int32)
        data[self.codes > 0] = -2
        data[~self._covered] = -1
        wavelength_a = 12398.419843320026 / info.photon_energy_eV
        header = {
            "_array_data.header_convention": "PILATUS_1.2",
            "_array_data.header_contents": "\r\n".join([
                "# Detector: PILATUS 6M-like crop, simulated by streamfilter.synth",
                "# Pixel_size 172e-6 m x 172e-6 m",
                "# Exposure_time 0.0100000 s",
                f"# Wavelength {wavelength_a:.5f} A",
                f"# Detector_distance {info.clen_m:.5f} m",
                f"# Frame_number {i + 1}",
            ]),
        }
        path = self.directory / info.filename
        fabio.cbfimage.CbfImage(data=data, header=header).write(str(path))
        self.paths.append(path)

    def set_covered(self, covered: np.ndarray) -> None:
        """The canvas pixels that belong to a panel (the rest are gaps, -1 in CBF files)."""
        self._covered = covered

    def __exit__(self, *exc) -> None:
        if self._h5 is not None:
            self._h5.close()
        data_file = getattr(self, "_data_file", None)
        if data_file is not None:
            data_file.close()
