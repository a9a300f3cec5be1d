"""The answers of a simulated data set (:class:`Truth`) and their assembly, frame by frame."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace

import numpy as np

from ..geometry import Detector
from ..integrate.boxes import gather_window
from .config import SynthConfig
from .physics import background_image


@dataclass
class TruthReflections:
    """Every predicted reflection of every crystal (written to the stream or not).

    Attributes
    ----------
    frame, crystal : int32 arrays
        Frame (event) number and crystal number within the frame (0-based).
    h, k, l : int32 arrays
        Miller indices in the crystal's (true) setting, as in the stream.
    panel : int32 array
        Panel index (0 = ``p0``, 1 = ``p1``).
    fs, ss : float64 arrays
        Predicted spot centre in **data-array** coordinates (pixel-corner convention), as
        the stream prints it with ``%6.1f`` (full precision here).
    one_over_d : float64 array
        1/d in nm^-1.
    partiality : float64 array
        CrystFEL's excitation weight of the prediction, clipped to [0, 1].
    I_full : float64 array
        The reflection's full intensity (photons, before crystal scale and partiality).
    true_I : float64 array
        Photons in the whole spot: ``scale * I_full * partiality``.  Pixels of the spot that
        fall off the panel are lost from the image (only near panel edges).
    """

    frame: np.ndarray
    crystal: np.ndarray
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741 - the Miller index
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    one_over_d: np.ndarray
    partiality: np.ndarray
    I_full: np.ndarray  # noqa: N815
    true_I: np.ndarray  # noqa: N815

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def take(self, index: np.ndarray) -> TruthReflections:
        """Rows selected by a boolean mask or an index array."""
        return TruthReflections(
            **{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}
        )


@dataclass
class TruthCrystals:
    """The crystals, one row each.

    ``astar, bstar, cstar`` are (n, 3) reciprocal vectors in nm^-1 in the lab frame, exactly
    the values printed in the stream (rounded to 7 decimals before anything was predicted);
    ``profile_radius`` nm^-1 as printed; ``scale`` the crystal's intensity scale;
    ``spot_sigma_px`` the spots' Gaussian standard deviation (pixels).
    """

    frame: np.ndarray
    crystal: np.ndarray
    astar: np.ndarray
    bstar: np.ndarray
    cstar: np.ndarray
    profile_radius: np.ndarray
    scale: np.ndarray
    spot_sigma_px: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass
class Truth:
    """The answers of a simulated data set (what :func:`load_truth` reads back).

    Attributes
    ----------
    config : SynthConfig
    bragg : float32 array (n_frames, ss, fs)
        Noise-free Bragg photons per pixel of the whole data array (multiples of
        :data:`BRAGG_QUANTUM`).
    background_components : dict of str to float32 array (ss, fs)
        Background basis maps ``diffuse``, ``water``, ``slope_x``, ``slope_y``.
    background_coeffs : float64 array (n_frames, 5)
        Per-frame coefficients, columns :data:`BACKGROUND_COLUMNS` (photons/pixel).  The
        background of a frame is :func:`background_image` of the two (see
        :meth:`background_of` and :attr:`background`).  ``bragg + background`` (in float64)
        is exactly the Poisson mean of each pixel; the stored frame is that draw times
        ``adu_per_photon``, then dead and hot pixels overwritten.
    dead, hot : bool arrays (ss, fs)
        The bad pixels (flagged in the mask; dead read 0, hot 20000-65000 ADU).
    reflections : TruthReflections
    crystals : TruthCrystals
    intensities : dict of str to ndarray
        The full intensity list in the 4/mmm asymmetric unit (``h >= k >= 0, l >= 0``):
        ``h, k, l`` (int32) and ``I`` (photons, zero for P4(3)2(1)2 absences), down to the
        highest resolution any pixel sees.
    panel_names : tuple of str
    panel_min_ss, panel_max_ss, panel_min_fs, panel_max_fs : tuple of int
        Inclusive panel ranges in the data array.
    adu_per_photon : float
        Gain of frame 0 (ADU per photon; ``frames`` has every frame's).
    panel_canvas_ss0 : tuple of int
        Per panel: the row of ``bragg`` (and of the other images) holding its data-array
        row 0.  Zero unless the stored array has a module axis (AGIPD, LPD), whose modules
        are stacked along ss in these images (:mod:`.canvas`).
    frames : dict of str to float64 array (n_frames,)
        ``photon_energy_eV``, ``clen_m`` (average camera length, clen + coffset) and
        ``adu_per_photon`` of every frame (they vary per frame in the ``cspad`` layout).

    The images (``bragg``, the background, ``dead``, ``hot``) are 2-D "canvas" arrays: the
    stored frame with any module axis folded into ss.  ``bragg`` is empty (shape
    ``(n_frames, 0, 0)``) when the data set was made with ``truth_bragg=False``.
    """

    config: SynthConfig
    bragg: np.ndarray
    background_components: dict[str, np.ndarray]
    background_coeffs: np.ndarray
    dead: np.ndarray
    hot: np.ndarray
    reflections: TruthReflections
    crystals: TruthCrystals
    intensities: dict[str, np.ndarray]
    panel_names: tuple[str, ...]
    panel_min_fs: tuple[int, ...]
    panel_max_fs: tuple[int, ...]
    panel_min_ss: tuple[int, ...]
    panel_max_ss: tuple[int, ...]
    adu_per_photon: float = 1.0
    panel_canvas_ss0: tuple[int, ...] = ()
    frames: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.bragg.shape[0])

    def background_of(self, frame: int) -> np.ndarray:
        """float32 (ss, fs): noise-free background photons per pixel of one frame."""
        return background_image(self.background_components, self.background_coeffs[frame])

    @cached_property
    def background(self) -> np.ndarray:
        """float32 (n_frames, ss, fs): noise-free background of every frame (photons)."""
        return np.stack([self.background_of(i) for i in range(self.n_frames)])

    def mean_photons(self, frame: int) -> np.ndarray:
        """float64 (ss, fs): the exact Poisson mean of every pixel of one frame (photons)."""
        return self.bragg[frame].astype(np.float64) + self.background_of(frame).astype(np.float64)

    def rows_of(self, frame: int, crystal: int | None = None) -> np.ndarray:
        """Indices into :attr:`reflections` of one frame (and crystal)."""
        sel = self.reflections.frame == frame
        if crystal is not None:
            sel &= self.reflections.crystal == crystal
        return np.flatnonzero(sel)

    def lookup(
        self, frame: int, crystal: int, h: np.ndarray, k: np.ndarray, l: np.ndarray
    ) -> np.ndarray:  # noqa: E741
        """Row index in :attr:`reflections` of each (h, k, l) of a crystal; -1 if absent."""
        rows = self.rows_of(frame, crystal)
        t = self.reflections
        table = {
            (int(a), int(b), int(c)): int(r)
            for a, b, c, r in zip(t.h[rows], t.k[rows], t.l[rows], rows, strict=True)
        }
        return np.array(
            [
                table.get((int(a), int(b), int(c)), -1)
                for a, b, c in zip(np.ravel(h), np.ravel(k), np.ravel(l), strict=True)
            ],
            dtype=np.int64,
        )

    def bragg_in_disc(self, radius: float, rows: np.ndarray | None = None) -> np.ndarray:
        """True Bragg photons within ``radius`` of each reflection's position.

        Sums ``bragg`` over the pixels of the reflection's own panel whose **centres**
        (i + 0.5) lie within ``radius`` pixels of its (fs, ss): the quantity T that the
        ref-small README compares stream intensities with (r1 for the peak disc).

        Parameters
        ----------
        radius : float
            Pixels.
        rows : int array, optional
            Indices into :attr:`reflections` (default: all).

        Returns
        -------
        float64 array, photons (multiply by ``adu_per_photon`` to compare with ADU).
        """
        t = self.reflections
        rows = np.arange(len(t)) if rows is None else np.asarray(rows)
        out = np.zeros(rows.shape[0])
        half = int(math.ceil(radius)) + 1
        d = np.arange(-half, half + 1)
        for f in np.unique(t.frame[rows]):
            for p in range(len(self.panel_names)):
                sel = np.flatnonzero((t.frame[rows] == f) & (t.panel[rows] == p))
                if sel.size == 0:
                    continue
                r = rows[sel]
                ss0, ss1 = self.panel_min_ss[p], self.panel_max_ss[p] + 1
                fs0, fs1 = self.panel_min_fs[p], self.panel_max_fs[p] + 1
                c0 = self.panel_canvas_ss0[p] if self.panel_canvas_ss0 else 0
                img = self.bragg[f, c0 + ss0 : c0 + ss1, fs0:fs1]
                fs, ss = t.fs[r] - fs0, t.ss[r] - ss0
                cfs, css = np.floor(fs).astype(np.int64), np.floor(ss).astype(np.int64)
                win, on = gather_window(img, cfs, css, half, 0.0)
                dx = cfs[:, None, None] + d[None, None, :] + 0.5 - fs[:, None, None]
                dy = css[:, None, None] + d[None, :, None] + 0.5 - ss[:, None, None]
                inside = on & (dx * dx + dy * dy <= radius * radius)
                out[sel] = np.where(inside, win.astype(np.float64), 0.0).sum(axis=(1, 2))
        return out


_REFL_DTYPES = {
    "frame": np.int32,
    "crystal": np.int32,
    "h": np.int32,
    "k": np.int32,
    "l": np.int32,
    "panel": np.int32,
}


def collect_truth(
    refl: dict,
    xtals: dict,
    frame: int,
    crystal: int,
    xtal: SimpleNamespace,
    pr,
    i_full: np.ndarray,
    true_i: np.ndarray,
    detector: Detector,
) -> None:
    min_fs = np.array([p.min_fs for p in detector.panels], dtype=np.float64)
    min_ss = np.array([p.min_ss for p in detector.panels], dtype=np.float64)
    n = len(pr)
    refl["frame"].append(np.full(n, frame))
    refl["crystal"].append(np.full(n, crystal))
    for key in ("h", "k", "l", "panel"):
        refl[key].append(getattr(pr, key))
    refl["fs"].append(pr.fs + min_fs[pr.panel])
    refl["ss"].append(pr.ss + min_ss[pr.panel])
    refl["one_over_d"].append(pr.one_over_d / 1e9)
    refl["partiality"].append(np.clip(pr.partiality, 0.0, 1.0))
    refl["I_full"].append(i_full)
    refl["true_I"].append(true_i)
    xtals["frame"].append(np.array([frame]))
    xtals["crystal"].append(np.array([crystal]))
    for key in ("astar", "bstar", "cstar"):
        xtals[key].append(np.asarray(getattr(xtal, key))[None, :])
    for key in ("profile_radius", "scale", "spot_sigma_px"):
        xtals[key].append(np.array([getattr(xtal, key)]))


def stack_truth(cols: dict[str, list], cls: type) -> dict[str, np.ndarray]:
    out = {}
    for f in dataclasses.fields(cls):
        parts = cols[f.name]
        dtype = _REFL_DTYPES.get(f.name, np.float64)
        if parts:
            out[f.name] = np.concatenate(parts).astype(dtype)
        else:
            out[f.name] = np.zeros((0, 3) if f.name.endswith("star") else 0, dtype)
    return out
