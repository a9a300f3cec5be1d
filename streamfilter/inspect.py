"""``streamfilter inspect``: look at the pixels behind one reflection, or at a frame's maxima.

:func:`inspect_reflection` re-does, for one reflection of one chunk, exactly what the
CrystFEL-identical rings integration does (re-prediction of every crystal of the frame, the
overlap mask of all predicted peak discs, the box, the ring classes, the bad-pixel and edge
rules) with the same code (:mod:`streamfilter.integrate`), and returns every pixel's value
and class together with the numbers that make up I and sigma(I).  :func:`inspect_maxima`
lists the local maxima of a frame above a threshold with the nearest predicted reflection.

Conventions: positions are **data-array** coordinates as printed in streams (pixel i spans
[i, i + 1), centre i + 0.5; fs = fast scan = column, ss = slow scan = row); boxes are indexed
``[ss, fs]``; values are raw ADU.  Chunks are numbered from 0 in file order (the number
streamfilter's error messages use).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from .cli._common import add_frame_arguments
from .errors import StreamfilterError
from .frames import Frame, FrameSource
from .geometry import Detector, Panel, parse_geometry
from .integrate import CrystalResult, Status
from .integrate.boxes import (
    PEAK,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
    ring_classes,
)
from .integrate.rings import integrate_rings
from .integrate.rings import poisson_variance as _poisson_variance
from .pipeline import config_for, integrate_frame
from .stream import Chunk, read_stream

__all__ = [
    "PixelClass",
    "InspectResult",
    "MaximaResult",
    "inspect_reflection",
    "inspect_maxima",
    "format_inspect",
    "format_maxima",
    "plot_inspect",
    "add_parser",
    "run_inspect",
]


class PixelClass(IntEnum):
    """What the integration did with a pixel of the box."""

    IGNORED = 0  #: between the peak disc and the annulus, or beyond the outer radius
    PEAK = 1  #: in the peak disc and summed
    BACKGROUND = 2  #: in the background annulus and used
    MASKED = 3  #: bad pixel (mask, bad region, flags, non-finite): excluded
    NEIGHBOUR = 4  #: inside another predicted reflection's peak disc: excluded
    OFF_PANEL = 5  #: outside the panel (the reflection is then not integrated at all)


SYMBOLS = {
    PixelClass.IGNORED: ".",
    PixelClass.PEAK: "P",
    PixelClass.BACKGROUND: "b",
    PixelClass.MASKED: "X",
    PixelClass.NEIGHBOUR: "n",
    PixelClass.OFF_PANEL: "~",
}

STATUS_TEXT = {
    Status.OK: "integrated and written",
    Status.OFF_PANEL: "not integrated: part of the box is off the panel",
    Status.BAD_PEAK_PIXEL: "not integrated: a bad pixel in the peak disc (CrystFEL >= 0.12)",
    Status.TOO_FEW_PIXELS: "not integrated: fewer than 4 peak or 4 background pixels",
    Status.SATURATED: "not written: saturated",
    Status.IMPLAUSIBLE: "not written: implausible (I < -5 sigma)",
    Status.BG_GRADIENT: "not integrated: background gradient too steep (-grad)",
}


@dataclass
class InspectResult:
    """One reflection's box and the numbers of its rings integration.

    Attributes
    ----------
    stream, filename, event : str
        The stream, and the frame the chunk names.
    chunk, crystal : int
        0-based chunk number in the stream and crystal number in the chunk.
    h, k, l : int
    panel : str
    fs, ss : float
        Predicted position used (full precision, data-array coordinates).
    centre_fs, centre_ss : int
        Data-array index of the central pixel (``trunc`` of the panel-relative position,
        plus ``min_fs``/``min_ss``); box pixel ``[q, p]`` is array element
        ``[centre_ss - W + q, centre_fs - W + p]``.
    radii : (float, float, float)
        r1, r2, r3 in pixels; ``half_width`` W = int(r3).
    gradient : bool
        ``-grad`` background plane (from the stream's command line).
    adu_per_photon : float
        Gain g of the panel (ADU per photon), for the Poisson term.
    values : float32 (B, B)
        Raw pixel values (ADU), 0 off the panel.
    rings : int8 (B, B)
        The geometric ring class of each box pixel (``integrate.boxes.ring_classes``:
        0 ignored, 1 peak, 2 background).
    classes : int8 (B, B)
        :class:`PixelClass` of each pixel after the masks.  PEAK and BACKGROUND pixels are
        exactly the ones the integration used.
    bad, overlap : (B, B)
        Bad-pixel map and number of predicted peak discs covering each pixel (own included).
    n_peak, n_background : int
        m and n, the peak and background pixels used.
    peak_sum : float
        Sum of the m peak pixel values (ADU).
    background_mean, background_var : float
        Mean and population variance of the n background values (ADU, ADU^2).
    poisson_var : float
        CrystFEL's Poisson variance term for I (ADU^2).
    I, sigma, peak, background : float
        The integration's result (NaN when not integrated); equal to the CrystFEL-identical
        re-integration of the whole frame.
    status : Status
    stream_row : dict or None
        The stream's own row for this reflection (I, sigma, peak, background, fs, ss as
        printed), or None if the stream has none.
    notes : list of str
    """

    stream: str
    chunk: int
    filename: str
    event: str
    crystal: int
    h: int
    k: int
    l: int  # noqa: E741 - the Miller index
    panel: str
    fs: float
    ss: float
    centre_fs: int
    centre_ss: int
    radii: tuple[float, float, float]
    half_width: int
    gradient: bool
    adu_per_photon: float
    values: np.ndarray
    rings: np.ndarray
    classes: np.ndarray
    bad: np.ndarray
    overlap: np.ndarray
    n_peak: int
    n_background: int
    peak_sum: float
    background_mean: float
    background_var: float
    poisson_var: float
    I: float  # noqa: E741
    sigma: float
    peak: float
    background: float
    status: Status
    stream_row: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[PixelClass, int]:
        """Number of box pixels in each :class:`PixelClass`."""
        return {c: int(np.count_nonzero(self.classes == c)) for c in PixelClass}

    @property
    def box_fs(self) -> np.ndarray:
        """Data-array fs index of each box column."""
        w = self.half_width
        return np.arange(self.centre_fs - w, self.centre_fs + w + 1)

    @property
    def box_ss(self) -> np.ndarray:
        """Data-array ss index of each box row."""
        w = self.half_width
        return np.arange(self.centre_ss - w, self.centre_ss + w + 1)


@dataclass
class MaximaResult:
    """Local maxima of a frame above a threshold, with the nearest predicted reflection.

    Arrays have one entry per maximum, brightest first.  ``fs, ss`` are the pixel centres
    (index + 0.5) in data-array coordinates; ``value`` ADU.  ``crystal`` is -1 and
    ``distance`` inf when the panel has no prediction; ``written`` says whether the stream
    has a row for that reflection.  ``predicted_fs, predicted_ss`` are every prediction of
    the frame (data-array coordinates); ``images`` maps each panel name to its pixel array
    and its (min_fs, min_ss), for drawing.
    """

    stream: str
    chunk: int
    filename: str
    event: str
    threshold: float
    panel: np.ndarray
    fs: np.ndarray
    ss: np.ndarray
    value: np.ndarray
    crystal: np.ndarray
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray  # noqa: E741
    distance: np.ndarray
    written: np.ndarray
    predicted_fs: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    predicted_ss: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    images: dict[str, tuple[np.ndarray, tuple[int, int]]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.value.shape[0])


# --------------------------------------------------------------------------------------------
# Loading a chunk and its frame
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    stream: str
    chunk: Chunk
    detector: Detector
    frame: Frame
    radii: tuple[float, float, float]
    gradient: bool
    keep_saturated: bool
    integration: str | None


def _load(
    stream: str | Path,
    chunk: int,
    *,
    int_radius: Sequence[float] | None,
    geometry: str | Path | None,
    data_root: Sequence[str | Path],
) -> _Context:
    stream = str(stream)
    if chunk < 0:
        raise StreamfilterError(f"--chunk {chunk}: chunks are numbered from 0")
    with read_stream(stream) as reader:
        header = reader.header
        found = None
        n = 0
        for c in reader:
            n += 1
            if c.index == chunk:
                found = c
                break
        if found is None:
            raise StreamfilterError(
                f"{stream}: no chunk {chunk} (the stream has {n} chunks, numbered from 0)"
            )
    radii = tuple(float(r) for r in int_radius) if int_radius else None
    cfg = config_for(
        header,
        stream,
        int_radius=radii,  # type: ignore[arg-type]
        geometry=None if geometry is None else str(geometry),
        data_roots=[str(d) for d in data_root],
    )
    try:
        detector = parse_geometry(cfg.geometry_text, str(geometry or "<stream geometry>"))
    except StreamfilterError:
        raise
    except Exception as e:
        raise StreamfilterError(f"geometry: {e}") from e
    if found.photon_energy_eV is None:
        raise StreamfilterError(f"{stream}, chunk {chunk}: no photon_energy_eV line")
    with FrameSource(detector, cfg.search_dirs) as source:
        frame = source.load(found.filename, found.event)
    return _Context(
        stream,
        found,
        detector,
        frame,
        cfg.int_radius,
        cfg.gradient,
        cfg.keep_saturated,
        header.integration_method,
    )


def _integrate_frame(ctx: _Context) -> list[CrystalResult]:
    return integrate_frame(
        "crystfel",
        ctx.frame,
        ctx.detector,
        ctx.chunk.crystals,
        ctx.chunk.photon_energy_eV,
        ctx.radii,
        gradient=ctx.gradient,
        keep_saturated=ctx.keep_saturated,
        bandwidth=ctx.chunk.beam_bandwidth,
    )


def _overlap(ctx: _Context, results: list[CrystalResult], panel: Panel) -> np.ndarray:
    """Overlap map of one panel from every crystal's predictions (panel-relative)."""
    fs = [r.fs[r.panel == panel.name] - panel.min_fs for r in results]
    ss = [r.ss[r.panel == panel.name] - panel.min_ss for r in results]
    return overlap_map(
        (panel.height, panel.width),
        np.concatenate(fs) if fs else np.zeros(0),
        np.concatenate(ss) if ss else np.zeros(0),
        ctx.radii[0],
    )


