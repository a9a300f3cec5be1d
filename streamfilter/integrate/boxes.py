"""Square pixel boxes around predicted reflections, shared by every integration mode.

Conventions used throughout this module:

* All positions are **panel-relative**: ``fs = FS - min_fs``, ``ss = SS - min_ss`` where
  (FS, SS) are the data-array ("file") coordinates printed in streams.
* Pixel-corner convention: the pixel with index ``i`` spans ``[i, i + 1)``, so its centre is at
  ``i + 0.5``.  The *central pixel* of a reflection is ``(int(fs), int(ss))`` (truncation, as
  CrystFEL's ``integration.c`` does; positions on a panel are >= 0 so this equals floor).
* Boxes are indexed ``[n, q, p]``: ``n`` the reflection, ``q`` the box row (slow scan, ss),
  ``p`` the box column (fast scan, fs), both running ``0 .. 2W``.  Box pixel ``(p, q)`` is the
  panel pixel ``(centre_fs - W + p, centre_ss - W + q)``.  Images are indexed ``[ss, fs]``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IGNORED",
    "PEAK",
    "BACKGROUND",
    "ring_classes",
    "Boxes",
    "overlap_map",
    "gather_boxes",
    "gather_window",
    "central_pixels",
    "disc_pixels",
]

IGNORED = 0
PEAK = 1
BACKGROUND = 2


def ring_classes(r1: int, r2: int, r3: int, half_width: int) -> np.ndarray:
    """Classify the pixels of a ``(2W+1, 2W+1)`` box like CrystFEL's ``setup_ring_masks``.

    Distances are integer: ``d2 = (p - W)**2 + (q - W)**2`` from the centre of the central
    pixel to the centre of each box pixel (the sub-pixel position is not used).

    Parameters
    ----------
    r1, r2, r3 : int
        Inner (peak), middle and outer radii in pixels.  CrystFEL >= 0.10 truncates the
        ``--int-radius`` values to integers before building the rings; pass integers.
    half_width : int
        Box half-width ``W`` in pixels (CrystFEL uses ``W = r3``).

    Returns
    -------
    np.ndarray
        int8 array ``[q, p]`` of shape ``(2W+1, 2W+1)``: ``PEAK`` (1) where ``d2 <= r1**2``,
        ``BACKGROUND`` (2) where ``r2**2 <= d2 <= r3**2``, ``IGNORED`` (0) elsewhere
        (between the rings and in the corners beyond ``r3``).  The background test is done
        first, as in CrystFEL, so overlapping radii (``r2 <= r1``) favour background.
    """
    d = np.arange(-half_width, half_width + 1)
    d2 = d[:, None] ** 2 + d[None, :] ** 2
    classes = np.full(d2.shape, IGNORED, dtype=np.int8)
    inside_outer = d2 <= r3 * r3
    classes[inside_outer & (d2 <= r1 * r1)] = PEAK
    classes[inside_outer & (d2 >= r2 * r2)] = BACKGROUND
    return classes


@dataclass
class Boxes:
    """Pixel boxes of N reflections on one panel.

    Attributes
    ----------
    values : np.ndarray
        float32 ``(N, B, B)`` raw pixel values in ADU, ``B = 2W + 1``; 0 where off panel.
    on_panel : np.ndarray
        bool ``(N, B, B)``: the box pixel lies on the panel.
    bad : np.ndarray
        bool ``(N, B, B)``: the pixel is bad (mask, bad region, non-finite...).  Off-panel
        pixels are also flagged bad, so ``~bad`` alone selects usable pixels.
    overlap : np.ndarray
        int16 ``(N, B, B)``: number of predicted peak discs covering the pixel (CrystFEL's
        ``make_BgMask`` rule with the real-valued inner radius, see :func:`overlap_map`), the
        reflection's own disc included; 0 off panel.
    centre_fs, centre_ss : np.ndarray
        int64 ``(N,)`` panel pixel indices of the central pixel.
    """

    values: np.ndarray
    on_panel: np.ndarray
    bad: np.ndarray
    overlap: np.ndarray
    centre_fs: np.ndarray
    centre_ss: np.ndarray

    @property
    def half_width(self) -> int:
        """Box half-width ``W`` (the boxes are ``2W + 1`` pixels wide)."""
        return int(self.values.shape[-1]) // 2

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def fully_on_panel(self) -> np.ndarray:
        """bool ``(N,)``: every pixel of the square box is on the panel (CrystFEL's edge rule)."""
        return self.on_panel.all(axis=(1, 2))

    def subset(self, selection: np.ndarray) -> Boxes:
        """Return the boxes selected by a boolean mask or an index array."""
        return Boxes(
            values=self.values[selection],
            on_panel=self.on_panel[selection],
            bad=self.bad[selection],
            overlap=self.overlap[selection],
            centre_fs=self.centre_fs[selection],
            centre_ss=self.centre_ss[selection],
        )

    @staticmethod
    def concatenate(parts: list[Boxes], half_width: int) -> Boxes:
        """Join boxes (e.g. from several panels) along the reflection axis."""
        b = 2 * half_width + 1
        if not parts:
            return Boxes(
                values=np.zeros((0, b, b), np.float32),
                on_panel=np.zeros((0, b, b), bool),
                bad=np.zeros((0, b, b), bool),
                overlap=np.zeros((0, b, b), np.int16),
                centre_fs=np.zeros(0, np.int64),
                centre_ss=np.zeros(0, np.int64),
            )
        return Boxes(
            values=np.concatenate([p.values for p in parts]),
            on_panel=np.concatenate([p.on_panel for p in parts]),
            bad=np.concatenate([p.bad for p in parts]),
            overlap=np.concatenate([p.overlap for p in parts]),
            centre_fs=np.concatenate([p.centre_fs for p in parts]),
            centre_ss=np.concatenate([p.centre_ss for p in parts]),
        )


def central_pixels(fs: np.ndarray, ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central pixel indices ``(int(fs), int(ss))`` of panel-relative positions.

    C's ``(int)`` cast truncates towards zero; positions on a panel are >= 0 so this is
    floor.  (Off-panel negative positions are rejected before integration anyway.)
    """
    return (
        np.trunc(np.asarray(fs, dtype=np.float64)).astype(np.int64),
        np.trunc(np.asarray(ss, dtype=np.float64)).astype(np.int64),
    )


def overlap_map(
    shape: tuple[int, int], fs: np.ndarray, ss: np.ndarray, r1_real: float
) -> np.ndarray:
    """Count, per pixel of one panel, the predicted peak discs that cover it.

    Reproduces CrystFEL's ``make_BgMask``/``add_crystal_to_mask`` (``peaks.c``): for every
    prediction at panel-relative ``(fs, ss)`` and every integer offset ``(dfs, dss)`` with
    ``|dfs|, |dss| <= int(r1_real)`` and ``dfs**2 + dss**2 <= r1_real**2``, the pixel
    ``(int(fs + dfs), int(ss + dss))`` gets +1 if it is on the panel.  Note the truncation
    of ``fs + dfs`` (not ``int(fs) + dfs``): a disc sticking out of the low edge folds
    offsets -1 onto pixel 0, exactly as the C code does.

    Parameters
    ----------
    shape : (int, int)
        Panel shape ``(height, width)`` = (ss, fs) pixels.
    fs, ss : np.ndarray
        Panel-relative positions (pixel-corner convention) of *all* predicted reflections on
        this panel, of all crystals of the frame.
    r1_real : float
        Real-valued inner integration radius in pixels (not truncated).

    Returns
    -------
    np.ndarray
        int16 ``(height, width)`` map.
    """
    h, w = shape
    # int16 counts wrap exactly as int64 counts cast to int16 would
    counts = np.zeros(h * w, dtype=np.int16)
    np.add.at(counts, disc_pixels(shape, fs, ss, r1_real), np.int16(1))
    return counts.reshape(h, w)


def disc_pixels(
    shape: tuple[int, int], fs: np.ndarray, ss: np.ndarray, r1_real: float
) -> np.ndarray:
    """The pixels :func:`overlap_map` counts, as flat indices ``ss * width + fs``.

    Same arguments as :func:`overlap_map` (panel-relative positions, pixel-corner
    convention; real-valued r1 in pixels).  One int64 entry per disc and covered on-panel
    pixel, so ``np.add.at(map.ravel(), disc_pixels(...), 1)`` adds the discs to a map.
    """
    h, w = shape
    fs = np.asarray(fs, dtype=np.float64).ravel()
    ss = np.asarray(ss, dtype=np.float64).ravel()
    pf, ps = disc_cover(fs, ss, float(r1_real))
    if pf.size == 0:
        return np.zeros(0, dtype=np.int64)
    if pf.min() >= 0 and pf.max() < w and ps.min() >= 0 and ps.max() < h:
        return (ps * w + pf).ravel()
    on = (pf >= 0) & (pf < w) & (ps >= 0) & (ps < h)
    return ps[on] * w + pf[on]


def disc_cover(fs: np.ndarray, ss: np.ndarray, r1_real: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) panel-relative pixels ``(int(fs + dfs), int(ss + dss))`` of the discs, as
    ``add_crystal_to_mask`` computes them (float -> int truncates towards zero, like C's
    ``(int)``); off-panel pixels included."""
    dfs, dss = _disc_offsets(r1_real)
    return (fs[:, None] + dfs).astype(np.int64), (ss[:, None] + dss).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _disc_offsets(r1_real: float) -> tuple[np.ndarray, np.ndarray]:
    """float64 (1, D) fs and ss offsets of :func:`overlap_map`'s disc, ss-major order."""
    ir = int(r1_real)
    d = np.arange(-ir, ir + 1)
    dfs, dss = np.meshgrid(d, d, indexing="xy")
    keep = dfs * dfs + dss * dss <= r1_real * r1_real
    out = (dfs[keep].astype(np.float64)[None, :], dss[keep].astype(np.float64)[None, :])
    for a in out:
        a.flags.writeable = False
    return out


def gather_window(
    array: np.ndarray,
    centre_fs: np.ndarray,
    centre_ss: np.ndarray,
    half_width: int,
    fill: float | bool | int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(2W+1, 2W+1)`` windows out of a 2-D panel array by fancy indexing.

    Parameters
    ----------
    array : np.ndarray
        ``(height, width)`` panel array indexed ``[ss, fs]``.
    centre_fs, centre_ss : np.ndarray
        int ``(N,)`` central pixel indices.
    half_width : int
        ``W``.
    fill
        Value for window pixels that fall off the panel.

    Returns
    -------
    windows, on_panel : np.ndarray
        ``(N, B, B)`` windows (dtype of ``array``) and the bool on-panel map.
    """
    idx, on = _window_index(array.shape, centre_fs, centre_ss, half_width)
    return _take_window(array, idx, on, fill), _on_panel(on, idx.shape)


def _window_index(
    shape: tuple[int, ...], centre_fs: np.ndarray, centre_ss: np.ndarray, half_width: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat indices ``ss * width + fs`` of the ``(N, B, B)`` window pixels (clipped onto the
    panel) and the on-panel map, None when every window lies entirely on the panel."""
    h, w = shape
    d = np.arange(-half_width, half_width + 1)
    cf = np.asarray(centre_fs, dtype=np.int64)
    cs = np.asarray(centre_ss, dtype=np.int64)
    if cf.size == 0 or (
        cf.min() >= half_width
        and cf.max() < w - half_width
        and cs.min() >= half_width
        and cs.max() < h - half_width
    ):
        return (cs * w + cf)[:, None, None] + (d[:, None] * w + d), None
    ifs = cf[:, None, None] + d[None, None, :]
    iss = cs[:, None, None] + d[None, :, None]
    on = (ifs >= 0) & (ifs < w) & (iss >= 0) & (iss < h)
    return np.clip(iss, 0, h - 1) * w + np.clip(ifs, 0, w - 1), on


def _take_window(
    array: np.ndarray, idx: np.ndarray, on: np.ndarray | None, fill: float | bool | int
) -> np.ndarray:
    win = np.ascontiguousarray(array).reshape(-1)[idx]
    if on is None:
        return win
    return np.where(on, win, np.asarray(fill, dtype=array.dtype))


def _on_panel(on: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool) if on is None else on


def gather_boxes(
    image: np.ndarray,
    bad: np.ndarray | None,
    centre_fs: np.ndarray,
    centre_ss: np.ndarray,
    half_width: int,
    overlap: np.ndarray | None,
) -> Boxes:
    """Gather the boxes of N reflections on one panel (vectorised).

    Parameters
    ----------
    image : np.ndarray
        float32 ``(height, width)`` panel pixel values in ADU, indexed ``[ss, fs]``.
    bad : np.ndarray or None
        bool ``(height, width)`` bad-pixel map of the panel (None: no bad pixels).
    centre_fs, centre_ss : np.ndarray
        int ``(N,)`` central pixel indices (see :func:`central_pixels`).
    half_width : int
        Box half-width ``W`` (CrystFEL: ``int(r3)``).
    overlap : np.ndarray or None
        int16 ``(height, width)`` map from :func:`overlap_map` (None: all zeros).

    Returns
    -------
    Boxes
    """
    image = np.asarray(image, dtype=np.float32)
    idx, on_or_none = _window_index(image.shape, centre_fs, centre_ss, half_width)
    values = _take_window(image, idx, on_or_none, 0.0)
    on = _on_panel(on_or_none, idx.shape)
    if bad is None:
        badw = ~on
    else:
        bad = np.asarray(bad, dtype=bool)
        if bad.shape == image.shape:
            badw = _take_window(bad, idx, on_or_none, True)
        else:
            badw, _ = gather_window(bad, centre_fs, centre_ss, half_width, True)
    if overlap is None:
        ov = np.zeros(values.shape, dtype=np.int16)
    else:
        overlap = np.asarray(overlap, dtype=np.int16)
        if overlap.shape == image.shape:
            ov = _take_window(overlap, idx, on_or_none, 0)
        else:
            ov, _ = gather_window(overlap, centre_fs, centre_ss, half_width)
    return Boxes(
        values=values,
        on_panel=on,
        bad=badw | ~on,
        overlap=ov,
        centre_fs=np.asarray(centre_fs, dtype=np.int64).copy(),
        centre_ss=np.asarray(centre_ss, dtype=np.int64).copy(),
    )


def stamp_discs(
    shape: tuple[int, int], fs: np.ndarray, ss: np.ndarray, radius: float
) -> np.ndarray:
    """bool (h, w): pixels whose centre lies within ``radius`` (integer offsets from the
    pixel holding the position) of any of the panel-relative positions."""
    out = np.zeros(shape, dtype=bool)
    if len(fs) == 0:
        return out
    h, w = shape
    cf, cs = central_pixels(fs, ss)
    r = int(radius)
    d = np.arange(-r, r + 1)
    dss, dfs = np.nonzero(d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius)
    pf = cf[:, None] + (dfs - r)[None, :]
    ps = cs[:, None] + (dss - r)[None, :]
    on = (pf >= 0) & (pf < w) & (ps >= 0) & (ps < h)
    out[ps[on], pf[on]] = True
    return out
