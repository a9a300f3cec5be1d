"""``streamfilter inspect --method robust|profile``: one reflection as those methods see it.

:func:`inspect_method` integrates the chunk's frame exactly as ``reintegrate --method robust``
or ``--method profile`` does (same prediction, options from the stream's flags, same code),
and returns the reflection's box with what the method used: the peak-disc pixels it sums,
the frame-wide background model under them (ADU per pixel, with its standard deviation) and,
for ``profile``, the reference profile fitted to the reflection (normalised to 1 over the
disc) and which estimator gave the written I (the fit, or the robust sum kept because its
sigma was smaller or the frame had too few strong spots to learn a profile).

Conventions as in :mod:`streamfilter.analysis.inspect`: data-array fs/ss (pixel i spans
[i, i + 1)), boxes ``[ss, fs]``, values in ADU, chunks numbered from 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StreamfilterError
from ..integrate import FoundPeaks, Status
from ..pipeline.frame import FrameIntegrator
from .inspect import STATUS_TEXT, ChunkContext, find_reflection, load_chunk

__all__ = ["MethodInspectResult", "inspect_method", "format_method_inspect"]

#: methods :func:`inspect_method` shows (``crystfel`` is :func:`~.inspect.inspect_reflection`)
METHODS = ("robust", "profile")


@dataclass
class MethodInspectResult:
    """One reflection's box under ``--method robust`` or ``profile``.

    Attributes
    ----------
    stream, filename, event : str
    chunk, crystal, h, k, l : int
    method : str
        ``robust`` or ``profile``.
    panel : str
    fs, ss : float
        Predicted position (data-array coordinates).
    centre_fs, centre_ss : int
        Data-array index of the box's central pixel; box pixel ``[q, p]`` is array element
        ``[centre_ss - W + q, centre_fs - W + p]``.
    half_width : int
        W.
    radii : (float, float, float)
    values : float32 (B, B)
        Raw pixel values (ADU), 0 off the panel.
    bad : bool (B, B)
        Unusable pixels (mask, bad region, off panel).
    neighbour : bool (B, B)
        Pixels inside another predicted reflection's peak disc.
    disc : bool (B, B)
        The peak-disc pixels the sum uses (and the profile fit weights).
    background : float64 (B, B)
        The frame-wide background model (ADU per pixel; NaN where it has none).
    background_sd : float64 (B, B)
        Standard deviation of the model value itself (ADU).
    profile : float64 (B, B) or None
        ``profile`` only: the reflection's reference profile, normalised to 1 over ``disc``
        (None when the frame has too few strong spots for a profile).
    sum_I : float
        Sum over ``disc`` of value minus model (ADU): the robust estimate before its rules.
    fit_I : float
        ``profile`` only: the profile-fitted amplitude (ADU; NaN without a profile).
    I, sigma, peak, background_value : float
        What the method writes for this reflection (NaN when not integrated).
    estimator : str
        What gave ``I``: ``sum`` or ``profile`` ("" when not integrated).
    status : Status
    gain : float
        ADU per photon.
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
    method: str
    panel: str
    fs: float
    ss: float
    centre_fs: int
    centre_ss: int
    half_width: int
    radii: tuple[float, float, float]
    values: np.ndarray
    bad: np.ndarray
    neighbour: np.ndarray
    disc: np.ndarray
    background: np.ndarray
    background_sd: np.ndarray
    profile: np.ndarray | None
    sum_I: float  # noqa: N815
    fit_I: float  # noqa: N815
    I: float  # noqa: E741
    sigma: float
    peak: float
    background_value: float
    estimator: str
    status: Status
    gain: float
    notes: list[str] = field(default_factory=list)

    @property
    def box_fs(self) -> np.ndarray:
        """Data-array fs index of each box column."""
        return np.arange(self.centre_fs - self.half_width, self.centre_fs + self.half_width + 1)

    @property
    def box_ss(self) -> np.ndarray:
        """Data-array ss index of each box row."""
        return np.arange(self.centre_ss - self.half_width, self.centre_ss + self.half_width + 1)


