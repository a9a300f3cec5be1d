"""The direct-inflate fast path: whole deflate chunks read without HDF5's filter pipeline.

:class:`DirectPlan` gives exactly the values of the h5py reference path
(:func:`~streamfilter.frames.hdf5.read_hyperslab` without a plan); the tests in
``tests/test_frames_direct.py`` check the two against each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import h5py
import numpy as np

_H5Z_DEFLATE, _H5Z_SHUFFLE = 1, 2


@dataclass(frozen=True)
class DirectPlan:
    """How to read whole chunks of a deflate (optionally shuffled) dataset without HDF5's
    filter pipeline: the stored bytes of the chunk (``read_direct_chunk``), inflated with
    ISA-L when the ``isal`` package is there (~2.3 x faster than zlib), else zlib, then
    un-shuffled and converted to float32 with numpy.  The values are identical to what
    HDF5's own read and conversion give: the same inflate output, and the same C casts.

    Only used where it is exactly one chunk that a frame needs; anything else (other
    filters, partial chunks, skipped filters, unallocated chunks, ...) goes through
    :func:`~.hdf5.read_hyperslab`.
    """

    chunks: tuple[int, ...]
    dtype: np.dtype
    shuffle: bool

    @staticmethod
    def of(ds: h5py.Dataset) -> DirectPlan | None:
        """The plan for ``ds``, or None when its layout or filters are not supported."""
        dtype = ds.dtype
        if ds.chunks is None or not (
            (dtype.kind in "iu" and dtype.itemsize <= 4) or dtype == np.dtype("<f4")
        ):
            return None
        dcpl = ds.id.get_create_plist()
        codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
        if codes not in ([_H5Z_DEFLATE], [_H5Z_SHUFFLE, _H5Z_DEFLATE]):
            return None
        return DirectPlan(tuple(ds.chunks), dtype, len(codes) == 2 and dtype.itemsize > 1)

    def read(self, ds: h5py.Dataset, slab: tuple, out: np.ndarray) -> bool:
        """Read the hyperslab ``slab`` = (start, count) into ``out`` (converted to its
        dtype as HDF5 would) when it is exactly one chunk; False, ``out`` untouched, when
        this plan cannot do it."""
        start, count = slab
        if tuple(count) != self.chunks or any(s % c for s, c in zip(start, self.chunks)):
            return False
        try:
            mask, raw = ds.id.read_direct_chunk(tuple(start))
        except (OSError, KeyError, ValueError, MemoryError):  # h5py: a chunk never written
            return False
        if mask:  # some filter was skipped for this chunk
            return False
        n = out.size
        size = self.dtype.itemsize
        data = inflate(raw, n * size)
        if data is None:
            return False
        planes = np.frombuffer(data, np.uint8)
        if self.shuffle:  # HDF5 stores byte j of every element together, j = 0..size-1
            planes = planes.reshape(size, n)
            # every value in 0..65535 (most detector frames): two planes, one pass (max is
            # a faster reduction than any)
            if (
                size == 4
                and self.dtype.kind in "iu"
                and self.dtype.byteorder in "<=|"
                and np.little_endian
            ):
                small = not planes[2:].max()
            else:
                small = False
            if small:
                low = planes[1].astype(np.uint16)
                low <<= 8
                low |= planes[0]
                np.copyto(out, low.reshape(out.shape), casting="unsafe")
                return True
            values = np.empty((n, size), np.uint8)
            for j in range(size):
                values[:, j] = planes[j]
            planes = values
        np.copyto(out, planes.view(self.dtype).reshape(out.shape), casting="unsafe")
        return True


def inflate(raw: bytes, size: int) -> bytes | None:
    """zlib-inflate ``raw``; None unless it inflates to exactly ``size`` bytes."""
    try:
        data = decompressor()(raw, bufsize=size)
    except Exception:  # noqa: BLE001 - corrupt data: HDF5's own read reports it properly
        return None
    return data if len(data) == size else None


_DECOMPRESS: Callable[..., bytes] | None = None


def decompressor() -> Callable[..., bytes]:
    """ISA-L's zlib-compatible ``decompress`` when the ``isal`` package is installed (the
    same bytes as zlib, ~2.3 x faster), else zlib's."""
    global _DECOMPRESS
    if _DECOMPRESS is None:
        try:
            from isal.isal_zlib import decompress
        except ImportError:
            from zlib import decompress
        _DECOMPRESS = decompress
    return _DECOMPRESS
