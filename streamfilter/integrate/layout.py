"""The detector as integration sees it, built once per run, and a frame in one flat index space.

:class:`DetectorLayout` holds everything about the panels that does not change from frame
to frame (shapes, the flat index space, saturation levels, gains per photon energy, the
polar grid per set of header values, the joined static pixel maps); the pipeline builds one
per run and passes it to every method.  :class:`FramePixels` is one frame's panel arrays in
that index space, and :func:`overlap_counts` CrystFEL's ``make_BgMask`` over all panels at
once.

Conventions: positions panel-relative (``fs = FS - min_fs``), pixel ``i`` spans ``[i, i+1)``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamfilter.integrate.boxes import _disc_offsets, disc_cover, overlap_map
from streamfilter.integrate.model import CrystalPredictions

__all__ = ["DetectorLayout", "FramePixels", "overlap_counts", "overlap_maps", "disc_index"]


class DetectorLayout:
    """The panels of a detector, laid out for integration (built once per run).

    Attributes
    ----------
    detector : streamfilter.geometry.Detector
    panels : list of Panel
        In geometry order; reflections refer to them by index.
    shapes : list of (h, w)
    offset, width, height : np.ndarray
        int64 per panel: pixel (fs, ss) of panel i is ``offset[i] + ss * width[i] + fs`` in
        the flat index space.
    max_adu : np.ndarray
        float64 saturation level per panel (ADU, inf when none).
    min_fs, min_ss : np.ndarray
        float64 per panel: panel-relative to data-array coordinates.
    names : np.ndarray
        object array of panel names.
    index : dict of str to int
        Panel name to index.
    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.panels = panels = list(detector.panels)
        self.shapes = [(int(p.height), int(p.width)) for p in panels]
        self.height = np.array([h for h, _ in self.shapes], dtype=np.int64)
        self.width = np.array([w for _, w in self.shapes], dtype=np.int64)
        self.offset = np.concatenate([[0], np.cumsum(self.height * self.width)[:-1]]).astype(
            np.int64
        )
        self.max_adu = np.array([float(getattr(p, "max_adu", math.inf)) for p in panels])
        self.min_fs = np.array([p.min_fs for p in panels], dtype=np.float64)
        self.min_ss = np.array([p.min_ss for p in panels], dtype=np.float64)
        self.names = np.array([p.name for p in panels], dtype=object)
        self.index = {p.name: i for i, p in enumerate(panels)}
        self.size = int((self.height * self.width).sum())
        for a in (self.offset, self.width, self.height, self.max_adu, self.min_fs, self.min_ss,
                  self.names):  # fmt: skip
            a.flags.writeable = False  # shared by every frame
        self._gains: dict[float, tuple[np.ndarray, dict[int, Exception]]] = {}
        self._grids: dict[tuple, Any] = {}
        self._planes: dict[tuple, tuple[list, dict]] = {}
        self._joined: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}

    def gain(self, photon_energy_eV: float) -> tuple[np.ndarray, dict[int, Exception]]:
        """ADU per photon of every panel at this photon energy (NaN where a panel has none),
        and the error to raise for such a panel if one of its reflections is integrated."""
        hit = self._gains.get(photon_energy_eV)
        if hit is not None:
            return hit
        gain = np.full(len(self.panels), np.nan)
        errors: dict[int, Exception] = {}
        for i, p in enumerate(self.panels):
            try:
                gain[i] = float(p.adu_per_photon_at(photon_energy_eV))
            except Exception as e:  # a panel without a gain: an error only if it has spots
                errors[i] = e
        if not errors:  # (an error is raised afresh for every frame)
            gain.flags.writeable = False
            if len(self._gains) >= 64:
                self._gains.clear()
            self._gains[photon_energy_eV] = (gain, errors)
        return gain, errors

    def polar_grid(self, header_values: dict[str, float] | None = None) -> Any:
        """:func:`streamfilter.integrate.background.polar_grid` of this detector for the
        frame's header values (built once per distinct set of values)."""
        from streamfilter.integrate.background import camera_z, panel_planes, polar_grid

        # what does not depend on the camera length is shared by the grids of one detector
        # shift (header values such as clen often change with every event)
        shift = getattr(self.detector, "detector_shift_m", None)
        where = tuple(shift(header_values)) if shift is not None else (0.0, 0.0)
        planes = self._planes.get(where)
        if planes is None:
            if len(self._planes) >= 8:
                self._planes.clear()
            planes = self._planes[where] = (panel_planes(self.detector, header_values), {})
        # panels perpendicular to the beam: the grid depends on L / z only (on a flat
        # detector 1 for every panel, whatever clen); tilted panels: on the header values
        z, length = camera_z(self.detector, header_values, planes[0])
        if all(pl.dz is None for pl in planes[0]):
            key: tuple = (where, tuple(length / v for v in z.values()))
        else:
            key = (where, tuple(sorted(header_values.items())) if header_values else ())
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) >= 8:
                self._grids.clear()
            grid = polar_grid(self.detector, header_values, planes[0])
            grid.sectors = planes[1]
            self._grids[key] = grid
        return grid

    def _static(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        """:func:`_flat` of per-panel maps that stay the same from frame to frame (the
        frame source hands out the same read-only static masks each time): joined once."""
        hit = self._joined.get(name)
        if hit is not None and len(hit[0]) == len(arrays):
            if all(x is y for x, y in zip(hit[0], arrays, strict=True)):
                return hit[1]
        out = _flat(arrays)
        if all(not a.flags.writeable for a in arrays):
            self._joined[name] = (list(arrays), out)
        return out

    def frame_pixels(self, frame: Any, photon_energy_eV: float) -> FramePixels | None:
        """:class:`FramePixels` of a frame, or None when an array disagrees with the
        geometry's panel shape (such frames go through :func:`gather_boxes` panel by
        panel)."""
        layout, panels = self, self.panels
        shapes = layout.shapes
        try:
            images = [np.asarray(frame.data[p.name], dtype=np.float32) for p in panels]
            bads = [frame.bad[p.name] for p in panels]
        except KeyError:  # a frame without every panel: only the panels used are looked up
            return None
        sat_maps = getattr(frame, "saturation", None) or {}
        sats = [sat_maps.get(p.name) for p in panels]
        for shape, im, bd, st in zip(shapes, images, bads, sats, strict=True):
            if im.shape != shape or (bd is not None and np.shape(bd) != shape):
                return None
            if st is not None and np.shape(st) != shape:
                return None
        bad = None
        if any(bd is not None for bd in bads):
            bad = self._static("bad", [
                np.zeros(sh, bool) if bd is None else np.asarray(bd, dtype=bool)
                for sh, bd in zip(shapes, bads, strict=True)
            ])  # fmt: skip
        saturation = None
        if any(st is not None for st in sats):
            saturation = self._static("saturation", [
                np.full(sh, np.inf, np.float32) if st is None else np.asarray(st, np.float32)
                for sh, st in zip(shapes, sats, strict=True)
            ])  # fmt: skip
        gain, gain_errors = self.gain(photon_energy_eV)
        image = getattr(frame, "flat_data", None)  # the frame source's own flat read
        if image is None or image.dtype != np.float32 or image.size != self.size:
            image = _flat(images)
        return FramePixels(
            offset=layout.offset,
            width=layout.width,
            height=layout.height,
            image=image,
            bad=bad,
            saturation=saturation,
            max_adu=layout.max_adu,
            gain=gain,
            gain_errors=gain_errors,
        )


@dataclass
class FramePixels:
    """A frame's panel arrays in one flat index space: pixel (fs, ss) of panel i (panel-
    relative) is ``offset[i] + ss * width[i] + fs``, panels in geometry order, each C-ordered.

    ``image`` (float32 ADU), ``bad`` (bool) and ``saturation`` (float32 ADU, optional) are
    flat arrays of that space; ``max_adu`` and ``gain`` (ADU per photon) are per panel.
    """

    offset: np.ndarray
    width: np.ndarray
    height: np.ndarray
    image: np.ndarray
    bad: np.ndarray | None
    saturation: np.ndarray | None
    max_adu: np.ndarray
    gain: np.ndarray
    gain_errors: dict[int, Exception] = field(default_factory=dict)  # raised when used

    @property
    def size(self) -> int:
        return int(self.offset[-1] + self.width[-1] * self.height[-1])



def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    """The panels' arrays one after the other as one flat array (a copy, unless there is
    one C-ordered panel)."""
    first = arrays[0]
    if len(arrays) == 1 and first.flags.c_contiguous:
        return first.reshape(-1)
    return np.concatenate([a.reshape(-1) for a in arrays])


@functools.lru_cache(maxsize=32)
def _disc_steps(r1: float, width: int) -> np.ndarray:
    """Flat-index offsets ``dss * width + dfs`` of the disc pixels (read-only int64 (D,))."""
    dfs, dss = _disc_offsets(r1)
    out = (dss[0] * width + dfs[0]).astype(np.int64)
    out.flags.writeable = False
    return out


#: Below 2**20 px doubles are spaced 2**-32 or closer: see :func:`disc_index`.
_SIMPLE_LIMIT = 2.0**20
_NEARLY_ONE = 1.0 - 2.0**-20


def disc_index(
    fp: FramePixels, panel: np.ndarray, fs: np.ndarray, ss: np.ndarray, r1: float
) -> np.ndarray:
    """:func:`disc_pixels` of predictions on any panels: (N, D) flat indices of the covered
    pixels, ``fp.size`` (the sink slot of :func:`overlap_counts`) for pixels off their
    panel.

    Most discs take a shortcut: with F = floor(fs) and every offset d an integer within
    +-int(r1), ``int(fs + d) == F + d`` whenever fs - int(r1) >= 0 (the sum is >= 0, so the
    cast is floor) and the sum cannot round up to the next integer, which needs
    ``fs - F >= 1 - 2**-33`` below 2**20 px.  If moreover fs + int(r1) < w (rounding is
    monotonic) the whole disc is on the panel.  The other discs (near an edge, or a
    position within 2**-20 px below an integer) are computed as the C code does.
    """
    reach = int(r1)
    w, h = fp.width[panel], fp.height[panel]
    ffs, fss = np.floor(fs), np.floor(ss)
    simple = (fs - reach >= 0) & (fs + reach < w) & (ss - reach >= 0) & (ss + reach < h)
    simple &= (fs - ffs < _NEARLY_ONE) & (ss - fss < _NEARLY_ONE)
    simple &= (fs < _SIMPLE_LIMIT) & (ss < _SIMPLE_LIMIT)
    ifs, iss = ffs.astype(np.int64), fss.astype(np.int64)
    if w.size and (w == w[0]).all():
        base = fp.offset[panel] + iss * w + ifs
        flat = base[:, None] + _disc_steps(r1, int(w[0]))
    else:
        dfs, dss = _disc_offsets(r1)
        idfs, idss = dfs.astype(np.int64), dss.astype(np.int64)
        flat = (iss[:, None] + idss) * w[:, None] + (
            ifs[:, None] + idfs + fp.offset[panel][:, None]
        )
    rest = np.flatnonzero(~simple)
    if rest.size:
        pf, ps = disc_cover(fs[rest], ss[rest], r1)
        wr, hr = w[rest, None], h[rest, None]
        on = (pf >= 0) & (pf < wr) & (ps >= 0) & (ps < hr)
        flat[rest] = np.where(on, ps * wr + (pf + fp.offset[panel[rest], None]), fp.size)
    return flat


def overlap_counts(fp: FramePixels, preds: list[CrystalPredictions], r1: float) -> np.ndarray:
    """``make_BgMask`` of every panel at once: int16 counts in the flat index space (the
    same numbers as :func:`overlap_map` per panel), plus one last slot that counts the disc
    pixels off their panels (never read)."""
    counts = np.zeros(fp.size + 1, dtype=np.int16)
    panel = np.concatenate([pd.panel for pd in preds]) if preds else np.zeros(0, np.int64)
    if panel.size:
        fs = np.concatenate([pd.fs for pd in preds])
        ss = np.concatenate([pd.ss for pd in preds])
        np.add.at(counts, disc_index(fp, panel, fs, ss, r1).ravel(), np.int16(1))
    return counts




def overlap_maps(
    panels: list[Any],
    preds: list[CrystalPredictions],
    r1: float,
    needed: set[int] | None = None,
) -> dict[int, np.ndarray]:
    """One ``make_BgMask`` map per panel from the predictions of all crystals (only the
    panels in ``needed``, when given)."""
    maps = {}
    for i, p in enumerate(panels):
        if needed is not None and i not in needed:
            continue
        fs = [pd.fs[pd.panel == i] for pd in preds]
        ss = [pd.ss[pd.panel == i] for pd in preds]
        maps[i] = overlap_map(
            (p.height, p.width),
            np.concatenate(fs) if fs else np.zeros(0),
            np.concatenate(ss) if ss else np.zeros(0),
            r1,
        )
    return maps


def panels_of(preds: list[CrystalPredictions]) -> set[int]:
    return {int(i) for pd in preds for i in np.unique(pd.panel)}


