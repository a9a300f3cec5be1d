"""What every integration method takes and gives: predictions in, per-reflection results out.

Conventions: positions are **panel-relative** (``fs = FS - min_fs``) in the input and
data-array coordinates in :class:`CrystalResult`, pixel-corner convention (pixel ``i`` spans
``[i, i + 1)``); panels are indices into the geometry's panel list in the input, names in the
result; intensities in ADU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

__all__ = [
    "Status",
    "CrystalPredictions",
    "FoundPeaks",
    "RingsResult",
    "CrystalResult",
    "crystal_result",
    "finish_result",
]


@dataclass
class CrystalPredictions:
    """One crystal's predicted reflections, sorted by (h, k, l).

    Attributes
    ----------
    h, k, l : np.ndarray
        int32 Miller indices.
    panel : np.ndarray
        int64 index of the panel (geometry order) the reflection falls on.
    fs, ss : np.ndarray
        float64 panel-relative position (pixels, pixel-corner convention).
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def select(self, keep: np.ndarray) -> CrystalPredictions:
        return CrystalPredictions(self.h[keep], self.k[keep], self.l[keep], self.panel[keep],
                                  self.fs[keep], self.ss[keep])  # fmt: skip



class Status(IntEnum):
    """Why a predicted reflection was (not) written."""

    OK = 0
    OFF_PANEL = 1  #: part of the square box is off the panel
    BAD_PEAK_PIXEL = 2  #: a bad pixel inside the peak disc (CrystFEL >= 0.12 rejects)
    TOO_FEW_PIXELS = 3  #: fewer than 4 peak or 4 background pixels remain
    SATURATED = 4  #: saturated and ``keep_saturated`` is off
    IMPLAUSIBLE = 5  #: I < -5 sigma(I)
    BG_GRADIENT = 6  #: ``-grad`` background steeper than CrystFEL's ``bg_ok`` allows
    #: the frame background model is not determined under the peak disc (no usable pixels
    #: in its rings, e.g. near the beam; ``robust``/``profile``, background ``radial``)
    BACKGROUND_UNDETERMINED = 7


# plain ints for array comparisons (an IntEnum member goes through a slow path in numpy)
_OK = int(Status.OK)
_OFF_PANEL = int(Status.OFF_PANEL)
_BAD_PEAK_PIXEL = int(Status.BAD_PEAK_PIXEL)
_TOO_FEW_PIXELS = int(Status.TOO_FEW_PIXELS)
_SATURATED = int(Status.SATURATED)
_IMPLAUSIBLE = int(Status.IMPLAUSIBLE)
_BG_GRADIENT = int(Status.BG_GRADIENT)
#: a float64 zero that makes np.where's result float64 whatever the pixel type (NEP 50)
_ZERO = np.float64(0.0)


@dataclass
class RingsResult:
    """Per-reflection output of :func:`integrate_rings` (all N boxes, written or not).

    Attributes
    ----------
    I, sigma : np.ndarray
        float64 intensity and sigma(I) in ADU (NaN where not integrated).
    peak : np.ndarray
        float64 maximum raw value over the remaining peak and background pixels (ADU).
    background : np.ndarray
        float64 plain mean of the remaining background pixels (ADU).
    status : np.ndarray
        int8 :class:`Status` codes; ``Status.OK`` rows are the ones CrystFEL writes.
    saturated : np.ndarray
        bool, the reflection had a saturated pixel (counted in
        ``num_saturated_reflections`` whether or not it is kept).
    n_peak, n_background : np.ndarray
        int64 numbers of peak (m) and background (n) pixels used.
    """

    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    peak: np.ndarray
    background: np.ndarray
    status: np.ndarray
    saturated: np.ndarray
    n_peak: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_background: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def written(self) -> np.ndarray:
        """bool: rows CrystFEL writes (status OK)."""
        return self.status == _OK

    @property
    def n_saturated(self) -> int:
        """``num_saturated_reflections``: saturated boxes that passed the box checks."""
        return int(np.count_nonzero(self.saturated))

    @property
    def n_implausible(self) -> int:
        """``num_implausible_reflections``."""
        return int(np.count_nonzero(self.status == _IMPLAUSIBLE))