# --------------------------------------------------------------------------------------------
# One reflection
# --------------------------------------------------------------------------------------------


def _find(
    results: list[CrystalResult], chunk: Chunk, hkl: tuple[int, int, int], crystal: int | None
) -> tuple[int, int]:
    """(crystal, index into that crystal's predictions) of ``hkl``."""
    n = len(results)
    if n == 0:
        raise StreamfilterError(f"chunk {chunk.index} has no crystals")
    if crystal is not None and not 0 <= crystal < n:
        raise StreamfilterError(
            f"chunk {chunk.index} has {n} crystal(s); --crystal "
            f"{crystal} does not exist (crystals are numbered from 0)"
        )
    candidates = [crystal] if crystal is not None else list(range(n))
    hits = []
    for c in candidates:
        r = results[c]
        j = np.flatnonzero((r.h == hkl[0]) & (r.k == hkl[1]) & (r.l == hkl[2]))
        if j.size:
            hits.append((c, int(j[0])))
    if not hits:
        where = f"crystal {crystal}" if crystal is not None else "any crystal"
        raise StreamfilterError(
            f"chunk {chunk.index}: reflection {hkl[0]} {hkl[1]} {hkl[2]} is not predicted on a "
            f"panel for {where}"
        )
    if len(hits) > 1:
        written = [(c, j) for c, j in hits if results[c].written[j]]
        if len(written) == 1:
            return written[0]
        raise StreamfilterError(
            f"chunk {chunk.index}: reflection {hkl[0]} {hkl[1]} {hkl[2]} is predicted for "
            f"crystals {', '.join(str(c) for c, _ in hits)}; choose one with --crystal"
        )
    return hits[0]


