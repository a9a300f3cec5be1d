"""Integration accuracy against noise-free truth, per resolution shell.

The truth is a noise-free Bragg image per frame (``bragg`` in ref-small's
``lyso_dev_truth.h5`` and in :mod:`streamfilter.synth`'s ``<name>_truth.h5``): photons per
pixel of the whole data array, frame i = event ``//i``.  For a reflection, **T** is the true
Bragg signal summed over exactly the peak-disc pixels the integration uses (integer
``d2 <= r1**2`` around the pixel holding the prediction, bad pixels and pixels shared with
another predicted disc left out), so every method summing that disc is judged on the same
photons and only its background and noise differ.

:func:`compare_on_truth` runs CrystFEL's rings and the robust mode on the same predicted
reflections of a stream and tabulates, per shell, RMS(I - T), RMS((I - T)/sigma) and
mean(I - T) over the rows both write; the water-ring shell (3.5-2.95 A) is reported on its
own.  Intensities are in ADU; T is converted with the panel's ``adu_per_photon``.  Shells are
:class:`~streamfilter.analysis.shells.Shells` (:data:`DEFAULT_SHELLS`, edges in d from inf
to 0 A); 1/d is in nm^-1 (:func:`streamfilter.crystal.one_over_d`).

Coordinates: data-array (fs, ss) as in streams, pixel i spans [i, i + 1), centre i + 0.5;
arrays are indexed ``[ss, fs]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crystal import one_over_d
from ..integrate.boxes import central_pixels, gather_window, overlap_map
from .shells import Shells

__all__ = [
    "DEFAULT_SHELLS",
    "WATER_SHELL",
    "ShellStats",
    "AccuracyTable",
    "true_disc_counts",
    "true_counts_near",
    "accuracy_table",
    "summary_stats",
    "format_side_by_side",
    "TruthComparison",
    "compare_on_truth",
]

#: Shells of the accuracy tables, edges in d (Angstrom) inf, 6.0, 4.5, 3.5, 2.95, 2.6, 2.35,
#: 2.15, 2.0, 0; 3.5-2.95 A is the water-ring shell.
DEFAULT_SHELLS = Shells.from_d((math.inf, 6.0, 4.5, 3.5, 2.95, 2.6, 2.35, 2.15, 2.0, 0.0))
#: The water-ring shell, 3.5-2.95 A, reported separately.
WATER_SHELL = Shells.from_d((3.5, 2.95))


def true_disc_counts(
    bragg_panel: np.ndarray,
    centre_fs: np.ndarray,
    centre_ss: np.ndarray,
    r1: float,
    *,
    usable: np.ndarray | None = None,
    overlap: np.ndarray | None = None,
) -> np.ndarray:
    """True Bragg signal in each reflection's peak disc (the pixels the integration sums).

    Parameters
    ----------
    bragg_panel : np.ndarray
        ``(height, width)`` noise-free Bragg signal of one panel (photons or ADU), ``[ss, fs]``.
    centre_fs, centre_ss : np.ndarray
        int ``(N,)`` central pixel indices, panel-relative (``int(fs)``, ``int(ss)``).
    r1 : float
        Peak radius in pixels; the disc is integer ``d2 <= int(r1)**2`` as in CrystFEL.
    usable : np.ndarray, optional
        bool ``(height, width)``: pixels the integration may use (False for bad pixels).
    overlap : np.ndarray, optional
        int ``(height, width)`` :func:`~streamfilter.integrate.boxes.overlap_map` of all
        predicted reflections; pixels covered by more than one disc are left out.

    Returns
    -------
    np.ndarray
        float64 ``(N,)`` sums; pixels off the panel count 0.
    """
    r = int(r1)
    win, on = gather_window(np.asarray(bragg_panel, dtype=np.float64), centre_fs, centre_ss, r)
    d = np.arange(-r, r + 1)
    keep = (d[:, None] ** 2 + d[None, :] ** 2 <= r * r)[None] & on
    if usable is not None:
        keep &= gather_window(np.asarray(usable, dtype=bool), centre_fs, centre_ss, r, False)[0]
    if overlap is not None:
        keep &= gather_window(np.asarray(overlap), centre_fs, centre_ss, r, 0)[0] <= 1
    return np.where(keep, win, 0.0).sum(axis=(1, 2))


def true_counts_near(
    bragg: np.ndarray, fs: np.ndarray, ss: np.ndarray, radius: float
) -> np.ndarray:
    """True Bragg signal in the pixels whose centres lie within ``radius`` of (fs, ss).

    This is ref-small's ``obs_accuracy.txt`` definition (distance from the printed sub-pixel
    position, ``<=``), used to check the truth code against its published figures.

    Parameters
    ----------
    bragg : np.ndarray
        ``(height, width)`` array indexed ``[ss, fs]`` in the same coordinates as fs, ss.
    fs, ss : np.ndarray
        ``(N,)`` positions, pixel-corner convention.
    radius : float
        Pixels.
    """
    fs = np.asarray(fs, dtype=np.float64)
    ss = np.asarray(ss, dtype=np.float64)
    w = int(math.ceil(radius)) + 1
    win, on = gather_window(np.asarray(bragg, dtype=np.float64), np.floor(fs), np.floor(ss), w)
    d = np.arange(-w, w + 1, dtype=np.float64)
    cx = np.floor(fs)[:, None, None] + d[None, None, :] + 0.5
    cy = np.floor(ss)[:, None, None] + d[None, :, None] + 0.5
    inside = (cx - fs[:, None, None]) ** 2 + (cy - ss[:, None, None]) ** 2 <= radius * radius
    return np.where(inside & on, win, 0.0).sum(axis=(1, 2))


@dataclass
class ShellStats:
    """Accuracy of the reflections in one resolution shell.

    Attributes
    ----------
    label : str
        ``"inf-6.00"``-style d range in Angstrom, ``"all"`` or ``"water"``.
    d_max, d_min : float
        Shell limits in Angstrom (d_min <= d < d_max).
    n : int
        Reflections with finite I, sigma and T.
    rms_error : float
        RMS(I - T), same unit as I.
    rms_z : float
        RMS((I - T) / sigma); 1 when sigma is right.
    mean_error : float
        mean(I - T) (bias).
    """

    label: str
    d_max: float
    d_min: float
    n: int
    rms_error: float
    rms_z: float
    mean_error: float


@dataclass
class AccuracyTable:
    """Per-shell accuracy (see :func:`accuracy_table`)."""

    shells: list[ShellStats]
    overall: ShellStats
    water: ShellStats

    def rows(self) -> list[ShellStats]:
        """Shells, then the overall and water-ring rows."""
        return [*self.shells, self.overall, self.water]

    def format_table(self) -> str:
        """A fixed-width table for the terminal."""
        out = [f"{'shell (A)':>12s} {'n':>6s} {'RMS(I-T)':>9s} {'RMS(z)':>7s} {'mean(I-T)':>9s}"]
        for s in self.rows():
            out.append(
                f"{s.label:>12s} {s.n:6d} {s.rms_error:9.2f} {s.rms_z:7.3f} {s.mean_error:9.2f}"
            )
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (infinite d_max written as None)."""

        def clean(s: ShellStats) -> dict[str, Any]:
            d = asdict(s)
            for k, v in d.items():
                if isinstance(v, float) and not math.isfinite(v):
                    d[k] = None
            return d

        return {
            "shells": [clean(s) for s in self.shells],
            "overall": clean(self.overall),
            "water": clean(self.water),
        }


