"""Does the geometry (and do the frames) match the stream?  Measures, a run verdict, a check.

A stream carries two kinds of evidence that need no truth: the **found peaks** (peak search on
the very frame the chunk names) and, for each crystal, the **printed predicted positions** of
its reflections (indexamajig's own prediction, with the geometry it used).  Three measures
compare them with what this package computes from the geometry it was given and the frame it
read:

* :func:`peak_offsets` -- each found peak to the nearest re-predicted reflection on the same
  panel (pixels; peaks with none within ``match_radius`` are unmatched).  The same figure
  taken against the stream's printed positions is the yardstick: the geometry the stream was
  indexed with fits its peaks that well, so a geometry that fits them clearly worse does not
  belong to this stream, and a refined one (as close or closer) passes;
* :func:`row_offsets` -- each printed row to its re-predicted position (same h, k, l): about
  0.04 px (the 0.1 px print rounding) when the geometry is the stream's own;
* :func:`bright_scores` -- whether the found peaks sit on bright pixels of the frame that was
  read: the brightest pixel of the 3 x 3 block at the peak against the median of a square
  annulus around it (Chebyshev distance 4..6 px), in robust standard deviations (1.4826 x
  MAD, at least the Poisson noise and one photon), compared with the score at random
  positions 8-20 px away.  A frame of the right shape but the wrong event or file has its
  "peaks" on background, as bright as random positions.

Measured on ref-small (30 frames, CrystFEL 0.12.0, 4865 peaks; synthetic data in brackets):
the stream's own geometry puts the predictions 0.26 px (0.12) from the found peaks, as do the
printed positions, 0.04 px (0.04) from the printed positions, and 100 % (99 %) of the peaks
on bright pixels against 6 % (8 %) of random positions.  ``corner_x`` moved by 0.05 px:
0.29 px (0.13); by 1 px: 1.14 px (1.01); by 3 px: 3.12 px (3.00); ``clen`` +1 %: 1.45 px,
+2 %: 2.85 px (2.53).  Every chunk pointed at the next event (or at frames of another seed):
7 % against 7 % (6 % against 6 %).  AGIPD and CSPAD layouts (ref-detectors): 0.11 px, 100 %
against 4 %; with the events shifted 3-5 % against 3-4 %.

:class:`RunCheck` pools the figures of the first K frames (:attr:`Thresholds.sample`) and
gives a :class:`CheckResult`; :func:`check_stream` also opens every frame a stream names
(``streamfilter check``).  Positions: data-array coordinates for peaks and printed rows,
panel-relative for predictions and panel arrays, pixel ``i`` spanning ``[i, i+1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CheckResult",
    "FrameFigures",
    "RunCheck",
    "StreamCheck",
    "Thresholds",
    "bright_scores",
    "check_stream",
    "frame_figures",
    "peak_offsets",
    "predictor",
    "random_positions",
    "row_offsets",
]

#: Square annulus of the local background (Chebyshev distance from the peak pixel, px).
RING_INNER, RING_OUTER = 4, 6
#: Fewest usable annulus pixels for a background estimate.
MIN_RING_PIXELS = 12


@dataclass(frozen=True)
class Thresholds:
    """What the verdict of :class:`RunCheck` accepts (pixels, fractions in [0, 1]).

    ``match_radius``: a found peak is matched to the nearest prediction on its panel within
    this.  The geometry fails when the median distance of the matched peaks exceeds the same
    figure for the stream's printed positions by more than ``offset_margin`` (or exceeds
    ``offset_limit`` when the stream has no printed positions), or when fewer than
    ``matched_ratio`` times as many peaks as the printed positions match are matched.
    A peak is on a bright pixel when its 3 x 3 maximum exceeds the annulus median by
    ``bright_sigma`` robust standard deviations; the frames fail when the fraction of peaks
    on bright pixels exceeds that of random positions by less than ``bright_contrast``, or
    when more than ``wrong_frames`` of the frames with at least ``min_peaks`` measured
    peaks do so on their own.  ``sample``: K, the frames with found peaks the verdict is
    taken on (:attr:`RunCheck.done`).
    """

    match_radius: float = 5.0
    offset_margin: float = 0.3
    offset_limit: float = 0.75
    matched_ratio: float = 0.5
    bright_sigma: float = 3.0
    bright_contrast: float = 0.3
    wrong_frames: float = 0.05
    min_peaks: int = 8
    sample: int = 50


# --------------------------------------------------------------------------------------------
# Measures (pure functions)
# --------------------------------------------------------------------------------------------

def peak_offsets(peak_fs: np.ndarray, peak_ss: np.ndarray, peak_panel: np.ndarray,
                 pred_fs: np.ndarray, pred_ss: np.ndarray, pred_panel: np.ndarray,
                 match_radius: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each found peak to the nearest prediction on the same panel.

    Parameters
    ----------
    peak_fs, peak_ss, pred_fs, pred_ss : numpy.ndarray
        Positions in one coordinate system (pixels), e.g. data-array coordinates.
    peak_panel, pred_panel : numpy.ndarray
        Panel of each (any comparable labels: indices or names).
    match_radius : float
        Farther predictions do not count (pixels).

    Returns
    -------
    distance : numpy.ndarray
        float64 per peak (pixels), ``inf`` where no prediction lies within ``match_radius``.
    dfs, dss : numpy.ndarray
        Peak minus nearest prediction along fs and ss (pixels; NaN where unmatched).
    """
    n = len(peak_fs)
    distance, dfs, dss = np.full(n, np.inf), np.full(n, np.nan), np.full(n, np.nan)
    peak_fs, peak_ss = np.asarray(peak_fs, float), np.asarray(peak_ss, float)
    pred_fs, pred_ss = np.asarray(pred_fs, float), np.asarray(pred_ss, float)
    peak_panel, pred_panel = np.asarray(peak_panel), np.asarray(pred_panel)
    for panel in np.unique(peak_panel):
        on = np.flatnonzero(peak_panel == panel)
        px, py = pred_fs[pred_panel == panel], pred_ss[pred_panel == panel]
        if len(px) == 0:
            continue
        for start in range(0, len(on), 512):  # bounded memory: 512 peaks at a time
            block = on[start:start + 512]
            ex = peak_fs[block, None] - px[None, :]
            ey = peak_ss[block, None] - py[None, :]
            d2 = ex * ex + ey * ey
            j = np.argmin(d2, axis=1)
            rows = np.arange(len(block))
            d = np.sqrt(d2[rows, j])
            ok = d <= match_radius
            distance[block[ok]] = d[ok]
            dfs[block[ok]] = ex[rows, j][ok]
            dss[block[ok]] = ey[rows, j][ok]
    return distance, dfs, dss


