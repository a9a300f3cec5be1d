"""PNG figures of a stream comparison (matplotlib, imported only when figures are asked for).

:func:`write_compare_plots` writes four figures into a directory (:func:`compare_figures`
gives them as Figure objects); each names A and B at the top:

``intensity_scatter.png``
    I(B) against I(A), density (hexagonal bins) on log axes, for matched observations
    (pairs with both I > 0; the others are counted on the figure), with I(B) = I(A) and the
    median ratio; with no paired chunks, the merged intensities instead (B Wilson-scaled to
    A; "(scaled)" rather than ADU when the inputs are reflection lists).
``ratio_vs_resolution.png``
    I(B)/I(A) of the same pairs against resolution (1/d from crystal A; d in Angstrom below,
    1/d in nm^-1 above), density, with the median and the quartiles per shell.
``isigma_hist.png``
    Histograms of I/sigma(I) of all observations of A and of B (merged rows without paired
    chunks), with the number of negative values.
``cc_per_shell.png``
    Correlations per resolution shell: CC(I) of matched observations, CC between the merged
    lists, CC1/2 of each input and, with a reference, CC against it.

:func:`plot_inspect` and :func:`plot_maxima` draw ``streamfilter inspect --png``: one
reflection's box with its rings and pixel classes, or a frame with its local maxima.

matplotlib is not a runtime dependency of streamfilter (it is the ``[plot]`` extra): it is
imported only when figures are drawn, and :func:`require_matplotlib`, which the commands call
before reading anything, raises a :class:`~streamfilter.errors.StreamfilterError` telling the
user to install it when it is missing.  Figures are drawn with the Agg canvas
(no display needed, pyplot's global state untouched).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from streamfilter.errors import StreamfilterError


def require_matplotlib(option: str) -> None:
    """Raise a :class:`~streamfilter.errors.StreamfilterError` naming ``option`` and the
    ``[plot]`` extra when matplotlib cannot be imported: called by the commands before they
    read anything, so a long run does not end in that error."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise StreamfilterError(
            f"{option} needs matplotlib, which is not installed: "
            "pip install 'streamfilter[plot]' (or pip install matplotlib)"
        ) from None


def _figure(option: str = "--plots", size: tuple[float, float] = (6.4, 4.8)):
    """A matplotlib Figure on the Agg canvas; ``option`` names what needs it in the error."""
    require_matplotlib(option)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _name(path: str | None) -> str:
    """A file name short enough for a figure."""
    return "-" if path is None else os.path.basename(str(path)) or str(path)


def _inputs(result) -> tuple[str, str]:
    """The names of A and B as the figures show them (with a directory when they clash)."""
    inp = result.report["inputs"]
    a, b = _name(inp["a"]), _name(inp["b"])
    if a == b:
        a, b = (os.path.join(os.path.basename(os.path.dirname(os.path.abspath(p))), n)
                for p, n in ((inp["a"], a), (inp["b"], b)))  # fmt: skip
    return a, b


def _caption(fig, result, what: str) -> None:
    """Name the inputs (and what is drawn) at the top of every compare figure."""
    a, b = _inputs(result)
    pg = result.report["inputs"].get("point_group")
    fig.suptitle(f"A = {a}    B = {b}\n{what}" + (f" (merged in {pg})" if "merged" in what
                 and pg else ""), fontsize=9)  # fmt: skip


def _lists(result) -> bool:
    """True when A and B are reflection lists (merged, often scaled: not ADU)."""
    return result.report.get("observations") is None and result.report["inputs"].get(
        "pair_by") is None  # fmt: skip


def _pairs(result) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, tuple[str, str]]:
    """(I_A, I_B, 1/d, what, (x label, y label)) of matched observations, or of merged pairs
    as a fallback; labels carry honest units."""
    if result.pairs is not None and result.pairs.I_a.size:
        p = result.pairs
        return (p.I_a, p.I_b, p.one_over_d, "matched observations",
                ("I(A) / ADU", "I(B) / ADU"))  # fmt: skip
    c = result.merged_a_vs_b
    if c is not None:
        unit = "(scaled)" if _lists(result) else "/ ADU (merged)"
        return (c.I1, c.I2, c.one_over_d, "merged reflections, B Wilson-scaled to A",
                (f"I(A) {unit}", f"I(B) {unit}, scaled to A"))  # fmt: skip
    return np.zeros(0), np.zeros(0), np.zeros(0), "no pairs", ("I(A)", "I(B)")