def _stats(label: str, d_max: float, d_min: float, err: np.ndarray, z: np.ndarray) -> ShellStats:
    n = int(err.size)
    if n == 0:
        return ShellStats(label, d_max, d_min, 0, math.nan, math.nan, math.nan)
    return ShellStats(
        label,
        d_max,
        d_min,
        n,
        float(np.sqrt(np.mean(err * err))),
        float(np.sqrt(np.mean(z * z))),
        float(np.mean(err)),
    )


def accuracy_table(
    I: np.ndarray,  # noqa: N803
    sigma: np.ndarray,
    T: np.ndarray,  # noqa: N803
    one_over_d: np.ndarray,
    shells: Shells = DEFAULT_SHELLS,
) -> AccuracyTable:
    """RMS(I - T), RMS((I - T)/sigma) and mean(I - T) per resolution shell.

    Parameters
    ----------
    I, sigma : np.ndarray
        Measured intensities and their sigma (same unit as T).  Rows with a non-finite I,
        sigma or T, or sigma <= 0, are left out.
    T : np.ndarray
        True values (e.g. :func:`true_disc_counts`).
    one_over_d : np.ndarray
        1/d of each reflection, nm^-1.
    shells : Shells
        Shell i holds ``d_min <= d < d_max`` (a value on the lowest edge is outside).

    Returns
    -------
    AccuracyTable
        One row per shell, ``overall`` and the ``water`` shell (3.5-2.95 A).
    """
    I, sigma, T = (np.asarray(a, dtype=np.float64) for a in (I, sigma, T))  # noqa: N806
    r = np.asarray(one_over_d, dtype=np.float64)
    ok = np.isfinite(I) & np.isfinite(sigma) & np.isfinite(T) & (sigma > 0) & (r > 0)
    err = I - T
    with np.errstate(divide="ignore", invalid="ignore"):
        z = err / sigma
    j = shells.assign(r, lowest_edge_inside=False)
    d_max, d_min = shells.d_max.tolist(), shells.d_min.tolist()
    rows = []
    for i, label in enumerate(shells.labels()):
        sel = ok & (j == i)
        rows.append(_stats(label, d_max[i], d_min[i], err[sel], z[sel]))
    overall = _stats("all", d_max[0], d_min[-1], err[ok], z[ok])
    wsel = ok & (WATER_SHELL.assign(r, lowest_edge_inside=False) == 0)
    water = _stats(
        "water", WATER_SHELL.d_max[0].item(), WATER_SHELL.d_min[0].item(), err[wsel], z[wsel]
    )
    return AccuracyTable(rows, overall, water)