def _hkl_key(h: Any, k: Any, l: Any) -> np.ndarray:  # noqa: E741
    h, k, l = (np.asarray(a, dtype=np.int64) + 4096 for a in (h, k, l))  # noqa: E741
    return (h * 8192 + k) * 8192 + l


def row_offsets(table: Any, prediction: Any, layout: Any) -> np.ndarray:
    """Each printed row of a crystal to its re-predicted position (same h, k, l).

    Parameters
    ----------
    table : streamfilter.stream.ReflectionTable
        The crystal's rows (data-array fs, ss).
    prediction : streamfilter.integrate.CrystalPredictions
        The crystal's re-predicted reflections (panel-relative).
    layout : streamfilter.integrate.DetectorLayout
        ``min_fs``, ``min_ss`` per panel.

    Returns
    -------
    numpy.ndarray
        Distances in pixels, one per row that was re-predicted (rows whose reflection the
        geometry does not predict are left out).
    """
    if table is None or len(table) == 0 or len(prediction) == 0:
        return np.zeros(0)
    keys = _hkl_key(prediction.h, prediction.k, prediction.l)
    order = np.argsort(keys, kind="stable")
    row_keys = _hkl_key(table.h, table.k, table.l)
    at = np.clip(np.searchsorted(keys[order], row_keys), 0, len(keys) - 1)
    hit = keys[order][at] == row_keys
    j = order[at[hit]]
    fs = prediction.fs[j] + layout.min_fs[prediction.panel[j]]
    ss = prediction.ss[j] + layout.min_ss[prediction.panel[j]]
    return np.hypot(np.asarray(table.fs)[hit] - fs, np.asarray(table.ss)[hit] - ss)


