"""The 2-D simulation array ("canvas") of a layout and its mapping to the stored array.

Every panel lives in a 2-D slice of its data array (CrystFEL's ``min_fs .. max_ss``).  When
the array has one more fixed-index axis (``dim1 = <module>``, as AGIPD or LPD), the slices of
the modules are stacked along ss in the canvas: module m's data-array row ``ss`` is canvas row
``m * slab_height + ss``.  The canvas reshaped to :attr:`Canvas.array_shape` is one frame of
the stored array.  Pixels of the canvas outside every panel are gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import StreamfilterError
from ..geometry import Detector


@dataclass(frozen=True)
class Canvas:
    """Attributes
    ----------
    shape : (int, int)
        Canvas (ss, fs) pixels.
    array_shape : tuple of int
        One frame of the stored array (without the frame axis).
    ss0 : tuple of int
        Per panel (geometry order): the canvas row of its data-array row 0.
    data_path : str
        HDF5 path of the frames (every panel must share it).
    """

    shape: tuple[int, int]
    array_shape: tuple[int, ...]
    ss0: tuple[int, ...]
    data_path: str

    def window(self, panel) -> tuple[slice, slice]:
        """The panel's (ss, fs) slices of the canvas."""
        s0 = self.ss0[panel.index] + panel.min_ss
        return slice(s0, s0 + panel.height), slice(panel.min_fs, panel.max_fs + 1)

    def covered(self, detector: Detector) -> np.ndarray:
        """bool canvas: True on pixels of some panel."""
        out = np.zeros(self.shape, bool)
        for p in detector.panels:
            out[self.window(p)] = True
        return out

    def to_array(self, image: np.ndarray) -> np.ndarray:
        """One canvas (or a stack of them, frames first) in the stored array's layout."""
        return image.reshape(*image.shape[:-2], *self.array_shape)


def make_canvas(detector: Detector) -> Canvas:
    """The canvas of a parsed geometry (dims ``(%,) ss, fs`` or ``(%,) <int>, ss, fs``)."""
    paths = {p.data for p in detector.panels}
    if len(paths) != 1:
        raise StreamfilterError(
            f"{detector.source}: the simulation needs every panel in one data array, "
            f"not {len(paths)} ({', '.join(sorted(paths))})"
        )
    fixed: list[int] = []
    for p in detector.panels:
        roles = [d for d in p.dims if d != "%"]
        ints = [d for d in roles if isinstance(d, int)]
        if [d for d in roles if not isinstance(d, int)] != ["ss", "fs"] or len(ints) > 1 or (
            ints and roles[0] != ints[0]
        ):
            raise StreamfilterError(
                f"{detector.source}: panel {p.name}: the simulation supports dims "
                f"(%, ss, fs) or (%, N, ss, fs), not {p.dims}"
            )
        fixed.append(ints[0] if ints else -1)
    slab_h = max(p.max_ss for p in detector.panels) + 1
    width = max(p.max_fs for p in detector.panels) + 1
    if all(f < 0 for f in fixed):
        return Canvas((slab_h, width), (slab_h, width), (0,) * len(fixed), paths.pop())
    if any(f < 0 for f in fixed):
        raise StreamfilterError(f"{detector.source}: some panels give dim1, others not")
    n_slab = max(fixed) + 1
    return Canvas(
        (n_slab * slab_h, width),
        (n_slab, slab_h, width),
        tuple(f * slab_h for f in fixed),
        paths.pop(),
    )