def summary_stats(I: np.ndarray, sigma: np.ndarray, T: np.ndarray) -> dict[str, float]:  # noqa: N803
    """ref-small ``obs_accuracy.txt`` figures: n, CC(I, T), slope (least squares through 0),
    mean(I - T), RMS(I - T), RMS((I - T)/sigma), and median I/T for T > 200 (with its n)."""
    I, sigma, T = (np.asarray(a, dtype=np.float64) for a in (I, sigma, T))  # noqa: N806
    err = I - T
    strong = T > 200
    median = float(np.median(I[strong] / T[strong])) if strong.any() else math.nan
    return {
        "n": int(I.size),
        "cc": float(np.corrcoef(I, T)[0, 1]),
        "slope": float((I * T).sum() / (T * T).sum()),
        "mean_error": float(err.mean()),
        "rms_error": float(np.sqrt((err * err).mean())),
        "rms_z": float(np.sqrt(((err / sigma) ** 2).mean())),
        "n_strong": int(strong.sum()),
        "median_ratio_strong": median,
    }


def format_side_by_side(tables: Mapping[str, AccuracyTable], reference: str) -> str:
    """Per-shell RMS(I - T) and RMS(z) of several methods, with RMS ratios to ``reference``.

    Parameters
    ----------
    tables : mapping of method name to AccuracyTable
        All computed on the same rows.
    reference : str
        The method the ratios divide by (e.g. ``"crystfel"``).
    """
    names = list(tables)
    ref = tables[reference].rows()
    head = f"{'shell (A)':>12s} {'n':>6s}"
    for name in names:
        head += f" | {name:>10s} {'z':>5s}" + ("" if name == reference else f" {'ratio':>6s}")
    out = [head, "-" * len(head)]
    for i, r in enumerate(ref):
        line = f"{r.label:>12s} {r.n:6d}"
        for name in names:
            s = tables[name].rows()[i]
            line += f" | {s.rms_error:10.2f} {s.rms_z:5.2f}"
            if name != reference:
                ratio = s.rms_error / r.rms_error if r.rms_error > 0 else math.nan
                line += f" {ratio:6.3f}"
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Running the integrators against a truth file
# --------------------------------------------------------------------------------------------