def bright_scores(image: np.ndarray, bad: np.ndarray | None, fs: np.ndarray,
                  ss: np.ndarray, photon: float = 1.0) -> np.ndarray:
    """How bright the pixels at some positions of a panel are against their surroundings.

    Parameters
    ----------
    image : numpy.ndarray
        One panel, ``[ss, fs]`` (ADU).
    bad : numpy.ndarray or None
        Its bad-pixel map (True = bad; left out of both the peak and the background).
    fs, ss : numpy.ndarray
        Panel-relative positions (pixels).
    photon : float
        ADU per photon (the panel's gain; 1 when unknown).

    Returns
    -------
    numpy.ndarray
        (max of the 3 x 3 block at the pixel - median of the annulus) / sigma, sigma =
        max(1.4826 MAD, sqrt(median x photon), photon) of the annulus (the floors: Poisson
        noise, and one photon where most pixels count none); NaN where the block has no good
        pixel or the annulus fewer than :data:`MIN_RING_PIXELS` good ones.
    """
    n = len(fs)
    if n == 0:
        return np.zeros(0)
    h, w = image.shape
    r = np.arange(-RING_OUTER, RING_OUTER + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(r, r, indexing="ij"))
    cheb = np.maximum(np.abs(dy), np.abs(dx))
    i = np.floor(np.asarray(ss, float)).astype(np.int64)[:, None] + dy[None, :]
    j = np.floor(np.asarray(fs, float)).astype(np.int64)[:, None] + dx[None, :]
    inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
    ic, jc = np.clip(i, 0, h - 1), np.clip(j, 0, w - 1)
    values = np.asarray(image, dtype=np.float64)[ic, jc]
    good = inside & np.isfinite(values)
    if bad is not None:
        good &= ~np.asarray(bad, dtype=bool)[ic, jc]
    values = np.where(good, values, np.nan)
    core = values[:, cheb <= 1]
    ring = values[:, cheb >= RING_INNER]
    usable = (np.isfinite(core).any(axis=1)
              & (np.isfinite(ring).sum(axis=1) >= MIN_RING_PIXELS))  # fmt: skip
    out = np.full(n, np.nan)
    if not usable.any():
        return out
    core, ring = core[usable], ring[usable]
    med = np.nanmedian(ring, axis=1)
    mad = np.nanmedian(np.abs(ring - med[:, None]), axis=1)
    sigma = np.maximum(1.4826 * mad, np.sqrt(np.maximum(med, 0.0) * photon))
    sigma = np.maximum(sigma, photon)
    out[usable] = (np.nanmax(core, axis=1) - med) / sigma
    return out