def _outside_legend(ax, ncol: int = 2) -> None:
    """The legend below the axes, off the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol,
                  fontsize="small", frameon=False)  # fmt: skip


def _note(ax, text: str, top: bool = False) -> None:
    """A remark (e.g. what is not drawn) in a corner of the axes, on a white box."""
    ax.text(0.99, 0.99 if top else 0.01, text, transform=ax.transAxes, ha="right",
            va="top" if top else "bottom", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})  # fmt: skip


def resolution_axis(ax, r_lo: float, r_hi: float) -> None:
    """Label an x axis that holds 1/d (nm^-1) in d (Angstrom), with 1/d on a top axis.

    The data stay in 1/d (shells of equal reciprocal volume are nearly even there); the
    bottom ticks are placed at round d values.
    """
    ticks = np.array([50, 20, 10, 7, 5, 4, 3.5, 3, 2.5, 2.2, 2, 1.8, 1.6, 1.5, 1.4, 1.3,
                      1.2, 1.1, 1.0])  # fmt: skip
    r = 10.0 / ticks
    keep = (r >= r_lo - 1e-9) & (r <= r_hi + 1e-9)
    if keep.sum() >= 2:
        ax.set_xticks(r[keep])
        ax.set_xticklabels([f"{t:g}" for t in ticks[keep]])
    ax.set_xlim(r_lo, r_hi)
    ax.set_xlabel("d / Å (axis linear in 1/d)")
    top = ax.secondary_xaxis("top")
    top.set_xlabel("1/d / nm$^{-1}$", fontsize=8)
    top.tick_params(labelsize=7)


def _sampled(result) -> str:
    """How the matched pairs were thinned for the plots ("" when all are drawn)."""
    stride = getattr(result.pairs, "stride", 1) if result.pairs is not None else 1
    return f" (1 pair in {stride} of the stream)" if stride > 1 else ""


def _scatter(result) -> Any:
    """I(B) against I(A), density on log axes."""
    from matplotlib.colors import LogNorm

    ia, ib, _, what, (xl, yl) = _pairs(result)
    fig = _figure(size=(6.4, 6.0))
    ax = fig.add_subplot()
    fin = np.isfinite(ia) & np.isfinite(ib)
    ok = fin & (ia > 0) & (ib > 0)
    n_neg = int((fin & ~ok).sum())
    if ok.any():
        hb = ax.hexbin(ia[ok], ib[ok], xscale="log", yscale="log", gridsize=70, mincnt=1,
                       norm=LogNorm(), cmap="viridis")  # fmt: skip
        fig.colorbar(hb, ax=ax, label="pairs per hexagon")
        lo = float(min(ia[ok].min(), ib[ok].min()))
        hi = float(max(ia[ok].max(), ib[ok].max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="I(B) = I(A)")
        med = float(np.median(ib[ok] / ia[ok]))
        ax.plot([lo, hi], [lo * med, hi * med], color="C3", lw=1.2,
                label=f"I(B) = {med:.3g} I(A) (median ratio)")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    _note(ax, f"{int(ok.sum())} pairs with both I > 0 drawn; {n_neg} with I <= 0 "
              f"({100.0 * n_neg / max(int(fin.sum()), 1):.1f}%) not on log axes"
              f"{_sampled(result)}")  # fmt: skip
    _outside_legend(ax)
    _caption(fig, result, what)
    fig.tight_layout()
    return fig


def _shell_median(shells, r: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per shell: centre (1/d), median, 25th and 75th percentile of ``v`` (NaN if empty)."""
    j = shells.assign(r)
    out = np.full((3, shells.n), np.nan)
    for s in range(shells.n):
        sel = v[j == s]
        if sel.size:
            out[:, s] = np.percentile(sel, [50, 25, 75])
    return shells.centres, out[0], out[1], out[2]


