"""``streamfilter inspect``: look at the pixels behind one reflection, or at a frame's maxima.

:func:`inspect_reflection` re-does, for one reflection of one chunk, exactly what the
CrystFEL-identical rings integration does (re-prediction of every crystal of the frame, the
overlap mask of all predicted peak discs, the box, the ring classes, the bad-pixel and edge
rules) with the same code (:mod:`streamfilter.integrate`), and returns every pixel's value
and class together with the numbers that make up I and sigma(I).  :func:`inspect_maxima`
(in :mod:`streamfilter.analysis.maxima`) lists the local maxima of a frame above a threshold
with the nearest predicted reflection.

Conventions: positions are **data-array** coordinates as printed in streams (pixel i spans
[i, i + 1), centre i + 0.5; fs = fast scan = column, ss = slow scan = row); boxes are indexed
``[ss, fs]``; values are raw ADU.  Chunks are numbered from 0 in file order (the number
streamfilter's error messages use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StreamfilterError
from ..frames import Frame
from ..geometry import Detector, Panel
from ..integrate import CrystalResult, Status
from ..integrate.boxes import (
    PEAK,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
    ring_classes,
)
from ..integrate.rings import integrate_rings
from ..integrate.rings import poisson_variance as _poisson_variance
from ..pipeline import config_for, integrate_frame
from ..stream import Chunk, read_stream

__all__ = [
    "PixelClass",
    "InspectResult",
    "inspect_reflection",
    "ChunkContext",
    "chunk_of_event",
    "load_chunk",
    "integrate_chunk",
    "format_inspect",
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
    Status.BACKGROUND_UNDETERMINED: "not integrated: background model not determined here",
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


# --------------------------------------------------------------------------------------------
# Loading a chunk and its frame
# --------------------------------------------------------------------------------------------


@dataclass
class ChunkContext:
    """A chunk, its frame and detector, and the integration settings that apply to it."""

    stream: str
    chunk: Chunk
    detector: Detector
    frame: Frame
    radii: tuple[float, float, float]
    gradient: bool
    keep_saturated: bool
    integration: str | None
    run: Any = None  # the pipeline's Integration for the method asked for


def chunk_of_event(stream: str | Path, event: str, image: str | None = None) -> int:
    """The 0-based number of the chunk whose ``Event`` is ``event`` (``//7``; ``7`` is
    read as ``//7``), and whose ``Image filename`` is ``image`` (or ends with
    ``/image``) when given.

    Raises
    ------
    StreamfilterError
        No such chunk, or several (in different files: give ``image``).
    """
    want = event.strip()
    if want.lstrip("-").isdigit():
        want = "//" + want
    hits: list[tuple[int, str]] = []
    with read_stream(str(stream)) as reader:
        for c in reader:
            name = c.filename or ""
            if (c.event or "").strip() != want:
                continue
            if image is None or name == image or name.endswith("/" + image.lstrip("/")):
                hits.append((c.index, name))
    which = f"Event {want}" + ("" if image is None else f" in {image}")
    if not hits:
        raise StreamfilterError(f"{stream}: no chunk has {which}")
    if len(hits) > 1:
        listed = ", ".join(f"chunk {i} ({n})" for i, n in hits[:5])
        raise StreamfilterError(
            f"{stream}: {len(hits)} chunks have {which}: {listed}; choose one with --image "
            "FILE or --chunk N"
        )
    return hits[0][0]


def load_chunk(
    stream: str | Path,
    chunk: int,
    *,
    int_radius: Sequence[float] | None,
    geometry: str | Path | None,
    data_root: Sequence[str | Path],
    method: str = "crystfel",
) -> ChunkContext:
    """Read chunk number ``chunk`` of a stream and load its frame (see
    :func:`inspect_reflection` for the parameters; ``method`` sets ``ChunkContext.run``, the
    integration ``reintegrate --method`` would use)."""
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
        method=method,
    )
    if found.photon_energy_eV is None:
        raise StreamfilterError(f"{stream}, chunk {chunk}: no photon_energy_eV line")
    with cfg.frame_source() as source:
        detector = source.detector
        frame = source.load(found.filename, found.event)
    return ChunkContext(
        stream,
        found,
        detector,
        frame,
        cfg.int_radius,
        cfg.gradient,
        cfg.keep_saturated,
        header.integration_method,
        cfg.integration(),
    )


def integrate_chunk(ctx: ChunkContext) -> list[CrystalResult]:
    """The CrystFEL-identical rings integration of every crystal of the chunk."""
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


def _overlap(ctx: ChunkContext, results: list[CrystalResult], panel: Panel) -> np.ndarray:
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


def find_reflection(
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
    ctx = load_chunk(stream, chunk, int_radius=int_radius, geometry=geometry, data_root=data_root)
    results = integrate_chunk(ctx)
    c, j = find_reflection(results, ctx.chunk, hkl_t, crystal)  # type: ignore[arg-type]
    res = results[c]
    panel = ctx.detector.panel(str(res.panel[j]))
    box = _integrate_box(ctx, results, panel, res.fs[j], res.ss[j])
    return _inspect_result(ctx, c, hkl_t, panel, res.fs[j], res.ss[j], box)  # type: ignore[arg-type]


@dataclass
class _Box:
    """One reflection's box and its rings integration (panel-relative central pixel)."""

    cfs: np.ndarray
    css: np.ndarray
    half: int
    boxes: Any
    gain: float
    rings: Any


def _integrate_box(
    ctx: ChunkContext, results: list[CrystalResult], panel: Panel, fs: Any, ss: Any
) -> _Box:
    """Gather the box around (fs, ss) and integrate it as the whole-frame integration does."""
    fs_rel = fs - panel.min_fs
    ss_rel = ss - panel.min_ss
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
    return _Box(cfs, css, half, boxes, g, rr)


def _notes(ctx: ChunkContext) -> list[str]:
    """What the re-computation does not reproduce or prints differently."""
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
    return notes


def _inspect_result(
    ctx: ChunkContext,
    c: int,
    hkl_t: tuple[int, int, int],
    panel: Panel,
    fs: Any,
    ss: Any,
    box: _Box,
) -> InspectResult:
    """Pixel classes and the numbers behind I and sigma(I) of an integrated box."""
    boxes, rr, g, half = box.boxes, box.rings, box.gain, box.half
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
        fs=float(fs),
        ss=float(ss),
        centre_fs=int(box.cfs[0]) + panel.min_fs,
        centre_ss=int(box.css[0]) + panel.min_ss,
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
        notes=_notes(ctx),
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
