"""Reading HDF5 hyperslabs through h5py (the reference path), with the direct-inflate
fast path of :mod:`._direct` where the caller has a plan for the dataset."""

from __future__ import annotations

import h5py
import numpy as np

from ._direct import DirectPlan

_PLUGINS_LOADED = False


def ensure_filters(ds: h5py.Dataset) -> None:
    """Register hdf5plugin's filters (bitshuffle, LZ4, Blosc, ...) with HDF5 before a dataset
    that uses a filter HDF5 lacks is read.  Imported only then: it costs ~15 ms of start-up,
    and deflate/shuffle datasets (and our direct chunk reads) do not need it."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED or ds.chunks is None:  # contiguous datasets have no filters
        return
    dcpl = ds.id.get_create_plist()
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    if all(h5py.h5z.filter_avail(c) for c in codes):
        return
    import hdf5plugin  # noqa: F401

    _PLUGINS_LOADED = True


def read_hyperslab(ds: h5py.Dataset, slab: tuple, out: np.ndarray,
                   plan: DirectPlan | None = None) -> None:
    """Read the hyperslab (start, count) into ``out``, converted to ``out.dtype``.

    With a ``plan`` (:class:`~._direct.DirectPlan`, owned by the caller's record of the
    dataset) a whole chunk is inflated by the plan; anything else is one H5Dread, HDF5
    converting on the fly (no intermediate copy): the reference path.
    """
    if plan is not None and plan.read(ds, slab, out):
        return
    start, count = slab
    fspace = ds.id.get_space()
    fspace.select_hyperslab(start, count)
    ds.id.read(h5py.h5s.create_simple(out.shape), fspace, out)