def _ratio(result) -> Any:
    """I(B)/I(A) against resolution, density and the per-shell median."""
    from matplotlib.colors import LogNorm

    ia, ib, r, what, _ = _pairs(result)
    fig = _figure(size=(6.8, 5.4))
    ax = fig.add_subplot()
    fin = np.isfinite(ia) & np.isfinite(ib) & np.isfinite(r)
    ok = fin & (ia > 0) & (ib > 0)
    ratio = ib[ok] / ia[ok]
    shells = result.obs_shells if result.pairs is not None else result.merged_shells
    if ok.any():
        hb = ax.hexbin(r[ok], ratio, yscale="log", gridsize=(60, 40), mincnt=1,
                       norm=LogNorm(), cmap="Greys")  # fmt: skip
        fig.colorbar(hb, ax=ax, label="pairs per hexagon")
        ax.set_yscale("log")
        lo, hi = np.percentile(ratio, [1, 99])
        ax.set_ylim(lo / 1.5, hi * 1.5)
    if shells is not None and ok.any():
        c, med, q1, q3 = _shell_median(shells, r[ok], ratio)
        ax.errorbar(c, med, yerr=[med - q1, q3 - med], fmt="none", ecolor="C1", elinewidth=3,
                    capsize=4, zorder=3, label="25-75 % per shell")  # fmt: skip
        ax.plot(c, med, "o-", color="C3", mec="white", lw=2, ms=7, zorder=4,
                label="median per shell")  # fmt: skip
        resolution_axis(ax, float(shells.edges[0]), float(shells.edges[-1]))
    else:
        ax.set_xlabel("1/d / nm$^{-1}$")
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="I(B) = I(A)")
    ax.set_ylabel("I(B) / I(A)" + (" (B Wilson-scaled to A)" if "merged" in what else ""))
    _note(ax, f"{int(ok.sum())} pairs with both I > 0 (1-99 % of ratios in view); "
              f"{int((fin & ~ok).sum())} with I <= 0 have no ratio{_sampled(result)}")  # fmt: skip
    _outside_legend(ax, 3)
    _caption(fig, result, what)
    fig.tight_layout()
    return fig


def _hist(result) -> Any:
    """Histograms of I/sigma(I) of A and of B."""
    fig = _figure()
    ax = fig.add_subplot()
    if result.pairs is not None:
        xa, xb = result.pairs.I_over_sigma_a, result.pairs.I_over_sigma_b
        k = getattr(result.pairs, "isig_stride", 1)
        what = (f"I/σ(I) of at least 1 observation in {k}" if k > 1
                else "I/σ(I) of every observation")  # fmt: skip
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            xa = result.merged_a.I / result.merged_a.sigma if result.merged_a is not None else []
            xb = result.merged_b.I / result.merged_b.sigma if result.merged_b is not None else []
        what = "I/σ(I) of the merged reflections"
    xa = np.asarray(xa, np.float64)
    xb = np.asarray(xb, np.float64)
    xa = xa[np.isfinite(xa)]
    xb = xb[np.isfinite(xb)]
    both = np.concatenate([xa, xb])
    if both.size:
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 80)
        for x, name in ((xa, "A"), (xb, "B")):
            med = float(np.median(x)) if x.size else np.nan
            ax.hist(x, bins=bins, histtype="step", lw=1.4,
                    label=f"{name} ({x.size} values, median {med:.2f})")  # fmt: skip
        ax.axvline(0.0, color="k", lw=0.6)
        n_out = int(((both < lo) | (both > hi)).sum())
        _note(ax, f"I/σ < 0: A {int((xa < 0).sum())}, B {int((xb < 0).sum())}; "
                  f"{n_out} beyond the 0.5-99.5 % range not drawn", top=True)  # fmt: skip
    ax.set_xlabel("I / σ(I)")
    ax.set_ylabel("count per bin")
    _outside_legend(ax)
    _caption(fig, result, what)
    fig.tight_layout()
    return fig


def _cc(result) -> Any:
    """Correlations per resolution shell."""
    fig = _figure(size=(6.8, 5.4))
    ax = fig.add_subplot()
    rep = result.report
    obs = rep.get("observations")
    if obs is not None and result.obs_shells is not None:
        ax.plot(result.obs_shells.centres, [row["cc_I"] for row in obs["shells"]], "o--",
                mfc="none", ms=9, mew=1.5, color="k", zorder=5,
                label="CC(I) matched observations")  # fmt: skip
    merged = rep["merged"]
    shells = result.merged_shells
    series = [("a_vs_b", "cc", "CC merged A vs B")]
    series += [(k, "cc_half", f"CC1/2 {k.upper()}") for k in ("a", "b")]
    series += [(f"{k}_vs_reference", "cc", f"CC {k.upper()} vs reference") for k in ("a", "b")]
    for key, col, label in series:
        block = merged.get(key)
        if not block or "shells" not in block or col not in block["shells"][0]:
            continue
        ax.plot(shells.centres, [row[col] for row in block["shells"]], "s-", label=label)
    edges = [float(shells.edges[0]), float(shells.edges[-1])]
    if result.obs_shells is not None:
        edges = [min(edges[0], float(result.obs_shells.edges[0])),
                 max(edges[1], float(result.obs_shells.edges[-1]))]  # fmt: skip
    resolution_axis(ax, *edges)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylabel("correlation coefficient (at the shell centre)")
    _outside_legend(ax, 2)
    _caption(fig, result, "correlation per resolution shell")
    fig.tight_layout()
    return fig


