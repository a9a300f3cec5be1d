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


# --------------------------------------------------------------------------------------------
# streamfilter inspect --png
# --------------------------------------------------------------------------------------------


def _inspect_figure():
    return _figure("--png", (6.4, 5.6))


def plot_inspect(result, path: str | os.PathLike) -> None:
    """Draw the box (data-array coordinates) with the three rings and the pixel classes.

    The rings are circles of radius r1, r2, r3 around the central pixel's centre (the ring
    classes use integer distances from it); masked pixels are crossed, neighbours' disc
    pixels hatched, the predicted position is a ``+``.
    """
    from matplotlib.patches import Circle, Rectangle

    from streamfilter.analysis.inspect import PixelClass

    fig = _inspect_figure()
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


def plot_maxima(m, path: str | os.PathLike) -> None:
    """Draw the frame's panels (data-array coordinates) with the maxima circled in red and
    the predicted positions as small white dots."""
    fig = _inspect_figure()
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
