"""PNG figures of a stream comparison (matplotlib, imported only when figures are asked for).

:func:`write_compare_plots` writes four figures into a directory:

``intensity_scatter.png``
    I(B) against I(A) on log axes for matched observations (pairs with both I > 0); with no
    shared frames, the merged intensities instead.
``ratio_vs_resolution.png``
    I(B)/I(A) of the same pairs against 1/d (nm^-1, from crystal A), with the median per shell.
``isigma_hist.png``
    Histograms of I/sigma(I) of all observations of A and of B (merged rows with no shared
    frames).
``cc_per_shell.png``
    Correlations per resolution shell: CC(I) of matched observations, CC between the merged
    lists, CC1/2 of each stream and, with a reference, CC against it.

matplotlib is not a runtime dependency of streamfilter: the import happens inside
:func:`write_compare_plots`, which raises a :class:`~streamfilter.errors.StreamfilterError`
telling the user to install it when it is missing.  Figures are drawn with the Agg canvas
(no display needed, pyplot's global state untouched).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from streamfilter.errors import StreamfilterError


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise StreamfilterError(
            "--plots needs matplotlib: pip install matplotlib (or streamfilter[plot])"
        ) from None
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _pairs(result) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(I_A, I_B, 1/d, label) of matched observations, or of merged pairs as a fallback."""
    if result.pairs is not None and result.pairs.I_a.size:
        p = result.pairs
        return p.I_a, p.I_b, p.one_over_d, "matched observations"
    c = result.merged_a_vs_b
    if c is not None:
        return c.I1, c.I2, c.one_over_d, "merged reflections (B Wilson-scaled to A)"
    return np.zeros(0), np.zeros(0), np.zeros(0), "no pairs"


def _scatter(result, path: Path) -> None:
    ia, ib, _, label = _pairs(result)
    fig = _figure()
    ax = fig.add_subplot()
    ok = (ia > 0) & (ib > 0)
    ax.loglog(ia[ok], ib[ok], ".", ms=2, alpha=0.5)
    if ok.any():
        lo = float(min(ia[ok].min(), ib[ok].min()))
        hi = float(max(ia[ok].max(), ib[ok].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="I(B) = I(A)")
        ax.legend(loc="upper left")
    ax.set_xlabel("I(A) / ADU")
    ax.set_ylabel("I(B) / ADU")
    ax.set_title(f"{label}: {int(ok.sum())} with both I > 0")
    fig.savefig(path)


def _ratio(result, path: Path) -> None:
    ia, ib, r, label = _pairs(result)
    fig = _figure()
    ax = fig.add_subplot()
    ok = (ia > 0) & (ib > 0) & np.isfinite(r)
    ratio = ib[ok] / ia[ok]
    ax.semilogy(r[ok], ratio, ".", ms=2, alpha=0.4, label=label)
    shells = result.obs_shells if result.pairs is not None else result.merged_shells
    if shells is not None and ok.any():
        j = shells.assign(r[ok])
        med = [np.median(ratio[j == s]) if np.any(j == s) else np.nan for s in range(shells.n)]
        ax.step(shells.edges, [med[0], *med], where="pre", color="C3", label="median per shell")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("1/d / nm$^{-1}$")
    ax.set_ylabel("I(B) / I(A)")
    ax.legend(loc="upper right")
    fig.savefig(path)


def _hist(result, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    if result.pairs is not None:
        xa, xb = result.pairs.I_over_sigma_a, result.pairs.I_over_sigma_b
        what = "observations"
    else:
        xa = result.merged_a.I / result.merged_a.sigma if result.merged_a is not None else []
        xb = result.merged_b.I / result.merged_b.sigma if result.merged_b is not None else []
        what = "merged reflections"
    xa = np.asarray(xa, np.float64)
    xb = np.asarray(xb, np.float64)
    xa = xa[np.isfinite(xa)]
    xb = xb[np.isfinite(xb)]
    both = np.concatenate([xa, xb])
    if both.size:
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 80)
        ax.hist(xa, bins=bins, histtype="step", label=f"A ({xa.size})")
        ax.hist(xb, bins=bins, histtype="step", label=f"B ({xb.size})")
        ax.legend()
    ax.set_xlabel("I / sigma(I)")
    ax.set_ylabel(f"{what} per bin")
    fig.savefig(path)


def _cc(result, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    rep = result.report
    obs = rep.get("observations")
    if obs is not None and result.obs_shells is not None:
        ax.plot(
            result.obs_shells.centres,
            [row["cc_I"] for row in obs["shells"]],
            "o-",
            label="CC(I) matched observations",
        )
    merged = rep["merged"]
    centres = result.merged_shells.centres
    series = [("a_vs_b", "cc", "CC merged A vs B")]
    series += [(k, "cc_half", f"CC1/2 {k.upper()}") for k in ("a", "b")]
    series += [(f"{k}_vs_reference", "cc", f"CC {k.upper()} vs reference") for k in ("a", "b")]
    for key, col, label in series:
        block = merged.get(key)
        if not block or "shells" not in block or col not in block["shells"][0]:
            continue
        ax.plot(centres, [row[col] for row in block["shells"]], "s-", label=label)
    ax.set_xlabel("1/d / nm$^{-1}$ (shell centre)")
    ax.set_ylabel("correlation coefficient")
    ax.legend(loc="lower left", fontsize="small")
    fig.savefig(path)


def write_compare_plots(result, outdir: str | os.PathLike) -> list[Path]:
    """Write the comparison figures as PNG files into ``outdir`` (created if needed).

    Parameters
    ----------
    result : streamfilter.analysis.compare.CompareResult
        What :func:`streamfilter.analysis.compare.compare_streams` returned.
    outdir : str or path-like
        Directory for the figures.

    Returns
    -------
    list of pathlib.Path
        The files written: intensity_scatter.png, ratio_vs_resolution.png, isigma_hist.png,
        cc_per_shell.png.
    """
    out = Path(outdir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StreamfilterError(
            f"{outdir}: cannot create the plot directory ({e.strerror})"
        ) from None
    files = []
    for name, draw in (
        ("intensity_scatter.png", _scatter),
        ("ratio_vs_resolution.png", _ratio),
        ("isigma_hist.png", _hist),
        ("cc_per_shell.png", _cc),
    ):
        path = out / name
        draw(result, path)
        files.append(path)
    return files