def _stream_row(chunk: Chunk, crystal: int, hkl: tuple[int, int, int]) -> dict | None:
    t = chunk.crystals[crystal].reflections
    if t is None:
        return None
    j = np.flatnonzero((t.h == hkl[0]) & (t.k == hkl[1]) & (t.l == hkl[2]))
    if j.size == 0:
        return None
    i = int(j[0])
    row = {k: float(getattr(t, k)[i]) for k in ("I", "sigma", "peak", "background", "fs", "ss")}
    row["panel"] = None if t.panel is None else str(t.panel[i])
    return row


def _pixel_classes(
    rings: np.ndarray, bad: np.ndarray, on_panel: np.ndarray, overlap: np.ndarray
) -> np.ndarray:
    """:class:`PixelClass` map with integrate_rings' exclusion rules.

    Off panel > masked > neighbour's disc > ring class.  A peak pixel counts as a neighbour's
    when two discs cover it (CrystFEL leaves it out of the sum); any other pixel as soon as
    one disc covers it (CrystFEL leaves it out of the background).
    """
    is_pk = rings == PEAK
    neighbour = np.where(is_pk, overlap > 1, overlap > 0)
    out = rings.astype(np.int8).copy()
    out[neighbour] = PixelClass.NEIGHBOUR
    out[bad] = PixelClass.MASKED
    out[~on_panel] = PixelClass.OFF_PANEL
    return out