def inspect_method(
    stream: str | Path,
    chunk: int,
    hkl: Sequence[int],
    *,
    method: str,
    crystal: int | None = None,
    int_radius: Sequence[float] | None = None,
    geometry: str | Path | None = None,
    data_root: Sequence[str | Path] = (),
) -> MethodInspectResult:
    """The box of one reflection under ``method`` (``robust`` or ``profile``).

    Parameters as for :func:`streamfilter.analysis.inspect.inspect_reflection`, plus
    ``method``.  The written numbers (``I``, ``sigma``, ``estimator``, ``status``) are the
    ones ``reintegrate --method METHOD`` writes for this reflection.

    Raises
    ------
    StreamfilterError
        Unknown method, no such chunk, crystal or predicted reflection, frames not found.
    """
    if method not in METHODS:
        raise StreamfilterError(f"--method {method}: choose crystfel, robust or profile")
    hkl_t = tuple(int(x) for x in hkl)
    ctx = load_chunk(stream, chunk, int_radius=int_radius, geometry=geometry,
                     data_root=data_root, method=method)  # fmt: skip
    run = FrameIntegrator(ctx.detector, ctx.run)
    energy = float(ctx.chunk.photon_energy_eV)
    preds = run.predict(ctx.frame, ctx.chunk.crystals, energy, ctx.chunk.beam_bandwidth)
    peaks = ctx.chunk.peaks
    results = run.integrate(ctx.frame, preds, energy, peaks)
    c, j = find_reflection(results, ctx.chunk, hkl_t, crystal)  # type: ignore[arg-type]
    found = FoundPeaks(peaks.fs, peaks.ss, peaks.panel) if peaks is not None and len(peaks) \
        else None  # fmt: skip
    inner = _method_internals(ctx, run, preds, found, energy, c, j)
    res = results[c]
    est = "" if res.estimator is None else str(res.estimator[j])
    if not est and math.isfinite(float(res.I[j])):
        est = "sum"
    return MethodInspectResult(
        stream=str(stream), chunk=ctx.chunk.index, filename=ctx.chunk.filename or "",
        event=ctx.frame.event, crystal=c, h=hkl_t[0], k=hkl_t[1], l=hkl_t[2], method=method,
        panel=str(res.panel[j]), fs=float(res.fs[j]), ss=float(res.ss[j]),
        radii=ctx.radii, I=float(res.I[j]), sigma=float(res.sigma[j]),
        peak=float(res.peak[j]), background_value=float(res.background[j]), estimator=est,
        status=Status(int(res.status[j])), **inner,
    )  # fmt: skip


def _locate(work: list[Any], c: int, j: int) -> tuple[int, int]:
    """(panel work index, box index) of crystal c's prediction j."""
    for k, pw in enumerate(work):
        start = 0
        for ci, rows, _, _ in pw.parts:
            if ci == c:
                hit = np.flatnonzero(rows == j)
                if hit.size:
                    return k, start + int(hit[0])
            start += len(rows)
    raise StreamfilterError(f"reflection {j} of crystal {c} is on no panel")