@dataclass
class TruthComparison:
    """Per-reflection results of several methods on the same predicted reflections.

    Attributes
    ----------
    T : np.ndarray
        True Bragg signal in each reflection's peak disc (ADU).
    one_over_d : np.ndarray
        1/d, nm^-1.
    I, sigma, written : dict of str to np.ndarray
        Per method; ``written`` marks rows the method writes.
    frame, h, k, l : np.ndarray
        Frame index (truth row) and Miller indices, for inspection.
    """

    T: np.ndarray
    one_over_d: np.ndarray
    I: dict[str, np.ndarray] = field(default_factory=dict)  # noqa: E741
    sigma: dict[str, np.ndarray] = field(default_factory=dict)
    written: dict[str, np.ndarray] = field(default_factory=dict)
    frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    k: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    l: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # noqa: E741

    def common(self, methods: Sequence[str] | None = None) -> np.ndarray:
        """bool: rows every one of ``methods`` (default: all) writes."""
        methods = list(self.I) if methods is None else list(methods)
        out = np.ones(self.T.shape, dtype=bool)
        for m in methods:
            out &= self.written[m]
        return out

    def tables(
        self, methods: Sequence[str] | None = None, shells: Shells = DEFAULT_SHELLS
    ) -> dict[str, AccuracyTable]:
        """:func:`accuracy_table` of each method over the rows all of them write."""
        methods = list(self.I) if methods is None else list(methods)
        sel = self.common(methods)
        return {
            m: accuracy_table(
                self.I[m][sel], self.sigma[m][sel], self.T[sel], self.one_over_d[sel], shells
            )
            for m in methods
        }


def _frame_index(event: str | None) -> int:
    from ..frames import parse_event

    dims = parse_event(event).dims
    return int(dims[0]) if dims else 0