def compare_figures(result) -> dict[str, Any]:
    """The comparison figures (matplotlib Figures on the Agg canvas) by file name.

    Every figure names A and B (file names) at the top; pairs are drawn as density
    (hexagonal bins) with the per-shell median on top; resolution axes are linear in 1/d,
    labelled in d (Angstrom) below and 1/d (nm^-1) above; legends sit below the axes;
    intensities of streams are in ADU, those of reflection lists "(scaled)"; pairs with
    I <= 0, which log axes cannot show, are counted on the figure.
    """
    return {
        "intensity_scatter.png": _scatter(result),
        "ratio_vs_resolution.png": _ratio(result),
        "isigma_hist.png": _hist(result),
        "cc_per_shell.png": _cc(result),
    }


def write_compare_plots(result, outdir: str | os.PathLike) -> list[Path]:
    """Write the figures of :func:`compare_figures` as PNG files into ``outdir`` (created if
    needed).

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
    for name, fig in compare_figures(result).items():
        path = out / name
        fig.savefig(path)
        files.append(path)
    return files


# --------------------------------------------------------------------------------------------
# streamfilter inspect --png
# --------------------------------------------------------------------------------------------


def _ring_legend(ax, radii, extra: list | None = None, fig=None, annulus: bool = True) -> None:
    """Legend below the box (below the figure with ``fig``): the circles, the hatched and
    crossed pixels, the prediction."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    r1, r2, r3 = radii
    handles = [
        Line2D([], [], color="red", ls="-", lw=1.5, label=f"peak disc r1 = {r1:g} px (solid)"),
        Line2D([], [], color="white", ls="--", lw=1.5,
               label=f"background annulus r2-r3 = {r2:g}-{r3:g} px (dashed)" if annulus
               else f"r2, r3 = {r2:g}, {r3:g} px (dashed; the background is the frame model)"),
        Patch(facecolor="none", edgecolor="orange", hatch="///",
              label="another reflection's peak disc (excluded)"),
        Line2D([], [], color="red", marker="x", ls="none", ms=7, label="bad pixel (masked)"),
        Line2D([], [], color="red", marker="+", ls="none", ms=10, mew=2,
               label="predicted position"),
        *(extra or []),
    ]  # fmt: skip
    style = {"fontsize": 7, "facecolor": "0.55", "framealpha": 1.0}
    if fig is not None:
        leg = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.17),
                         ncol=3, **style)  # fmt: skip
    else:
        leg = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                        ncol=2, **style)  # fmt: skip
    for text in leg.get_texts():
        text.set_color("white")


def _box_overlays(ax, r, x0: int, y0: int, neighbour, bad) -> None:
    """Circles r1 (solid), r2 and r3 (dashed) around the central pixel's centre, hatched
    neighbours' disc pixels, crossed bad pixels and the predicted position."""
    from matplotlib.patches import Circle, Rectangle

    cx, cy = r.centre_fs + 0.5, r.centre_ss + 0.5
    for radius, style, colour in zip(r.radii, ("-", "--", "--"), ("red", "white", "white"),
                                     strict=True):  # fmt: skip
        ax.add_patch(Circle((cx, cy), radius, fill=False, color=colour, ls=style, lw=1.3))
    for q, p in zip(*np.nonzero(neighbour), strict=True):
        ax.add_patch(Rectangle((x0 + p, y0 + q), 1, 1, fill=False, hatch="///",
                               edgecolor="orange", lw=0))  # fmt: skip
    qq, pp = np.nonzero(bad)
    ax.plot(x0 + pp + 0.5, y0 + qq + 0.5, "rx", ms=8, ls="none")
    ax.plot([r.fs], [r.ss], "r+", ms=12, mew=2)
    ax.set_xlabel("fs (data array, px)")
    ax.set_ylabel("ss (data array, px)")