def finish_result(
    intensity: np.ndarray,
    sigma: np.ndarray,
    peak: np.ndarray,
    background: np.ndarray,
    status: np.ndarray,
    saturated: np.ndarray,
    done: np.ndarray,
    n_peak: np.ndarray,
    n_background: np.ndarray,
) -> RingsResult:
    """A :class:`RingsResult` with NaN numbers wherever ``done`` is False (every mode)."""
    nan = np.full(status.shape, np.nan)
    return RingsResult(
        I=np.where(done, intensity, nan),
        sigma=np.where(done, sigma, nan),
        peak=np.where(done, peak, nan),
        background=np.where(done, background, nan),
        status=status,
        saturated=saturated,
        n_peak=np.asarray(n_peak).astype(np.int64),
        n_background=np.asarray(n_background).astype(np.int64),
    )




@dataclass
class CrystalResult:
    """Integration of one crystal's predicted reflections (sorted by h, k, l).

    Attributes
    ----------
    h, k, l : np.ndarray
        int32 Miller indices of every predicted reflection (written or not).
    I, sigma, peak, background : np.ndarray
        float64, ADU; NaN where not integrated.
    fs, ss : np.ndarray
        float64 predicted position in **data-array** coordinates (panel-relative + min_fs /
        min_ss), pixel-corner convention, as written in the stream.
    panel : np.ndarray
        Panel names (str).
    status : np.ndarray
        int8 :class:`Status`; ``written`` selects the rows CrystFEL writes.
    n_saturated, n_implausible : int
        ``num_saturated_reflections`` / ``num_implausible_reflections``.
    estimator : np.ndarray or None
        Per reflection, what gave I: ``"profile"`` (a profile fit) or ``"sum"`` (the
        background-subtracted peak-disc sum), for methods that choose per reflection
        (``profile``); None when one estimator gives every I (the method's own).
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    I: np.ndarray  # noqa: E741
    sigma: np.ndarray
    peak: np.ndarray
    background: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    panel: np.ndarray
    status: np.ndarray
    n_saturated: int
    n_implausible: int
    estimator: np.ndarray | None = None

    @property
    def written(self) -> np.ndarray:
        """bool mask of the rows CrystFEL writes."""
        return self.status == _OK

    def __len__(self) -> int:
        return int(self.h.shape[0])



def crystal_result(pred: CrystalPredictions, res: RingsResult, layout: Any) -> CrystalResult:
    """One crystal's :class:`CrystalResult`: its predictions (panel-relative positions made
    data-array ones with the ``layout``'s ``min_fs``/``min_ss``, panel indices made names)
    with the numbers of ``res``."""
    return CrystalResult(
        h=pred.h,
        k=pred.k,
        l=pred.l,
        I=res.I,
        sigma=res.sigma,
        peak=res.peak,
        background=res.background,
        fs=pred.fs + layout.min_fs[pred.panel],
        ss=pred.ss + layout.min_ss[pred.panel],
        panel=layout.names[pred.panel],
        status=res.status,
        n_saturated=res.n_saturated,
        n_implausible=res.n_implausible,
    )


@dataclass
class FoundPeaks:
    """A frame's found peaks (the stream's peak list) in data-array coordinates.

    Attributes
    ----------
    fs, ss : np.ndarray
        float64 positions (pixels, pixel-corner convention).
    panel : np.ndarray or None
        Panel names (str); None for formats whose peak list has no panel column (the panel
        is then the one whose data range holds the position).
    """

    fs: np.ndarray
    ss: np.ndarray
    panel: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.fs.shape[0])