def inspect_reflection(
    stream: str | Path,
    chunk: int,
    hkl: Sequence[int],
    *,
    crystal: int | None = None,
    int_radius: Sequence[float] | None = None,
    geometry: str | Path | None = None,
    data_root: Sequence[str | Path] = (),
) -> InspectResult:
    """The box, pixel classes and integration numbers of one reflection.

    Parameters
    ----------
    stream : path
        A CrystFEL stream (format 2.3 with panel names, or any stream with a geometry).
    chunk : int
        0-based chunk number in the stream.
    hkl : (int, int, int)
        Miller indices as in the stream (the crystal's own setting).
    crystal : int, optional
        0-based crystal number in the chunk; needed only when several crystals predict
        ``hkl`` and the stream does not settle it.
    int_radius : (r1, r2, r3), optional
        Pixels; default: the stream's ``--int-radius``, else CrystFEL's 4,5,7.
    geometry : path, optional
        Geometry file; default: the one embedded in the stream.
    data_root : paths
        Extra directories to look for the frames in (after the stream's directory).

    Returns
    -------
    InspectResult

    Raises
    ------
    StreamfilterError
        No such chunk, crystal or predicted reflection; frames not found (the message lists
        every path tried); no geometry.
    """
    hkl_t = tuple(int(x) for x in hkl)
    if len(hkl_t) != 3:
        raise StreamfilterError(f"hkl must be three integers, not {hkl!r}")
    ctx = _load(stream, chunk, int_radius=int_radius, geometry=geometry, data_root=data_root)
    results = _integrate_frame(ctx)
    c, j = _find(results, ctx.chunk, hkl_t, crystal)  # type: ignore[arg-type]
    res = results[c]
    panel = ctx.detector.panel(str(res.panel[j]))
    fs_rel = res.fs[j] - panel.min_fs
    ss_rel = res.ss[j] - panel.min_ss
    cfs, css = central_pixels(np.array([fs_rel]), np.array([ss_rel]))
    half = int(ctx.radii[2])
    boxes = gather_boxes(
        ctx.frame.data[panel.name],
        ctx.frame.bad[panel.name],
        cfs,
        css,
        half,
        _overlap(ctx, results, panel),
    )
    sat_win = None
    if ctx.frame.saturation is not None and ctx.frame.saturation.get(panel.name) is not None:
        sat_win, _ = gather_window(
            np.asarray(ctx.frame.saturation[panel.name], np.float32), cfs, css, half, np.inf
        )
    g = panel.adu_per_photon_at(ctx.chunk.photon_energy_eV)
    rr = integrate_rings(
        boxes,
        ctx.radii,
        g,
        gradient=ctx.gradient,
        keep_saturated=ctx.keep_saturated,
        max_adu=panel.max_adu,
        saturation=sat_win,
    )
    rings = ring_classes(int(ctx.radii[0]), int(ctx.radii[1]), half, half)
    bad = boxes.bad[0] & boxes.on_panel[0]
    classes = _pixel_classes(rings, bad, boxes.on_panel[0], boxes.overlap[0])
    v = boxes.values[0].astype(np.float64)
    pk = classes == PixelClass.PEAK
    bg = classes == PixelClass.BACKGROUND
    n_bg = int(bg.sum())
    bg_mean = float(v[bg].mean()) if n_bg else math.nan
    bg_var = float(((v[bg] - bg_mean) ** 2).mean()) if n_bg else math.nan
    intensity = float(rr.I[0])
    notes = []
    method = ctx.integration or ""
    if "cen" in method.split("-") and "nocen" not in method:
        notes.append(
            f"the stream was integrated with --integration={method}: centring is "
            "not reproduced here; positions are the predictions"
        )
    if ctx.gradient:
        notes.append(
            "-grad: I subtracts a fitted background plane; 'background' is still "
            "the plain mean (as CrystFEL prints it)"
        )
    return InspectResult(
        stream=ctx.stream,
        chunk=ctx.chunk.index,
        filename=ctx.chunk.filename or "",
        event=ctx.frame.event,
        crystal=c,
        h=hkl_t[0],
        k=hkl_t[1],
        l=hkl_t[2],
        panel=panel.name,
        fs=float(res.fs[j]),
        ss=float(res.ss[j]),
        centre_fs=int(cfs[0]) + panel.min_fs,
        centre_ss=int(css[0]) + panel.min_ss,
        radii=ctx.radii,
        half_width=half,
        gradient=ctx.gradient,
        adu_per_photon=float(g),
        values=boxes.values[0],
        rings=rings,
        classes=classes,
        bad=bad,
        overlap=boxes.overlap[0],
        n_peak=int(pk.sum()),
        n_background=n_bg,
        peak_sum=float(v[pk].sum()),
        background_mean=bg_mean,
        background_var=bg_var,
        poisson_var=float(_poisson_variance(np.array([intensity]), g)[0])
        if math.isfinite(intensity)
        else math.nan,
        I=intensity,
        sigma=float(rr.sigma[0]),
        peak=float(rr.peak[0]),
        background=float(rr.background[0]),
        status=Status(int(rr.status[0])),
        stream_row=_stream_row(ctx.chunk, c, hkl_t),
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# Local maxima
# --------------------------------------------------------------------------------------------


def local_maxima(
    image: np.ndarray, bad: np.ndarray | None, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels above ``threshold`` that are >= each of their 8 neighbours.

    Bad pixels are never maxima and never count as neighbours; pixels beyond the panel edge
    do not count either.  A flat plateau gives one maximum per plateau pixel.

    Returns
    -------
    ss, fs : int arrays
        Panel-relative pixel indices, indexed like ``image[ss, fs]``.
    """
    v = np.asarray(image, dtype=np.float64)
    if bad is not None:
        v = np.where(bad, -np.inf, v)
    padded = np.pad(v, 1, constant_values=-np.inf)
    h, w = v.shape
    is_max = v > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= v >= padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    ss, fs = np.nonzero(is_max)
    return ss, fs


def inspect_maxima(
    stream: str | Path,
    chunk: int,
    threshold: float,
    *,
    int_radius: Sequence[float] | None = None,
    geometry: str | Path | None = None,
    data_root: Sequence[str | Path] = (),
) -> MaximaResult:
    """Local maxima above ``threshold`` (ADU) in a chunk's frame, nearest prediction each.

    Predictions are those of the CrystFEL-identical re-integration (every crystal of the
    chunk); see :func:`local_maxima` for what counts as a maximum.
    """
    ctx = _load(stream, chunk, int_radius=int_radius, geometry=geometry, data_root=data_root)
    results = _integrate_frame(ctx)
    cols: dict[str, list] = {
        k: []
        for k in ("panel", "fs", "ss", "value", "crystal", "h", "k", "l", "distance", "written")
    }
    for p in ctx.detector.panels:
        ss, fs = local_maxima(ctx.frame.data[p.name], ctx.frame.bad[p.name], threshold)
        n = ss.size
        if n == 0:
            continue
        pfs = fs + 0.5 + p.min_fs
        pss = ss + 0.5 + p.min_ss
        best = np.full(n, np.inf)
        which = np.full((n, 2), -1, dtype=np.int64)
        for c, r in enumerate(results):
            on = np.flatnonzero(r.panel == p.name)
            for start in range(0, n, 4096):
                sl = slice(start, start + 4096)
                if on.size == 0:
                    break
                d2 = (pfs[sl, None] - r.fs[on][None, :]) ** 2 + (
                    pss[sl, None] - r.ss[on][None, :]
                ) ** 2
                j = d2.argmin(axis=1)
                d = np.sqrt(d2[np.arange(j.size), j])
                closer = d < best[sl]
                best[sl] = np.where(closer, d, best[sl])
                which[sl][closer] = np.stack([np.full(j.size, c), on[j]], axis=1)[closer]
        cols["panel"].append(np.full(n, p.name, dtype=object))
        cols["fs"].append(pfs)
        cols["ss"].append(pss)
        cols["value"].append(ctx.frame.data[p.name][ss, fs].astype(np.float64))
        cols["crystal"].append(which[:, 0])
        cols["distance"].append(best)
        for key in ("h", "k", "l"):
            cols[key].append(
                np.array(
                    [getattr(results[c], key)[j] if c >= 0 else 0 for c, j in which], dtype=np.int64
                )
            )
        cols["written"].append(
            np.array(
                [bool(results[c].written[j]) if c >= 0 else False for c, j in which], dtype=bool
            )
        )
    arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    order = np.argsort(-arrays["value"], kind="stable")
    arrays = {k: v[order] for k, v in arrays.items()}
    return MaximaResult(
        stream=ctx.stream,
        chunk=ctx.chunk.index,
        filename=ctx.chunk.filename or "",
        event=ctx.frame.event,
        threshold=float(threshold),
        **arrays,
        predicted_fs=np.concatenate([r.fs for r in results] or [np.zeros(0)]),
        predicted_ss=np.concatenate([r.ss for r in results] or [np.zeros(0)]),
        images={
            p.name: (ctx.frame.data[p.name], (p.min_fs, p.min_ss)) for p in ctx.detector.panels
        },
    )


# --------------------------------------------------------------------------------------------
# Text output
# --------------------------------------------------------------------------------------------


def _grid(result: InspectResult, cell: Any, width: int) -> list[str]:
    head = " " * 7 + "".join(f"{x:>{width}d}" for x in result.box_fs)
    lines = [head]
    for q, ss in enumerate(result.box_ss):
        lines.append(
            f"{ss:>6d} " + "".join(f"{cell(q, p):>{width}}" for p in range(result.values.shape[1]))
        )
    return lines


def format_inspect(r: InspectResult) -> str:
    """Human-readable report of :func:`inspect_reflection` (what the CLI prints)."""
    rr = ",".join(f"{x:g}" for x in r.radii)
    out = [
        f"{r.stream}, chunk {r.chunk} ({r.filename} {r.event}), crystal {r.crystal}: "
        f"reflection {r.h} {r.k} {r.l} on panel {r.panel}",
        f"predicted at fs {r.fs:.3f}, ss {r.ss:.3f} (data-array coordinates; pixel i spans "
        f"[i, i+1)); central pixel fs {r.centre_fs}, ss {r.centre_ss}",
        f"int-radius {rr} ({'plane' if r.gradient else 'flat'} background); "
        f"gain {r.adu_per_photon:g} ADU/photon; box fs {r.box_fs[0]}..{r.box_fs[-1]}, "
        f"ss {r.box_ss[0]}..{r.box_ss[-1]}",
        "",
        "pixel classes: "
        + ", ".join(f"{SYMBOLS[c]} {c.name.lower().replace('_', ' ')}" for c in PixelClass),
    ]
    out += _grid(r, lambda q, p: SYMBOLS[PixelClass(int(r.classes[q, p]))], 4)
    counts = r.counts()
    out.append(
        "counts: "
        + ", ".join(
            f"{c.name.lower().replace('_', ' ')} {counts[c]}" for c in PixelClass if counts[c]
        )
    )
    out += ["", "pixel values (ADU):"]
    vmax = float(np.max(np.abs(r.values))) if r.values.size else 0.0
    width = max(6, len(f"{vmax:.0f}") + 2)
    out += _grid(r, lambda q, p: f"{r.values[q, p]:.0f}", width)
    out += ["", "integration:"]
    if r.status in (Status.OK, Status.SATURATED, Status.IMPLAUSIBLE):
        out += [
            f"  peak disc:  m = {r.n_peak} pixels, sum = {r.peak_sum:.2f} ADU",
            f"  background: n = {r.n_background} pixels, mean = {r.background_mean:.4f} ADU, "
            f"variance = {r.background_var:.4f} ADU^2 (population)",
        ]
        if r.gradient:
            out.append(f"  I = sum - plane under the peak = {r.I:.2f} ADU")
        else:
            out.append(
                f"  I = sum - m * mean = {r.peak_sum:.2f} - {r.n_peak} * "
                f"{r.background_mean:.4f} = {r.I:.2f} ADU"
            )
        out += [
            f"  sigma(I) = sqrt(poisson + m * variance) = sqrt({r.poisson_var:.2f} + "
            f"{r.n_peak * r.background_var:.2f}) = {r.sigma:.2f} ADU   (I/sigma "
            f"{r.I / r.sigma:.2f})"
            if r.sigma > 0
            else f"  sigma(I) = {r.sigma:.2f} ADU",
            f"  peak (highest used pixel) = {r.peak:.2f} ADU, background = {r.background:.2f} ADU",
        ]
    else:
        out.append(f"  m = {r.n_peak} peak and n = {r.n_background} background pixels usable")
    out.append(f"  status: {STATUS_TEXT[r.status]}")
    row = r.stream_row
    if row is None:
        out.append("  the stream has no row for this reflection")
    else:
        printed = (
            f"{row['I']:.2f} {row['sigma']:.2f} {row['peak']:.2f} "
            f"{row['background']:.2f} at {row['fs']:.1f} {row['ss']:.1f}"
        )
        mine = f"{r.I:.2f} {r.sigma:.2f} {r.peak:.2f} {r.background:.2f} at {r.fs:.1f} {r.ss:.1f}"
        same = printed == mine
        out.append(
            f"  stream row: I sigma peak background = {printed} "
            + ("(identical)" if same else f"(re-integration gives {mine})")
        )
    out += [f"note: {n}" for n in r.notes]
    return "\n".join(out)


def format_maxima(m: MaximaResult, limit: int | None = None) -> str:
    """Table of :func:`inspect_maxima` (brightest first)."""
    out = [
        f"{m.stream}, chunk {m.chunk} ({m.filename} {m.event}): {len(m)} local maxima "
        f"above {m.threshold:g} ADU",
        f"{'panel':>6} {'fs':>8} {'ss':>8} {'value':>10}  {'crystal':>7} {'h':>4} {'k':>4} "
        f"{'l':>4} {'dist/px':>8} in stream",
    ]
    n = len(m) if limit is None else min(limit, len(m))
    for i in range(n):
        if m.crystal[i] < 0:
            tail = f"{'-':>7} {'':>4} {'':>4} {'':>4} {'-':>8} -"
        else:
            tail = (
                f"{m.crystal[i]:>7d} {m.h[i]:>4d} {m.k[i]:>4d} {m.l[i]:>4d} "
                f"{m.distance[i]:>8.2f} {'yes' if m.written[i] else 'no'}"
            )
        out.append(f"{m.panel[i]:>6} {m.fs[i]:>8.1f} {m.ss[i]:>8.1f} {m.value[i]:>10.1f}  " + tail)
    if n < len(m):
        out.append(f"... {len(m) - n} more")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise StreamfilterError(
            "--png needs matplotlib: pip install 'streamfilter[plot]'"
        ) from None
    fig = Figure(figsize=(6.4, 5.6), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_inspect(result: InspectResult, path: str | Path) -> None:
    """Draw the box (data-array coordinates) with the three rings and the pixel classes.

    The rings are circles of radius r1, r2, r3 around the central pixel's centre (the ring
    classes use integer distances from it); masked pixels are crossed, neighbours' disc
    pixels hatched, the predicted position is a ``+``.
    """
    from matplotlib.patches import Circle, Rectangle

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    r = result
    w = r.half_width
    x0, y0 = r.centre_fs - w, r.centre_ss - w
    n = 2 * w + 1
    shown = np.where(r.classes == PixelClass.OFF_PANEL, np.nan, r.values)
    im = ax.imshow(
        shown,
        cmap="viridis",
        origin="upper",
        interpolation="nearest",
        extent=(x0, x0 + n, y0 + n, y0),
    )
    fig.colorbar(im, ax=ax, label="ADU")
    cx, cy = r.centre_fs + 0.5, r.centre_ss + 0.5
    for radius, style in zip(r.radii, ("-", "--", "--"), strict=True):
        ax.add_patch(Circle((cx, cy), radius, fill=False, color="white", ls=style, lw=1.2))
    for q in range(n):
        for p in range(n):
            c = PixelClass(int(r.classes[q, p]))
            if c == PixelClass.MASKED:
                ax.plot([x0 + p + 0.5], [y0 + q + 0.5], "rx", ms=8)
            elif c == PixelClass.NEIGHBOUR:
                ax.add_patch(
                    Rectangle(
                        (x0 + p, y0 + q), 1, 1, fill=False, hatch="///", edgecolor="orange", lw=0
                    )
                )
    ax.plot([r.fs], [r.ss], "r+", ms=12, mew=2)
    ax.set_xlabel("fs (data array, px)")
    ax.set_ylabel("ss (data array, px)")
    ax.set_title(
        f"chunk {r.chunk} crystal {r.crystal}: {r.h} {r.k} {r.l} on {r.panel}\n"
        f"I = {r.I:.1f}, sigma = {r.sigma:.1f} ADU ({r.status.name})",
        fontsize=10,
    )
    fig.savefig(str(path))


def plot_maxima(m: MaximaResult, path: str | Path) -> None:
    """Draw the frame's panels (data-array coordinates) with the maxima circled in red and
    the predicted positions as small white dots."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    values = [img[np.isfinite(img)] for img, _ in m.images.values()]
    pooled = np.concatenate(values) if values else np.zeros(1)
    vmax = max(float(np.percentile(pooled, 99.5)), 1.0) if pooled.size else 1.0
    im = None
    for img, (fs0, ss0) in m.images.values():
        h, w = img.shape
        im = ax.imshow(
            img,
            cmap="gray_r",
            vmin=0,
            vmax=vmax,
            origin="upper",
            interpolation="nearest",
            extent=(fs0, fs0 + w, ss0 + h, ss0),
        )
    if im is not None:
        fig.colorbar(im, ax=ax, label="ADU")
    ax.plot(m.predicted_fs, m.predicted_ss, ".", color="tab:blue", ms=2)
    ax.scatter(m.fs, m.ss, s=40, facecolors="none", edgecolors="red", lw=0.8)
    ax.set_xlabel("fs (data array, px)")
    ax.set_ylabel("ss (data array, px)")
    ax.set_title(
        f"chunk {m.chunk}: {len(m)} maxima above {m.threshold:g} ADU (red), predictions (blue)",
        fontsize=9,
    )
    fig.savefig(str(path))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _ints(text: str, n: int, what: str) -> tuple[int, ...]:
    parts = text.replace(" ", ",").split(",")
    parts = [x for x in parts if x]
    try:
        vals = tuple(int(x) for x in parts)
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise argparse.ArgumentTypeError(
            f"{what}: expected {n} comma-separated integers, got {text!r}"
        )
    return vals


def _hkl(text: str) -> tuple[int, ...]:
    return _ints(text, 3, "--hkl")


def _radii(text: str) -> tuple[float, float, float]:
    try:
        r = tuple(float(x) for x in text.split(","))
    except ValueError:
        r = ()
    if len(r) != 3 or not (0 < r[0] <= r[1] <= r[2]):
        raise argparse.ArgumentTypeError(
            f"--int-radius {text!r}: expected R1,R2,R3 with 0 < R1 <= R2 <= R3"
        )
    return r  # type: ignore[return-value]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``streamfilter inspect``."""
    p = subparsers.add_parser(
        "inspect",
        help="show the pixels and numbers behind one reflection",
        description="Print the integration box around one reflection: each pixel's class "
        "(peak disc, ignored, background annulus, masked, a neighbour's peak, off panel), its "
        "value, and the numbers that give I and sigma(I), re-computed exactly as the "
        "CrystFEL-identical rings integration does. With --threshold, list the local maxima "
        "of the frame instead, each with its nearest predicted reflection.",
        epilog="Negative indices need '=': --hkl=-3,2,1.",
    )
    p.add_argument("stream", metavar="STREAM", help="stream file")
    p.add_argument(
        "--chunk",
        type=int,
        required=True,
        metavar="N",
        help="chunk number, counted from 0 in file order",
    )
    p.add_argument(
        "--crystal",
        type=int,
        metavar="I",
        help="crystal number in the chunk, from 0 (needed only if ambiguous)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--hkl", type=_hkl, metavar="H,K,L", help="the reflection")
    what.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="list local maxima above T ADU with their nearest prediction",
    )
    p.add_argument(
        "--int-radius",
        type=_radii,
        metavar="R1,R2,R3",
        help="ring radii in pixels (default: the stream's own, else 4,5,7)",
    )
    p.add_argument("--png", metavar="FILE", help="also draw the box (or the maxima) to a PNG")
    add_frame_arguments(p)
    p.add_argument(
        "--limit",
        type=int,
        default=50,
        metavar="N",
        help="with --threshold, print at most N maxima (default 50; 0 = all)",
    )
    p.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """Run ``streamfilter inspect`` from parsed arguments; returns the exit status."""
    common = {"int_radius": args.int_radius, "geometry": args.geometry, "data_root": args.data_root}
    if args.threshold is not None:
        m = inspect_maxima(args.stream, args.chunk, args.threshold, **common)
        print(format_maxima(m, None if args.limit == 0 else args.limit))
        if args.png:
            plot_maxima(m, args.png)
            print(f"wrote {args.png}", file=sys.stderr)
        return 0
    r = inspect_reflection(args.stream, args.chunk, args.hkl, crystal=args.crystal, **common)
    print(format_inspect(r))
    if args.png:
        plot_inspect(r, args.png)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0