def random_positions(fs: np.ndarray, ss: np.ndarray, rng: np.random.Generator,
                     near: float = 8.0, far: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Control positions: each position moved ``near``..``far`` px in a random direction
    (same panel, about the same distance from the beam as the peaks)."""
    angle = rng.uniform(0.0, 2.0 * math.pi, len(fs))
    radius = rng.uniform(near, far, len(fs))
    return np.asarray(fs) + radius * np.cos(angle), np.asarray(ss) + radius * np.sin(angle)


# --------------------------------------------------------------------------------------------
# One frame
# --------------------------------------------------------------------------------------------

@dataclass
class FrameFigures:
    """The measures of one frame (arrays are per peak or per row; pixels).

    ``peak_distance``/``peak_dfs``/``peak_dss``: :func:`peak_offsets` to the re-predicted
    reflections (empty when the chunk has no crystal); ``stream_distance``: the same to the
    printed positions; ``row_distance``: :func:`row_offsets`; ``bright``/``random``: the
    :func:`bright_scores` of the peaks and of :func:`random_positions` (NaN: not measured).
    """

    name: str
    n_peaks: int
    peak_distance: np.ndarray
    peak_dfs: np.ndarray
    peak_dss: np.ndarray
    stream_distance: np.ndarray
    row_distance: np.ndarray
    bright: np.ndarray
    random: np.ndarray

    def bright_fractions(self, k: float) -> tuple[float, float, int]:
        """Fractions of peaks and of random positions scoring over ``k``, and the number
        of peaks measured."""
        return _fraction(self.bright, k), _fraction(self.random, k), int(
            np.isfinite(self.bright).sum())


def _fraction(scores: np.ndarray, k: float) -> float:
    ok = np.isfinite(scores)
    return float((scores[ok] > k).mean()) if ok.any() else math.nan


def _panels(fs: np.ndarray, ss: np.ndarray, names: Any, layout: Any) -> np.ndarray:
    """Panel index of each position (-1: none); from the names (format 2.3) or, without
    them, the first panel whose data-array range holds the position."""
    if names is not None:
        return np.array([layout.index.get(str(p), -1) for p in names], dtype=np.int64)
    out = np.full(len(fs), -1, dtype=np.int64)
    for i in range(len(layout.panels) - 1, -1, -1):
        h, w = layout.shapes[i]
        x = fs - layout.min_fs[i]
        y = ss - layout.min_ss[i]
        out[(x >= 0) & (x < w) & (y >= 0) & (y < h)] = i
    return out


def _frame_name(chunk: Any) -> str:
    event = getattr(chunk, "event", None)
    return f"{chunk.filename} {event}" if event else str(chunk.filename)


def frame_figures(chunk: Any, frame: Any, predictions: list[Any], layout: Any,
                  rng: np.random.Generator, match_radius: float = 5.0) -> FrameFigures:
    """The measures of one chunk and the frame that was read for it.

    Parameters
    ----------
    chunk : streamfilter.stream.Chunk
        Its found peaks and crystals (printed rows).
    frame : streamfilter.frames.Frame
        The pixels read for it (``data``/``bad`` per panel name, panel-relative).
    predictions : list of streamfilter.integrate.CrystalPredictions
        One per crystal, from the geometry alone (:func:`predictor`).
    layout : streamfilter.integrate.DetectorLayout
    rng : numpy.random.Generator
        Draws the random control positions.
    """
    peaks = chunk.peaks
    empty = np.zeros(0)
    if peaks is None or len(peaks) == 0:
        return FrameFigures(_frame_name(chunk), 0, *(empty,) * 7)
    panel = _panels(peaks.fs, peaks.ss, peaks.panel, layout)
    known = panel >= 0
    pfs, pss, panel = peaks.fs[known], peaks.ss[known], panel[known]
    d = dfs = dss = stream_d = rows = empty
    if predictions:
        fs = np.concatenate([p.fs + layout.min_fs[p.panel] for p in predictions])
        ss = np.concatenate([p.ss + layout.min_ss[p.panel] for p in predictions])
        pp = np.concatenate([np.asarray(p.panel, dtype=np.int64) for p in predictions])
        d, dfs, dss = peak_offsets(pfs, pss, panel, fs, ss, pp, match_radius)
        rows = np.concatenate([
            row_offsets(x.reflections, p, layout)
            for x, p in zip(chunk.crystals, predictions, strict=True)
        ])  # fmt: skip
        stream_d = _printed_offsets(chunk, layout, pfs, pss, panel, match_radius)
    bright = np.full(len(pfs), np.nan)
    random = np.full(len(pfs), np.nan)
    rfs, rss = random_positions(pfs - layout.min_fs[panel], pss - layout.min_ss[panel], rng)
    gain = layout.gain(chunk.photon_energy_eV)[0] if chunk.photon_energy_eV else None
    for i in np.unique(panel):
        photon = float(gain[i]) if gain is not None and gain[i] > 0 else 1.0
        name = layout.names[i]
        on = panel == i
        image = frame.data[name]
        bad = frame.bad.get(name) if frame.bad is not None else None
        bright[on] = bright_scores(image, bad, pfs[on] - layout.min_fs[i],
                                   pss[on] - layout.min_ss[i], photon)
        random[on] = bright_scores(image, bad, rfs[on], rss[on], photon)
    return FrameFigures(_frame_name(chunk), len(peaks), d, dfs, dss, stream_d, rows,
                        bright, random)


def _printed_offsets(chunk: Any, layout: Any, pfs: np.ndarray, pss: np.ndarray,
                     panel: np.ndarray, match_radius: float) -> np.ndarray:
    """:func:`peak_offsets` to the crystals' printed positions (empty without rows)."""
    tables = [x.reflections for x in chunk.crystals
              if x.reflections is not None and len(x.reflections)]
    if not tables:
        return np.zeros(0)
    fs = np.concatenate([t.fs for t in tables])
    ss = np.concatenate([t.ss for t in tables])
    names = None
    if all(t.panel is not None for t in tables):
        names = np.concatenate([t.panel for t in tables])
    where = _panels(fs, ss, names, layout)
    return peak_offsets(pfs, pss, panel, fs, ss, where, match_radius)[0]


# --------------------------------------------------------------------------------------------
# A run's verdict
# --------------------------------------------------------------------------------------------

def predictor(detector: Any) -> Any:
    """A :class:`~streamfilter.pipeline.frame.FrameIntegrator` that predicts from the geometry
    alone (``use_stream_rows=False``: no position is taken from the stream's rows), as the
    measures need: ``predictor(det).predict(frame, chunk.crystals, chunk.photon_energy_eV,
    chunk.beam_bandwidth)`` and its ``layout``."""
    from streamfilter.pipeline.frame import FrameIntegrator, Integration

    return FrameIntegrator(detector, Integration("crystfel", use_stream_rows=False))


def _median(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else math.nan


def _fmt(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f} px"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


@dataclass
class CheckResult:
    """The verdict on a sample of frames; distances in pixels, fractions in [0, 1], NaN
    where nothing was measured.

    ``ok`` = ``geometry_ok and frames_ok``; ``frames``: frames measured (with found peaks),
    ``indexed``: those with crystals, ``peaks``: their found peaks.  ``peak_offset``: median
    distance from a found peak to the nearest re-predicted reflection (matched peaks),
    ``peak_offset_fs``/``_ss``: median peak minus prediction along the panels' fs/ss;
    ``matched``: fraction of peaks with a reflection within ``match_radius``;
    ``stream_offset``/``stream_matched``: the same for the stream's printed positions;
    ``offset_limit``: the largest ``peak_offset`` accepted; ``row_offset``: median distance
    from a printed row to its re-predicted position; ``bright``/``random_bright``: fractions
    of found peaks and of random positions on bright pixels; ``wrong_frames``: frames whose
    peaks are not (of ``wrong_frames_checked``); ``message``: lines naming the figures and,
    when not ok, what is wrong.
    """

    ok: bool
    geometry_ok: bool
    frames_ok: bool
    frames: int = 0
    indexed: int = 0
    peaks: int = 0
    peak_offset: float = math.nan
    peak_offset_fs: float = math.nan
    peak_offset_ss: float = math.nan
    matched: float = math.nan
    stream_offset: float = math.nan
    stream_matched: float = math.nan
    offset_limit: float = math.nan
    row_offset: float = math.nan
    bright: float = math.nan
    random_bright: float = math.nan
    wrong_frames: list[str] = field(default_factory=list)
    wrong_frames_checked: int = 0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        return out


class RunCheck:
    """Pools the measures of a run's first frames and says whether geometry and frames match
    the stream.

    Feed it every chunk whose frame was read, with predictions from the geometry alone
    (:func:`predictor`; not the ones reconciled with the stream's rows); it keeps the first
    ``thresholds.sample`` frames that have found peaks and ignores the rest.  Once
    :attr:`done` (or at the end of a shorter run), :meth:`verdict` gives the
    :class:`CheckResult`: a caller stops before writing when ``not result.ok`` and prints
    ``result.message``.  Deterministic (the random control positions are seeded).

    Example (see :func:`check_stream`)::

        check, run = RunCheck(), predictor(source.detector)
        for chunk in chunks:  # frame = source.load(...), preds = run.predict(...)
            if check.add(chunk, frame, preds, run.layout):
                break
        result = check.verdict()
    """

    def __init__(self, thresholds: Thresholds | None = None, seed: int = 0) -> None:
        self.thresholds = thresholds or Thresholds()
        self.figures: list[FrameFigures] = []
        self._rng = np.random.default_rng(seed)

    @property
    def done(self) -> bool:
        """True once ``thresholds.sample`` frames with peaks were measured."""
        return len(self.figures) >= self.thresholds.sample > 0

    def add(self, chunk: Any, frame: Any, predictions: list[Any], layout: Any) -> bool:
        """Measure one chunk and its frame (skipped when :attr:`done` or without peaks);
        returns :attr:`done`."""
        if self.done or chunk.peaks is None or len(chunk.peaks) == 0:
            return self.done
        self.figures.append(frame_figures(chunk, frame, predictions, layout, self._rng,
                                          self.thresholds.match_radius))
        return self.done

    def measure(self, chunk: Any, frame: Any, run: Any) -> bool:
        """Predict ``chunk``'s crystals with ``run`` (a :func:`predictor`) and :meth:`add`
        them; returns :attr:`done`.  Crystal values no prediction can use are refused first,
        as the run does (:class:`~streamfilter.errors.StreamfilterError`)."""
        from streamfilter.pipeline.step import check_crystal

        preds = []
        if chunk.crystals:
            for xtal in chunk.crystals:
                check_crystal(chunk, xtal, chunk.photon_energy_eV)
            preds = run.predict(frame, chunk.crystals, chunk.photon_energy_eV,
                                chunk.beam_bandwidth)  # fmt: skip
        return self.add(chunk, frame, preds, run.layout)

    def verdict(self) -> CheckResult:
        """The :class:`CheckResult` of the frames measured so far."""
        t = self.thresholds
        figs = self.figures
        r = CheckResult(ok=True, geometry_ok=True, frames_ok=True, frames=len(figs))
        if not figs:
            r.message = "no frame with found peaks to check"
            return r
        _geometry_verdict(r, [f for f in figs if len(f.peak_distance)], t)
        _frames_verdict(r, figs, t)
        r.ok = r.geometry_ok and r.frames_ok
        return r


def _geometry_verdict(r: CheckResult, figs: list[FrameFigures], t: Thresholds) -> None:
    r.indexed = len(figs)
    if not figs:
        return
    cat = np.concatenate
    d = cat([f.peak_distance for f in figs])
    stream_d = cat([f.stream_distance for f in figs])
    r.peaks = len(d)
    r.peak_offset, r.matched = _median(d), float(np.isfinite(d).mean())
    r.peak_offset_fs = _median(cat([f.peak_dfs for f in figs]))
    r.peak_offset_ss = _median(cat([f.peak_dss for f in figs]))
    r.row_offset = _median(cat([f.row_distance for f in figs]))
    if len(stream_d):
        r.stream_offset, r.stream_matched = _median(stream_d), float(np.isfinite(stream_d).mean())
    have_stream = math.isfinite(r.stream_offset)
    r.offset_limit = r.stream_offset + t.offset_margin if have_stream else t.offset_limit
    too_far = not (r.peak_offset <= r.offset_limit)
    too_few = have_stream and r.matched < t.matched_ratio * r.stream_matched
    r.geometry_ok = not (too_far or too_few)
    lines = [
        f"predictions vs found peaks: median {_fmt(r.peak_offset)} (fs {r.peak_offset_fs:+.2f}, "
        f"ss {r.peak_offset_ss:+.2f}), {_pct(r.matched)} of {r.peaks} peaks within "
        f"{t.match_radius:g} px; the stream's printed positions: {_fmt(r.stream_offset)}, "
        f"{_pct(r.stream_matched)}; limit {_fmt(r.offset_limit)}",
        f"predictions vs the stream's printed positions: median {_fmt(r.row_offset)}",
    ]
    if not r.geometry_ok:
        why = " and ".join(x for x, bad in (
            (f"the predictions lie {_fmt(r.peak_offset)} from the found peaks (limit "
             f"{_fmt(r.offset_limit)})", too_far),
            (f"only {_pct(r.matched)} of the found peaks have a prediction within "
             f"{t.match_radius:g} px (the printed positions: {_pct(r.stream_matched)})", too_few),
        ) if bad)  # fmt: skip
        lines.append(f"GEOMETRY DOES NOT MATCH THE STREAM: {why}; is it the geometry "
                     "the stream was indexed with (corner_x/y, clen, res, coffset)?")
    r.message = "\n".join(lines)


def _frames_verdict(r: CheckResult, figs: list[FrameFigures], t: Thresholds) -> None:
    cat = np.concatenate
    bright = cat([f.bright for f in figs])
    random = cat([f.random for f in figs])
    r.bright, r.random_bright = _fraction(bright, t.bright_sigma), _fraction(random, t.bright_sigma)
    checked = 0
    for f in figs:
        b, x, n = f.bright_fractions(t.bright_sigma)
        if n >= t.min_peaks:
            checked += 1
            if not (b - x >= t.bright_contrast):
                r.wrong_frames.append(f.name)
    r.wrong_frames_checked = checked
    run_bad = not (r.bright - r.random_bright >= t.bright_contrast)
    many_bad = checked > 0 and len(r.wrong_frames) > t.wrong_frames * checked
    r.frames_ok = not (run_bad or many_bad)
    lines = [f"found peaks on bright pixels: {_pct(r.bright)} (random positions: "
             f"{_pct(r.random_bright)}); frames whose peaks are not: "
             f"{len(r.wrong_frames)} of {checked}"]
    if r.wrong_frames:
        more = ", ..." if len(r.wrong_frames) > 3 else ""
        lines[-1] += " (" + ", ".join(r.wrong_frames[:3]) + more + ")"
    if not r.frames_ok:
        lines.append("FRAMES DO NOT MATCH THE STREAM: the found peaks are not on bright "
                     "pixels of the frames read (wrong file, wrong event order, or other data "
                     "of the same shape?)")
    r.message = "\n".join(([r.message] if r.message else []) + lines)


# --------------------------------------------------------------------------------------------
# A whole stream: every frame opened, the measures on a sample
# --------------------------------------------------------------------------------------------

#: Exit statuses of ``streamfilter check``.
EXIT_OK, EXIT_MISMATCH, EXIT_FRAMES = 0, 1, 3


@dataclass
class StreamCheck:
    """What :func:`check_stream` found.

    ``problems`` maps a kind (``missing file``, ``missing event``, ``shape mismatch``,
    ``unreadable``, ``no image filename``) to [chunks, the first few frames (files, for
    missing files) with the reason];
    ``result`` is the :class:`CheckResult` of the measured sample.
    """

    stream: str
    geometry: str
    chunks: int = 0
    opened: int = 0
    problems: dict[str, list[Any]] = field(default_factory=dict)
    result: CheckResult | None = None

    @property
    def exit_status(self) -> int:
        """0 all well; 3 frames missing or unreadable; 1 geometry or frames do not match."""
        if self.problems:
            return EXIT_FRAMES
        return EXIT_OK if self.result is None or self.result.ok else EXIT_MISMATCH

    def note(self, kind: str, what: str, keep: int = 5) -> None:
        entry = self.problems.setdefault(kind, [0, []])
        entry[0] += 1
        if len(entry[1]) < keep and what not in entry[1]:
            entry[1].append(what)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("stream", "geometry", "chunks", "opened",
                                             "exit_status")}  # fmt: skip
        out["problems"] = {k: {"count": c, "first": f} for k, (c, f) in self.problems.items()}
        return {**out, "result": None if self.result is None else self.result.to_dict()}


def _problem(error: Exception) -> str:
    from streamfilter.frames import FrameNotFoundError

    if isinstance(error, FrameNotFoundError):
        return "missing file"
    reason = str(getattr(error, "reason", error))
    if "out of range" in reason:
        return "missing event"
    if "shape" in reason or "rank" in reason:
        return "shape mismatch"
    return "unreadable"


def _reason(error: Exception) -> str:
    searched = getattr(error, "searched", None)
    if searched is not None:
        return "not found (tried " + ", ".join(searched) + ")"
    return str(getattr(error, "reason", error))


def check_stream(
    stream_path: str,
    *,
    geometry: str | None = None,
    data_roots: Iterable[str] = (),
    sample: int = 100,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], None] | None = None,
) -> StreamCheck:
    """Open every frame a stream names and measure a sample (``streamfilter check``).

    Parameters
    ----------
    stream_path : str
        The stream (``-`` for standard input).
    geometry : str, optional
        A geometry file (default: the stream's embedded one).
    data_roots : iterable of str
        More directories to look for frames in (after the stream's own).
    sample : int
        The measures run on the first ``sample`` frames with found peaks (0: all).
    thresholds : Thresholds, optional
        Its ``sample`` is replaced by ``sample``.
    progress : callable, optional
        Called with the number of chunks read so far.

    No integration, no output.  Problems opening frames are counted by kind in
    :attr:`StreamCheck.problems`; the measures are in :attr:`StreamCheck.result`.
    """
    import dataclasses

    from streamfilter.errors import StreamfilterError
    from streamfilter.frames import FrameError
    from streamfilter.interrupt import check_stop
    from streamfilter.pipeline.config import config_for
    from streamfilter.stream import read_stream

    t = dataclasses.replace(thresholds or Thresholds(), sample=max(int(sample), 0))
    check = RunCheck(t)
    with read_stream(stream_path) as reader:
        cfg = config_for(reader.header, stream_path, geometry=geometry, data_roots=data_roots)
        out = StreamCheck(stream_path, cfg.geometry_source)
        with cfg.frame_source() as source:
            run = predictor(source.detector)
            for chunk in reader:
                check_stop()  # Ctrl-C / SIGTERM, also one the interpreter swallowed
                out.chunks += 1
                if progress is not None:
                    progress(out.chunks)
                if not chunk.filename:
                    out.note("no image filename", f"chunk {out.chunks - 1}")
                    continue
                try:
                    frame = source.load(chunk.filename, chunk.event)
                except FrameError as e:
                    kind = _problem(e)
                    name = chunk.filename if kind == "missing file" else _frame_name(chunk)
                    out.note(kind, f"{name}: {_reason(e)}")
                    continue
                out.opened += 1
                if check.done or chunk.peaks is None or len(chunk.peaks) == 0:
                    continue
                try:
                    check.measure(chunk, frame, run)
                except StreamfilterError as e:
                    out.note("unusable crystal", f"{_frame_name(chunk)}: {e.message}")
    out.result = check.verdict()
    return out


def sample_run(config: Any, stream_path: str, sample: int, *, follow: Any = None) -> CheckResult:
    """The verdict on the first ``sample`` frames with found peaks of a stream that can be
    read, for a run about to start (``reintegrate`` stops on it unless ``--force``).  Chunks
    or frames that cannot be used are skipped: the run reports them.  ``follow`` (a
    :class:`~streamfilter.stream.follow.Follow`) waits for them in a stream being written."""
    from streamfilter.stream import read_stream

    check = RunCheck(Thresholds(sample=sample))
    looked = 0
    with (
        read_stream(stream_path, keep_going=True, follow=follow) as reader,
        config.frame_source() as source,
    ):
        run = predictor(source.detector)
        for chunk in reader:
            try:
                if chunk.malformed is not None or not chunk.crystals or not chunk.peaks:
                    continue
                looked += 1
                if looked > 10 * sample:  # most frames unreadable: the run will say so
                    break
                if check.measure(chunk, source.load(chunk.filename, chunk.event), run):
                    break
            except Exception:  # noqa: BLE001 - whatever is wrong here, the run reports it
                continue
    return check.verdict()
