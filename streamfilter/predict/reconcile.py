"""indexamajig's prediction set of a stream crystal: re-predicted, reconciled with its rows.

The stream prints what indexamajig predicted only in part: the written rows (to 0.1 px),
``profile_radius`` to 5 decimals, and astar/bstar/cstar to 7 digits.  Re-predicting from
those numbers alone can differ at the margins, so the rows are used as evidence:

* every written row was predicted: rows we did not predict are added, and the printed
  positions narrow ours (:func:`_snap_to_printed`), so they print back exactly;
* the prediction runs to ``R + tolerance``; a reflection then enters the set when the true,
  unrounded R reaches its threshold r*, and :func:`settle` decides the ambiguous ones by
  asking which of them indexamajig's integration would have written (an absent row that
  would have been written was not predicted).

Only positions and the prediction set are taken from the rows, never their numbers.
Positions are panel-relative (``fs = FS - min_fs``), pixel-corner convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.integrate.layout import DetectorLayout
from streamfilter.integrate.model import CrystalPredictions
from streamfilter.integrate.rings import CrystfelOptions, would_write
from streamfilter.predict.crystfel import PredictionGeometry, _predict, positions_for
from streamfilter.predict.threshold import _threshold_radius_of_predicted

__all__ = ["ReconciledPrediction", "predict_crystal", "settle", "PROFILE_RADIUS_TOLERANCE"]

#: Half the last printed digit of ``profile_radius`` (nm^-1, printed with 5 decimals).
PROFILE_RADIUS_TOLERANCE = 5e-6


def _snap_to_printed(pred: np.ndarray, printed: np.ndarray) -> np.ndarray:
    """Move a re-predicted coordinate into the interval its ``%6.1f`` print allows.

    The stream's value is CrystFEL's own prediction rounded to 0.1 px; ours (from the 7-digit
    astar/bstar/cstar) can be off by ~1e-4 px.  Clipping into the open interval
    ``(printed - 0.05, printed + 0.05)`` keeps the better of both, so the position prints
    back exactly as it was read.  Rows more than 0.1 px away are left alone: they are not
    plain predictions (``-cen`` shifts them by whole pixels, other tools move them).
    """
    eps = 1e-9
    out = np.minimum(np.maximum(pred, printed - 0.05 + eps), printed + 0.05 - eps)
    close = np.isfinite(printed) & (np.abs(pred - printed) < 0.1)
    return np.where(close, out, pred)


@dataclass
class ReconciledPrediction(CrystalPredictions):
    """One crystal's prediction set (panel-relative positions) with what the stream says of
    it: ``in_stream``, the row exists in the input stream; ``r_star``, the smallest profile
    radius (nm^-1) at which CrystFEL predicts the reflection (NaN where unknown)."""

    in_stream: np.ndarray
    r_star: np.ndarray

    def select(self, keep: np.ndarray) -> ReconciledPrediction:
        return ReconciledPrediction(
            *(getattr(self, f)[keep] for f in ("h", "k", "l", "panel", "fs", "ss")),
            in_stream=self.in_stream[keep],
            r_star=self.r_star[keep],
        )

    def arrays(self) -> CrystalPredictions:
        """What the integration methods take: h, k, l, panel, fs, ss."""
        return CrystalPredictions(self.h, self.k, self.l, self.panel, self.fs, self.ss)


def _hkl_key(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    h, k, l = (np.asarray(a, dtype=np.int64) + 2048 for a in (h, k, l))  # noqa: E741
    return (h * 4096 + k) * 4096 + l


def predict_crystal(
    xtal: Any,
    photon_energy_eV: float,
    layout: DetectorLayout,
    geometry: PredictionGeometry,
    bandwidth: float | None,
    push_res: float = math.inf,
    use_stream_rows: bool = True,
    radius_tolerance: float = PROFILE_RADIUS_TOLERANCE,
) -> ReconciledPrediction:
    """Predict a stream crystal's reflections as indexamajig did.

    Parameters
    ----------
    xtal : streamfilter.stream.Crystal
        ``astar, bstar, cstar`` (nm^-1), ``profile_radius`` (nm^-1), ``det_shift_mm``,
        ``resolution_limit`` (nm^-1), ``centering``, ``reflections``.
    photon_energy_eV : float
    layout : DetectorLayout
        The panels (names and data-array offsets of the stream's rows).
    geometry : PredictionGeometry
        :func:`~streamfilter.predict.crystfel.prediction_geometry` for the frame.
    bandwidth : float or None
        The chunk's ``beam_bandwidth`` (fraction).
    push_res : float
        ``--push-res`` in nm^-1 (indexamajig's default: no cut).
    use_stream_rows : bool
        Take the crystal's rows as information about indexamajig's own prediction: they
        were necessarily predicted, and their printed positions narrow ours
        (:func:`_snap_to_printed`).  The prediction then runs to ``R + radius_tolerance``
        (``profile_radius`` is printed to 5 decimals); :func:`settle` decides the
        reflections that R may or may not have predicted.
    radius_tolerance : float
        Half the last printed digit of ``profile_radius`` (nm^-1).
    """
    table = getattr(xtal, "reflections", None) if use_stream_rows else None
    have_rows = table is not None and len(table) > 0
    radius = float(xtal.profile_radius or 0.0)
    tol = radius_tolerance if have_rows else 0.0
    max_d = math.inf
    if math.isfinite(push_res) and getattr(xtal, "resolution_limit", None) is not None:
        max_d = (xtal.resolution_limit + push_res) * 1e9
    pr, terms = _predict(
        xtal.astar,
        xtal.bstar,
        xtal.cstar,
        photon_energy_eV,
        geometry,
        radius + tol,
        bandwidth,
        _det_shift(xtal),
        max_d,
        getattr(xtal, "centering", None) or "P",
    )
    if tol > 0:
        # the r* of threshold_radius_for, from the terms the prediction computed (every
        # predicted reflection passes at R + tol)
        r_star = (
            _threshold_radius_of_predicted(
                terms, max(radius - tol, 0.0) * 1e9, (radius + tol) * 1e9
            )
            * 1e-9
        )
    else:
        r_star = np.zeros(len(pr))
    pred = ReconciledPrediction(
        pr.h, pr.k, pr.l, pr.panel, pr.fs.copy(), pr.ss.copy(), np.zeros(len(pr), bool), r_star
    )
    if have_rows:
        pred = _join_stream_rows(pred, xtal, table, photon_energy_eV, layout, geometry, bandwidth)
    return pred


def _det_shift(xtal: Any) -> tuple[float, float]:
    shift = getattr(xtal, "det_shift_mm", None) or (0.0, 0.0)
    return (float(shift[0]), float(shift[1]))


def _join_stream_rows(
    pred: ReconciledPrediction,
    xtal: Any,
    table: Any,
    photon_energy_eV: float,
    layout: DetectorLayout,
    geometry: PredictionGeometry,
    bandwidth: float | None,
) -> ReconciledPrediction:
    """Mark the predictions that are stream rows, narrow their positions with the printed
    ones, and add rows we did not predict (a written row was necessarily predicted)."""
    th, tk, tl = (np.asarray(a, dtype=np.int64) for a in (table.h, table.k, table.l))
    tpanel = _panel_indices(table.panel, layout.index)
    min_fs = np.append(layout.min_fs, 0.0)  # [-1]: rows on no panel
    min_ss = np.append(layout.min_ss, 0.0)
    tfs = np.asarray(table.fs, dtype=np.float64) - min_fs[tpanel]
    tss = np.asarray(table.ss, dtype=np.float64) - min_ss[tpanel]

    key = _hkl_key(pred.h, pred.k, pred.l)  # sorted: predictions come in (h, k, l) order
    tkey = _hkl_key(th, tk, tl)
    pos = np.minimum(np.searchsorted(key, tkey), max(len(key) - 1, 0))
    found = (tpanel >= 0) & (key[pos] == tkey) if len(key) else np.zeros(len(tkey), bool)
    idx = pos[found]
    pred.in_stream[idx] = True
    same = pred.panel[idx] == tpanel[found]
    pred.fs[idx[same]] = _snap_to_printed(pred.fs[idx[same]], tfs[found][same])
    pred.ss[idx[same]] = _snap_to_printed(pred.ss[idx[same]], tss[found][same])

    missing = (tpanel >= 0) & ~found
    if not np.any(missing):
        return pred
    mp, mfs, mss = positions_for(
        th[missing], tk[missing], tl[missing], xtal.astar, xtal.bstar, xtal.cstar,
        photon_energy_eV, layout.detector, _det_shift(xtal),
        profile_radius=xtal.profile_radius, bandwidth=bandwidth or 0.0, geometry=geometry,
    )  # fmt: skip
    on = mp >= 0
    same = mp == tpanel[missing]
    mfs = np.where(same, _snap_to_printed(mfs, tfs[missing]), mfs)
    mss = np.where(same, _snap_to_printed(mss, tss[missing]), mss)
    extra = ReconciledPrediction(
        th[missing][on].astype(np.int32), tk[missing][on].astype(np.int32),
        tl[missing][on].astype(np.int32), mp[on], mfs[on], mss[on],
        np.ones(int(on.sum()), bool), np.full(int(on.sum()), np.nan),
    )  # fmt: skip
    fields = ("h", "k", "l", "panel", "fs", "ss", "in_stream", "r_star")
    joined = [np.concatenate([getattr(pred, f), getattr(extra, f)]) for f in fields]
    order = np.lexsort((joined[2], joined[1], joined[0]))
    return ReconciledPrediction(*(a[order] for a in joined))


def _panel_indices(names: Any, index: dict[str, int]) -> np.ndarray:
    """int64 index of each row's panel name (-1 for a name the geometry does not have)."""
    if names is None:  # a table without a panel column
        raise TypeError("the reflection table has no panel column")
    names = np.asarray(names)
    if names.dtype.kind != "U" or len(index) > 16:
        uniq, inverse = np.unique(names.astype(str), return_inverse=True)
        lookup = np.array([index.get(str(u), -1) for u in uniq.tolist()] + [-1], dtype=np.int64)
        return lookup[inverse.ravel()] if names.size else np.zeros(0, np.int64)
    out = np.full(names.shape, -1, dtype=np.int64)
    for name, i in index.items():  # few panels: one vectorised comparison each
        out[names == name] = i
    return out


def _settle_radius(
    xtal: Any, pred: ReconciledPrediction, written: np.ndarray, tol: float
) -> np.ndarray:
    """Decide which over-predicted reflections CrystFEL predicted (bool mask to keep).

    The stream prints ``profile_radius`` to 5 decimals, so the true R is only known to
    +-``tol``.  A reflection enters the prediction set when R >= its threshold r*.  Rows
    present in the stream need R >= r*; absent reflections that would have been written
    need R < r*.  We keep the stream's rows, drop the absent would-be-written ones (their
    absence is the evidence; our r* carries ~1e-6 nm^-1 of error from the 7-digit astar, so
    the two constraints can cross), and decide the rest (which only shape the overlap mask)
    with R in the middle of the interval the constraints leave.
    """
    radius = float(xtal.profile_radius or 0.0)
    lo, hi = radius - tol, radius + tol
    rs = pred.r_star
    finite = np.isfinite(rs)
    need = pred.in_stream & finite
    if np.any(need):
        lo = max(lo, float(rs[need].max()))
    veto = ~pred.in_stream & written & finite & (rs > radius - tol)
    if np.any(veto & (rs > lo)):
        hi = min(hi, float(rs[veto & (rs > lo)].min()))
    chosen = 0.5 * (lo + hi) if hi > lo else lo
    return pred.in_stream | (finite & (rs <= chosen) & ~veto)


def settle(
    crystals: list[Any],
    predictions: list[ReconciledPrediction],
    frame: Any,
    photon_energy_eV: float,
    stream_radii: tuple[float, float, float],
    layout: DetectorLayout,
    flags: CrystfelOptions,
    tolerance: float = PROFILE_RADIUS_TOLERANCE,
) -> list[ReconciledPrediction]:
    """The prediction sets indexamajig had: the over-predicted sets of :func:`predict_crystal`
    with the reflections the true profile radius did not predict taken out.

    The reflections that the rounded radius leaves ambiguous are integrated as indexamajig
    integrated (its radii ``stream_radii`` and flags, the overlap mask of every prediction of
    the frame); :func:`_settle_radius` then decides.
    """
    ambiguous = [
        ~pd.in_stream
        & np.isfinite(pd.r_star)
        & (pd.r_star > float(x.profile_radius or 0.0) - tolerance)
        for pd, x in zip(predictions, crystals, strict=True)
    ]
    if not any(np.any(a) for a in ambiguous):
        return predictions
    verdicts = would_write(
        frame, [pd.arrays() for pd in predictions], ambiguous, photon_energy_eV, stream_radii,
        layout, flags,
    )  # fmt: skip
    return [
        pd.select(_settle_radius(x, pd, verdict, tolerance))
        for x, pd, verdict in zip(crystals, predictions, verdicts, strict=True)
    ]
