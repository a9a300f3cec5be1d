"""The crystals of a stream as merging and matching see them (:class:`CrystalObservations`),
read chunk by chunk (:func:`iter_crystals`).

Units: 1/d in nm^-1 (CrystFEL's), intensities in the stream's units (ADU for indexamajig's
and streamfilter's streams), reciprocal vectors in nm^-1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamfilter.crystal import one_over_d

__all__ = ["CrystalObservations", "chunk_crystals", "iter_crystals"]


@dataclass
class CrystalObservations:
    """The reflections of one crystal of one chunk, with what merging and matching need.

    Attributes
    ----------
    frame : tuple of (str, str or None)
        (Image filename, Event) of the chunk.
    index : int
        0-based number of the crystal in the stream (over all chunks).
    chunk_index : int
        0-based number of the chunk in the stream.
    astar, bstar, cstar : numpy.ndarray or None
        Reciprocal basis vectors, nm^-1, lab frame.
    cell : tuple or None
        (a, b, c in nm, alpha, beta, gamma in degrees) from ``Cell parameters``.
    centering : str or None
        Lattice centring letter (P, A, B, C, I, F, R, H).
    resolution_limit : float or None
        ``diffraction_resolution_limit`` in nm^-1.
    h, k, l : numpy.ndarray of int32
        Miller indices in the crystal's own setting.
    I, sigma : numpy.ndarray of float64
        Intensity and sigma, ADU, as printed in the stream.
    one_over_d : numpy.ndarray of float64
        1/d of each row in nm^-1 from the reciprocal vectors (NaN without them).
    serial : int or None
        The chunk's ``Image serial number``.
    peak : numpy.ndarray of float64 or None
        The ``peak`` column (highest pixel value, ADU), for ``max_adu``.
    photon_energy_eV : float or None
        The chunk's ``photon_energy_eV``, for the polarisation correction.
    """

    frame: tuple[str, str | None]
    index: int
    chunk_index: int
    astar: np.ndarray | None
    bstar: np.ndarray | None
    cstar: np.ndarray | None
    cell: tuple[float, ...] | None
    centering: str | None
    resolution_limit: float | None
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    one_over_d: np.ndarray
    serial: int | None = None
    peak: np.ndarray | None = None
    photon_energy_eV: float | None = None  # noqa: N815 - CrystFEL's key name

    def __len__(self) -> int:
        return int(self.h.shape[0])

    @property
    def reciprocal_basis(self) -> np.ndarray | None:
        """3 x 3 matrix with rows a*, b*, c* (nm^-1), or None."""
        if self.astar is None or self.bstar is None or self.cstar is None:
            return None
        return np.array([self.astar, self.bstar, self.cstar], dtype=np.float64)


def iter_crystals(
    path: str | os.PathLike,
    *,
    quiet: bool = True,
    desc: str | None = None,
    header_out: list | None = None,
    tails_out: list | None = None,
) -> Iterator[CrystalObservations]:
    """Yield every crystal of a stream that has a reflection table, in stream order.

    Parameters
    ----------
    path : str or path-like
        Stream file (``.gz`` and ``"-"`` accepted).
    quiet : bool
        No progress bar (one is shown on a terminal otherwise).
    desc : str, optional
        Label of the progress bar.
    header_out : list, optional
        If given, the stream's :class:`~streamfilter.stream.StreamHeader` is appended to it
        once the header has been read.
    tails_out : list, optional
        If given, receives the message of the stream's incomplete tail (a last chunk cut
        off by the end of the file: still being written, or cut short) when there is one;
        the crystals of the complete chunks are yielded either way, as process_hkl and
        partialator read them.
    """
    from streamfilter.progress import byte_progress, input_size
    from streamfilter.stream import read_stream

    n_crystal = 0
    with (
        read_stream(path) as reader,
        byte_progress(input_size(str(path)), desc or Path(str(path)).name, quiet) as bar,
    ):
        if header_out is not None:
            header_out.append(reader.header)
        for chunk in reader:
            bar.update(len(chunk.raw) + len(chunk.preceding))
            yield from chunk_crystals(chunk, n_crystal)
            n_crystal += len(chunk.crystals)
        if tails_out is not None and reader.incomplete_tail is not None:
            tails_out.append(str(reader.incomplete_tail))


def chunk_crystals(chunk: Any, first_index: int = 0) -> Iterator[CrystalObservations]:
    """The crystals of one chunk that have a reflection table (``first_index``: the stream
    number of the chunk's first crystal)."""
    frame = (chunk.filename or "", chunk.event)
    for index, xtal in enumerate(chunk.crystals, first_index):
        table = xtal.reflections
        if table is None:
            continue
        if xtal.astar is None:
            inv_d = np.full(len(table), np.nan)
        else:
            inv_d = one_over_d(table.h, table.k, table.l, xtal.astar, xtal.bstar, xtal.cstar)
        yield CrystalObservations(
            frame, index, chunk.index, xtal.astar, xtal.bstar, xtal.cstar, xtal.cell,
            xtal.centering, xtal.resolution_limit, table.h, table.k, table.l, table.I,
            table.sigma, inv_d, chunk.serial, table.peak, chunk.photon_energy_eV,
        )  # fmt: skip