def plot_inspect(result, path: str | os.PathLike) -> Any:
    """Draw the box (data-array coordinates) with the three rings and the pixel classes.

    The rings are circles of radius r1 (solid), r2 and r3 (dashed) around the central
    pixel's centre (the ring classes use integer distances from it); masked pixels are
    crossed, neighbours' disc pixels hatched, the predicted position is a ``+``; a legend
    below the box says so; the title names the stream and the frame.  Returns the Figure.
    """
    from streamfilter.analysis.inspect import PixelClass

    fig = _figure("--png", (6.4, 7.0))
    ax = fig.add_subplot(1, 1, 1)
    r = result
    w = r.half_width
    x0, y0 = r.centre_fs - w, r.centre_ss - w
    n = 2 * w + 1
    shown = np.where(r.classes == PixelClass.OFF_PANEL, np.nan, r.values)
    im = ax.imshow(shown, cmap="viridis", origin="upper", interpolation="nearest",
                   extent=(x0, x0 + n, y0 + n, y0))  # fmt: skip
    fig.colorbar(im, ax=ax, label="pixel value / ADU")
    _box_overlays(ax, r, x0, y0, r.classes == PixelClass.NEIGHBOUR,
                  r.classes == PixelClass.MASKED)  # fmt: skip
    _ring_legend(ax, r.radii)
    ax.set_title(
        f"{_name(r.stream)}, chunk {r.chunk} ({_name(r.filename)} {r.event}), crystal "
        f"{r.crystal}\n{r.h} {r.k} {r.l} on {r.panel}, --method crystfel: "
        f"I = {r.I:.1f}, σ(I) = {r.sigma:.1f} ADU ({r.status.name})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(str(path))
    return fig


def plot_inspect_method(result, path: str | os.PathLike) -> Any:
    """Draw ``inspect --method robust|profile``: the pixels with the disc the method sums,
    the background model under them, and (profile) the fitted model, background + I x
    profile, each with the same colour scale (ADU).  Returns the Figure."""
    from matplotlib.lines import Line2D

    r = result
    w = r.half_width
    x0, y0 = r.centre_fs - w, r.centre_ss - w
    n = 2 * w + 1
    extent = (x0, x0 + n, y0 + n, y0)
    panels = [("pixels", np.where(r.bad, np.nan, r.values)),
              ("background model", r.background)]  # fmt: skip
    if r.profile is not None:
        fitted = r.background + (r.fit_I * r.profile if np.isfinite(r.fit_I) else 0.0)
        panels.append(("model: background + I_fit × profile",
                       np.where(r.disc, fitted, r.background)))  # fmt: skip
    fig = _figure("--png", (4.0 * len(panels) + 1.0, 5.6))
    finite = np.concatenate([v[np.isfinite(v)] for _, v in panels])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]
    im = None
    for ax, (title, img) in zip(axes, panels, strict=True):
        im = ax.imshow(img, cmap="viridis", origin="upper", interpolation="nearest",
                       extent=extent, vmin=vmin, vmax=vmax)  # fmt: skip
        _box_overlays(ax, r, x0, y0, r.neighbour, r.bad)
        qq, pp = np.nonzero(r.disc)
        ax.plot(x0 + pp + 0.5, y0 + qq + 0.5, "o", ms=2.5, color="white", ls="none")
        ax.set_title(title, fontsize=9)
        if ax is not axes[0]:
            ax.set_ylabel("")
    fig.colorbar(im, ax=axes, label="ADU per pixel", shrink=0.8)
    disc = Line2D([], [], color="white", marker="o", ls="none", ms=4,
                  label="pixel summed" + (" and fitted" if r.profile is not None else ""))
    _ring_legend(axes[0], r.radii, [disc], fig=fig, annulus=False)
    fit = (f", profile fit {r.fit_I:.1f}" if r.profile is not None else "")
    fig.suptitle(
        f"{_name(r.stream)}, chunk {r.chunk} ({_name(r.filename)} {r.event}), crystal "
        f"{r.crystal}: {r.h} {r.k} {r.l} on {r.panel}, --method {r.method}\n"
        f"sum {r.sum_I:.1f}{fit}; written I = {r.I:.1f}, σ(I) = {r.sigma:.1f} ADU "
        f"({r.estimator or '-'}, {r.status.name})",
        fontsize=9,
    )
    fig.savefig(str(path), bbox_inches="tight")
    return fig


def plot_maxima(m, path: str | os.PathLike) -> None:
    """Draw the frame's panels (data-array coordinates) with the maxima circled in red and
    the predicted positions as small white dots."""
    fig = _figure("--png", (6.4, 5.6))
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
        f"{_name(m.stream)}, chunk {m.chunk}: {len(m)} maxima above "
        f"{m.threshold:g} ADU\n(red circles), predictions (blue dots)",
        fontsize=9,
    )
    fig.savefig(str(path))