def _method_internals(
    ctx: ChunkContext, run: FrameIntegrator, preds: list, found: FoundPeaks | None,
    energy: float, c: int, j: int,
) -> dict:  # fmt: skip
    """The box, disc, background model and (profile) reference profile of one reflection,
    recomputed through the methods' own steps."""
    from ..integrate import profile as prof_mod
    from ..integrate.robust import integrate_panels

    options = ctx.run.options
    method = ctx.run.method
    robust_opts = options.robust if method == "profile" else options
    work = integrate_panels(ctx.frame, preds, found, energy, ctx.radii, run.layout, robust_opts)
    k, i = _locate(work, c, j)
    grid = run.layout.polar_grid(getattr(ctx.frame, "header", None))
    r1 = int(ctx.radii[0])
    margin = options.fit_margin if method == "profile" else 0
    arrays = [prof_mod._panel_arrays(pw, r1, grid, energy, margin) for pw in work]
    pa, pw = arrays[k], work[k]
    boxes = pw.boxes
    profile, fit_i, notes = None, math.nan, []
    if method == "profile":
        assigned = prof_mod._assign_profiles(arrays, options)
        if assigned is None:
            notes.append("the frame has too few strong spots to learn a profile: robust's sums")
        else:
            shape, fit_ints, _, _ = prof_mod._fit_panel(pa, assigned[k], options)
            profile, fit_i = shape[i], float(fit_ints[i])
    bg = pw.background
    nan_box = np.full(boxes.values.shape[1:], np.nan)
    disc = pa.disc[i]
    return {
        "centre_fs": int(boxes.centre_fs[i]) + pw.panel.min_fs,
        "centre_ss": int(boxes.centre_ss[i]) + pw.panel.min_ss,
        "half_width": boxes.half_width,
        "values": boxes.values[i],
        "bad": boxes.bad[i],
        "neighbour": np.where(disc | (boxes.overlap[i] == 0), False, True) & ~boxes.bad[i],
        "disc": disc,
        "background": nan_box if bg is None else bg.model[i],
        "background_sd": nan_box if bg is None else np.sqrt(np.maximum(bg.model_var[i], 0)),
        "profile": profile,
        "sum_I": float(np.where(disc, pa.y[i], 0.0).sum()),
        "fit_I": fit_i,
        "gain": pa.gain,
        "notes": notes,
    }


def _grid(r: MethodInspectResult, cell: Any, width: int) -> list[str]:
    lines = [" " * 7 + "".join(f"{x:>{width}d}" for x in r.box_fs)]
    for q, ss in enumerate(r.box_ss):
        lines.append(f"{ss:>6d} " + "".join(f"{cell(q, p):>{width}}"
                                            for p in range(r.values.shape[1])))  # fmt: skip
    return lines


def format_method_inspect(r: MethodInspectResult) -> str:
    """Human-readable report of :func:`inspect_method` (what the CLI prints)."""
    out = [
        f"{r.stream}, chunk {r.chunk} ({r.filename} {r.event}), crystal {r.crystal}: "
        f"reflection {r.h} {r.k} {r.l} on panel {r.panel}, --method {r.method}",
        f"predicted at fs {r.fs:.3f}, ss {r.ss:.3f} (data-array coordinates; pixel i spans "
        f"[i, i+1)); gain {r.gain:g} ADU/photon",
        "",
        "pixels (ADU); * = peak disc summed/fitted, x = bad, n = a neighbour's disc:",
    ]
    width = max(7, len(f"{float(np.max(np.abs(r.values))):.0f}") + 3)

    def mark(q: int, p: int) -> str:
        tag = "*" if r.disc[q, p] else "x" if r.bad[q, p] else "n" if r.neighbour[q, p] else ""
        return f"{r.values[q, p]:.0f}{tag}"

    out += _grid(r, mark, width)
    out += ["", "background model (ADU per pixel, frame-wide radial model):"]
    out += _grid(r, lambda q, p: "-" if not np.isfinite(r.background[q, p])
                 else f"{r.background[q, p]:.1f}", width)  # fmt: skip
    n_disc = int(r.disc.sum())
    bg_sum = float(np.nansum(np.where(r.disc, r.background, 0.0)))
    out += ["", "integration:",
            f"  sum over the {n_disc} disc pixels of (value - model) = "
            f"{r.sum_I + bg_sum:.2f} - {bg_sum:.2f} = {r.sum_I:.2f} ADU"]  # fmt: skip
    if r.profile is not None:
        out += ["", "reference profile (per mille of the disc total):"]
        out += _grid(r, lambda q, p: f"{1000 * r.profile[q, p]:.0f}" if r.disc[q, p] else ".",
                     width)  # fmt: skip
        out.append(f"  profile fit: I = sum w p (x - b) / sum w p^2 = {r.fit_I:.2f} ADU")
    out.append(f"  written: I = {r.I:.2f}, sigma = {r.sigma:.2f} ADU from the "
               f"{r.estimator or '-'} estimator")  # fmt: skip
    out.append(f"  status: {STATUS_TEXT[r.status]}")
    out += [f"note: {n}" for n in r.notes]
    return "\n".join(out)
