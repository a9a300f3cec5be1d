"""``streamfilter inspect --threshold``: a frame's local maxima and their nearest predictions.

Conventions as in :mod:`streamfilter.analysis.inspect`: data-array coordinates (pixel i spans
[i, i + 1), centre i + 0.5), values in ADU, chunks numbered from 0 in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .inspect import integrate_chunk, load_chunk

__all__ = ["MaximaResult", "local_maxima", "inspect_maxima", "format_maxima"]


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
    ctx = load_chunk(stream, chunk, int_radius=int_radius, geometry=geometry, data_root=data_root)
    results = integrate_chunk(ctx)
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