def truth_frame_index(truth: Any) -> Callable[[str, str | None], int]:
    """Map a chunk's (``Image filename``, ``Event``) to its frame (first axis) in a truth file.

    ref-detectors' truth files name their frames (``frames/filename``, ``frames/event``);
    ref-small's and synth's hold the frames of one file, frame i = event ``//i``.
    """
    if "frames/filename" not in truth:
        return lambda filename, event: _frame_index(event)

    def text(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    names = [text(v) for v in truth["frames/filename"][()]]
    events = [text(v) for v in truth["frames/event"][()]]
    index = {(n, e): i for i, (n, e) in enumerate(zip(names, events, strict=True))}

    def lookup(filename: str, event: str | None) -> int:
        key = (filename, event or "//")
        if key not in index:
            raise KeyError(f"frame {filename} {event or '//'} is not in the truth file")
        return index[key]

    return lookup


def panel_region(panel: Any) -> tuple:
    """Index of a panel's pixels in one frame of a truth array (the data array's layout
    with the frame axis, the geometry's ``%`` placeholder, removed), ``[..., ss, fs]``."""
    view: list[Any] = []
    for role in panel.dims:
        if role == "ss":
            view.append(slice(panel.min_ss, panel.max_ss + 1))
        elif role == "fs":
            view.append(slice(panel.min_fs, panel.max_fs + 1))
        elif role != "%":
            view.append(int(role))
    return tuple(view)


def truth_background(truth: Any, frame: int) -> np.ndarray:
    """Noise-free background (photons/pixel, whole data array) of a truth file's frame.

    Reads ref-detectors' layout (``background/mean``, frames in the data array's layout),
    ref-small's (``background/component_order``, ``polarisation_factor``) and
    :mod:`streamfilter.synth`'s (``coeffs.attrs['columns']``, the flat term not stored).
    """
    if "background/mean" in truth:  # ref-detectors: the mean itself, in the data's layout
        return np.asarray(truth["background/mean"][frame], dtype=np.float64)
    comps = truth["background/components"]
    coeffs = truth["background/coeffs"]
    if "background/component_order" in truth:
        order = [c.decode() if isinstance(c, bytes) else str(c)
                 for c in truth["background/component_order"][()]]  # fmt: skip
    else:
        order = [str(c) for c in coeffs.attrs["columns"]]
    c = coeffs[frame]
    shape = truth["bragg"].shape[1:]
    bg = np.zeros(shape, dtype=np.float64)
    for j, name in enumerate(order):
        bg += c[j] * (comps[name][()].astype(np.float64) if name in comps else 1.0)
    if "background/polarisation_factor" in truth:
        bg *= truth["background/polarisation_factor"][()]
    return bg


def compare_on_truth(
    stream: str | Path,
    truth: str | Path,
    *,
    radii: tuple[float, float, float] | None = None,
    options: Any = None,
    perfect_background: bool = False,
    max_chunks: int | None = None,
    search_dirs: Sequence[str | Path] = (),
    progress: Callable[[int], None] | None = None,
    extra: Mapping[str, tuple[str, Any]] | None = None,
) -> TruthComparison:
    """Integrate a stream's crystals with CrystFEL's rings and the robust mode and collect,
    for every predicted reflection, both results and the truth.

    Parameters
    ----------
    stream : path
        A stream whose frames and geometry are readable (the stream's own directory is
        searched first, then ``search_dirs``).
    truth : path
        HDF5 file with ``bragg`` (n_frames, ss, fs) photons; frame = first event index.
    radii : (r1, r2, r3), optional
        Default: the stream's ``--int-radius``, else 4,5,7.
    options : RobustOptions, optional
    perfect_background : bool
        Also add method ``"perfect"``: the same disc minus the **true** background (needs the
        background layout of ref-small or synth in ``truth``), the floor of any summation.
    max_chunks : int, optional
        Stop after this many chunks with crystals.
    extra : mapping of str to (method, options), optional
        More methods (names of :data:`streamfilter.integrate.METHODS` and their options,
        None for the defaults) to run on the same predicted reflections.

    Returns
    -------
    TruthComparison
        Methods ``"crystfel"``, ``"robust"`` (and ``"perfect"``), then those of ``extra``.
    """
    import h5py

    from ..integrate.robust import RobustOptions
    from ..pipeline import FrameIntegrator, Integration, config_for
    from ..stream import read_stream

    options = options or RobustOptions()
    stream = Path(stream)
    cols: dict[str, list[np.ndarray]] = {}

    def add(key: str, value: np.ndarray) -> None:
        cols.setdefault(key, []).append(np.asarray(value))

    with read_stream(stream) as reader, h5py.File(truth, "r") as tf:
        header = reader.header
        if radii is None:
            radii = header.int_radius or (4.0, 5.0, 7.0)
        radii = tuple(float(r) for r in radii)
        config = config_for(header, str(stream), data_roots=[str(d) for d in search_dirs])
        source = config.frame_source()
        detector = source.detector
        run = FrameIntegrator(detector, Integration("crystfel", radii))
        frame_of = truth_frame_index(tf)
        done = 0
        for chunk in reader:
            if not chunk.crystals:
                continue
            if max_chunks is not None and done >= max_chunks:
                break
            frame = source.load(chunk.filename, chunk.event)
            energy = chunk.photon_energy_eV
            predictions = run.predict(frame, chunk.crystals, energy, chunk.beam_bandwidth)
            base = run.integrate(frame, predictions, energy)
            rob = run.integrate(frame, predictions, energy, chunk.peaks, method="robust",
                                options=options)  # fmt: skip
            for name, (method, method_options) in (extra or {}).items():
                res = run.integrate(frame, predictions, energy, chunk.peaks, method=method,
                                    options=method_options)  # fmt: skip
                for r in res:
                    add(f"I_{name}", r.I)
                    add(f"sigma_{name}", r.sigma)
                    add(f"ok_{name}", r.written)
            fi = frame_of(chunk.filename, chunk.event)
            bragg = tf["bragg"][fi]
            bg_true = truth_background(tf, fi) if perfect_background else None
            _collect_frame(detector, frame, chunk, base, rob, bragg, bg_true, radii, energy, add)
            add("frame", np.full(sum(len(b.h) for b in base), fi))
            done += 1
            if progress is not None:
                progress(done)
        source.close()
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    out = TruthComparison(
        T=cat.get("T", np.zeros(0)),
        one_over_d=cat.get("q", np.zeros(0)),
        frame=cat.get("frame", np.zeros(0, np.int64)),
        h=cat.get("h", np.zeros(0, np.int32)),
        k=cat.get("k", np.zeros(0, np.int32)),
        l=cat.get("l", np.zeros(0, np.int32)),
    )
    methods = ["crystfel", "robust"] + (["perfect"] if perfect_background else [])
    methods += list(extra or {})
    for m in methods:
        out.I[m] = cat.get(f"I_{m}", np.zeros(0))
        out.sigma[m] = cat.get(f"sigma_{m}", np.zeros(0))
        out.written[m] = cat.get(f"ok_{m}", np.zeros(0, bool)).astype(bool)
    return out


def _collect_frame(
    detector: Any,
    frame: Any,
    chunk: Any,
    base: list[Any],
    rob: list[Any],
    bragg: np.ndarray,
    bg_true: np.ndarray | None,
    radii: tuple[float, float, float],
    energy: float,
    add: Callable[[str, np.ndarray], None],
) -> None:
    """T (and the perfect-background intensity) for every predicted reflection of a frame."""
    from ..integrate import Status

    panels = {p.name: p for p in detector.panels}
    r1 = radii[0]
    overlaps = {}
    for p in detector.panels:
        fs = [b.fs[b.panel == p.name] - p.min_fs for b in base]
        ss = [b.ss[b.panel == p.name] - p.min_ss for b in base]
        overlaps[p.name] = overlap_map(
            (p.height, p.width), np.concatenate(fs), np.concatenate(ss), r1
        )
    for xtal, b, r in zip(chunk.crystals, base, rob, strict=True):
        n = len(b.h)
        T = np.full(n, np.nan)  # noqa: N806
        perfect = np.full(n, np.nan)
        perfect_sigma = np.full(n, np.nan)
        for name in np.unique(b.panel.astype(str)):
            p = panels[name]
            sel = b.panel.astype(str) == name
            cfs, css = central_pixels(b.fs[sel] - p.min_fs, b.ss[sel] - p.min_ss)
            region = panel_region(p)
            g = p.adu_per_photon_at(energy)
            usable = ~np.asarray(frame.bad[name], dtype=bool)
            T[sel] = g * true_disc_counts(
                bragg[region], cfs, css, r1, usable=usable, overlap=overlaps[name]
            )
            if bg_true is not None:
                gross = true_disc_counts(
                    frame.data[name], cfs, css, r1, usable=usable, overlap=overlaps[name]
                )
                bg = g * true_disc_counts(
                    bg_true[region], cfs, css, r1, usable=usable, overlap=overlaps[name]
                )
                perfect[sel] = gross - bg
                perfect_sigma[sel] = np.sqrt(g * np.maximum(gross, g))  # Poisson, gross counts
        add("T", T)
        add("q", one_over_d(b.h, b.k, b.l, xtal.astar, xtal.bstar, xtal.cstar))
        add("h", b.h)
        add("k", b.k)
        add("l", b.l)
        add("I_crystfel", b.I)
        add("sigma_crystfel", b.sigma)
        add("ok_crystfel", b.written)
        add("I_robust", r.I)
        add("sigma_robust", r.sigma)
        add("ok_robust", r.written)
        if bg_true is not None:
            add("I_perfect", perfect)
            add("sigma_perfect", perfect_sigma)
            add("ok_perfect", b.status == Status.OK)


def stream_on_truth(
    stream: str | Path, truth: str | Path, radius: float | None = None
) -> dict[str, float]:
    """:func:`summary_stats` of a stream's own reflection rows against the truth.

    T is the true Bragg signal in the pixels whose centres lie within ``radius`` (default:
    the stream's r1) of each row's printed (fs, ss), in data-array coordinates
    (:func:`true_counts_near`): ref-small's ``obs_accuracy.txt`` definition.  Rows of all
    crystals of all chunks are pooled; T is in the truth's unit (photons).
    """
    import h5py

    from ..stream import read_stream

    I, sigma, T = [], [], []  # noqa: N806
    with read_stream(stream) as reader, h5py.File(truth, "r") as tf:
        if radius is None:
            radius = (reader.header.int_radius or (4.0, 5.0, 7.0))[0]
        frame_of = truth_frame_index(tf)
        for chunk in reader:
            rows = [x.reflections for x in chunk.crystals if x.reflections is not None]
            rows = [t for t in rows if len(t)]
            if not rows:
                continue
            bragg = tf["bragg"][frame_of(chunk.filename, chunk.event)]
            for t in rows:
                I.append(t.I)
                sigma.append(t.sigma)
                T.append(true_counts_near(bragg, t.fs, t.ss, radius))
    return summary_stats(np.concatenate(I), np.concatenate(sigma), np.concatenate(T))
