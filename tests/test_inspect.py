"""``streamfilter inspect``: pixel classes and numbers of one reflection, local maxima."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamfilter.analysis.inspect import PixelClass, format_inspect, inspect_reflection
from streamfilter.analysis.maxima import inspect_maxima, local_maxima
from streamfilter.analysis.plots import plot_inspect
from streamfilter.cli import main as cli_main
from streamfilter.frames import FrameSource
from streamfilter.geometry import parse_geometry
from streamfilter.integrate import Status
from streamfilter.integrate.boxes import ring_classes
from streamfilter.integrate.rings import poisson_variance
from streamfilter.pipeline import integrate_frame
from streamfilter.stream import read_stream
from streamfilter.synth import SynthConfig, generate

# Seed 8, 4 frames: 2, 0, 1, 1 crystals.
CONFIG = SynthConfig(seed=8, n_frames=4, name="insp")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("inspect"), CONFIG)


def _stream_rows(ds):
    """(chunk, crystal, h, k, l, fs, ss, panel) of every written row."""
    out = []
    with read_stream(ds.stream_path) as r:
        for c in r:
            for n, x in enumerate(c.crystals):
                t = x.reflections
                for j in range(len(t)):
                    out.append(
                        (
                            c.index,
                            n,
                            int(t.h[j]),
                            int(t.k[j]),
                            int(t.l[j]),
                            t.fs[j],
                            t.ss[j],
                            str(t.panel[j]),
                        )
                    )
    return out


def _box_bad_and_crowding(ds, row, half=5):
    """Bad pixels in the row's box, and the distance to its nearest other prediction."""
    t = ds.truth
    chunk, _, _, _, _, fs, ss, _ = row
    cf, cs = int(fs), int(ss)
    bad = (t.dead | t.hot)[cs - half : cs + half + 1, cf - half : cf + half + 1]
    r = t.reflections
    same = r.frame == chunk
    d = np.hypot(r.fs[same] - fs, r.ss[same] - ss)
    return int(bad.sum()), np.sort(d)[1]


def _pick(ds, want_bad: bool, max_crowd: float | None = None, min_crowd: float | None = None):
    t = ds.truth
    for row in _stream_rows(ds):
        p = t.panel_names.index(row[7])
        if not (t.panel_min_ss[p] + 6 <= row[6] < t.panel_max_ss[p] - 6):
            continue
        n_bad, crowd = _box_bad_and_crowding(ds, row)
        if (n_bad > 0) != want_bad:
            continue
        if max_crowd is not None and crowd > max_crowd:
            continue
        if min_crowd is not None and crowd < min_crowd:
            continue
        return row
    raise AssertionError("no such row in the synthetic data")


def _printed(r):
    return tuple(f"{v:.2f}" for v in (r.I, r.sigma, r.peak, r.background))


def _crystfel_values(ds, chunk, crystal, hkl):
    """The CrystFEL-identical whole-frame integration's numbers for one reflection."""
    with read_stream(ds.stream_path) as rd:
        header = rd.header
        c = next(x for x in rd if x.index == chunk)
    det = parse_geometry(header.geometry_text)
    with FrameSource(det, [ds.directory]) as src:
        frame = src.load(c.filename, c.event)
    res = integrate_frame(
        "crystfel",
        frame, det, c.crystals, c.photon_energy_eV, header.int_radius, bandwidth=c.beam_bandwidth
    )[crystal]
    j = np.flatnonzero((res.h == hkl[0]) & (res.k == hkl[1]) & (res.l == hkl[2]))[0]
    return res.I[j], res.sigma[j], res.peak[j], res.background[j], res.status[j]


def _check_numbers_follow_from_classes(r):
    """I, sigma, peak and background are exactly what the classified pixels give."""
    v = r.values.astype(np.float64)
    pk = r.classes == PixelClass.PEAK
    bg = r.classes == PixelClass.BACKGROUND
    assert (pk.sum(), bg.sum()) == (r.n_peak, r.n_background)
    mean = v[bg].mean()
    var = ((v[bg] - mean) ** 2).mean()
    assert r.I == pytest.approx(v[pk].sum() - pk.sum() * mean, rel=1e-12, abs=1e-9)
    assert r.sigma**2 == pytest.approx(
        poisson_variance(np.array([r.I]), r.adu_per_photon)[0] + pk.sum() * var, rel=1e-12
    )
    assert r.peak == v[pk | bg].max()
    assert r.background == pytest.approx(mean, rel=1e-12)


def test_clean_reflection_shows_the_ring_table(synth):
    row = _pick(synth, want_bad=False, min_crowd=10.0)
    chunk, xtal, h, k, l = row[:5]
    r = inspect_reflection(synth.stream_path, chunk, (h, k, l))
    assert r.crystal == xtal and r.panel == row[7]
    np.testing.assert_array_equal(r.rings, ring_classes(3, 4, 5, 5))
    counts = r.counts()
    assert counts == {
        PixelClass.IGNORED: 56,
        PixelClass.PEAK: 29,
        PixelClass.BACKGROUND: 36,
        PixelClass.MASKED: 0,
        PixelClass.NEIGHBOUR: 0,
        PixelClass.OFF_PANEL: 0,
    }
    assert r.status == Status.OK
    assert (r.centre_fs, r.centre_ss) == (int(row[5]), int(row[6]))
    assert r.box_fs[0] == int(row[5]) - 5 and r.box_ss[-1] == int(row[6]) + 5
    _check_numbers_follow_from_classes(r)
    assert (r.I, r.sigma, r.peak, r.background, r.status) == _crystfel_values(
        synth, chunk, xtal, (h, k, l)
    )
    s = r.stream_row
    assert _printed(r) == tuple(f"{s[key]:.2f}" for key in ("I", "sigma", "peak", "background"))
    text = format_inspect(r)
    assert "counts: ignored 56, peak 29, background 36" in text
    assert "(identical)" in text


def test_masked_pixels_are_left_out(synth):
    row = _pick(synth, want_bad=True)
    r = inspect_reflection(synth.stream_path, row[0], row[2:5], crystal=row[1])
    n_bad, _ = _box_bad_and_crowding(synth, row)
    assert r.counts()[PixelClass.MASKED] == n_bad == int(r.bad.sum())
    assert r.status == Status.OK  # written rows have no bad pixel in the peak disc
    assert not (r.bad & (r.rings == 1)).any()
    lost_bg = int((r.bad & (r.rings == 2)).sum())
    neighbours_bg = int(((r.classes == PixelClass.NEIGHBOUR) & (r.rings == 2)).sum())
    assert r.n_background == 36 - lost_bg - neighbours_bg
    _check_numbers_follow_from_classes(r)
    assert (r.I, r.sigma, r.peak, r.background) == _crystfel_values(
        synth, row[0], row[1], row[2:5]
    )[:4]


def test_neighbours_discs_are_left_out(synth):
    row = _pick(synth, want_bad=False, max_crowd=6.0)
    r = inspect_reflection(synth.stream_path, row[0], row[2:5], crystal=row[1])
    counts = r.counts()
    assert counts[PixelClass.NEIGHBOUR] > 0
    assert counts[PixelClass.PEAK] + counts[PixelClass.BACKGROUND] < 29 + 36
    assert ((r.overlap > 0) == ((r.classes == PixelClass.NEIGHBOUR) | (r.rings == 1))).all()
    _check_numbers_follow_from_classes(r)
    assert _printed(r) == tuple(
        f"{r.stream_row[k]:.2f}" for k in ("I", "sigma", "peak", "background")
    )


def test_reflection_whose_box_leaves_the_panel(synth):
    t = synth.truth
    rf = t.reflections
    mine = (rf.panel == 0) & (rf.frame == 0) & (rf.crystal == 0)
    edge = np.minimum.reduce(
        [rf.fs, rf.ss, t.panel_max_fs[0] + 1 - rf.fs, t.panel_max_ss[0] + 1 - rf.ss]
    )
    i = np.flatnonzero(mine & (edge < 2.0))[0]
    r = inspect_reflection(synth.stream_path, 0, (rf.h[i], rf.k[i], rf.l[i]), crystal=0)
    assert r.status == Status.OFF_PANEL
    assert r.counts()[PixelClass.OFF_PANEL] >= 11 * 3
    assert math.isnan(r.I) and r.stream_row is None
    text = format_inspect(r)
    assert "off the panel" in text and "no row" in text


def test_png_is_written(synth, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed (the [plot] extra)")
    from matplotlib.image import imread

    row = _pick(synth, want_bad=True)
    r = inspect_reflection(synth.stream_path, row[0], row[2:5], crystal=row[1])
    out = tmp_path / "box.png"
    plot_inspect(r, out)
    img = imread(out)
    assert img.shape[2] in (3, 4) and img.shape[0] > 300
    assert img[..., :3].std() > 0.05


def test_cli_prints_and_reports_errors(synth, capsys, tmp_path):
    row = _pick(synth, want_bad=False, min_crowd=10.0)
    argv = [
        "inspect",
        str(synth.stream_path),
        "--chunk",
        str(row[0]),
        f"--hkl={row[2]},{row[3]},{row[4]}",
        "--png",
        str(tmp_path / "x.png"),
    ]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert f"reflection {row[2]} {row[3]} {row[4]} on panel {row[7]}" in out
    assert "counts: ignored 56, peak 29, background 36" in out
    assert (tmp_path / "x.png").stat().st_size > 1000

    assert cli_main(["inspect", str(synth.stream_path), "--chunk", "99", "--hkl=1,2,3"]) == 2
    assert "no chunk 99" in capsys.readouterr().err
    assert cli_main(["inspect", str(synth.stream_path), "--chunk", "1", "--hkl=1,2,3"]) == 2
    assert "no crystals" in capsys.readouterr().err
    assert cli_main(["inspect", str(synth.stream_path), "--chunk", "2", "--hkl=99,0,0"]) == 2
    assert "not predicted" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["inspect", str(synth.stream_path), "--chunk", "2", "--hkl=1,2"])
    # Frame 0 holds two crystals that both predict and write 3 -12 4.
    both = ["inspect", str(synth.stream_path), "--chunk", "0", "--hkl=3,-12,4"]
    assert cli_main(both) == 2
    assert "predicted for crystals 0, 1; choose one with --crystal" in capsys.readouterr().err
    assert cli_main([*both, "--crystal", "1"]) == 0
    assert "crystal 1: reflection 3 -12 4" in capsys.readouterr().out


def test_radii_option_changes_the_rings(synth):
    row = _pick(synth, want_bad=False, min_crowd=10.0)
    r = inspect_reflection(synth.stream_path, row[0], row[2:5], int_radius=(2, 3, 5))
    assert r.counts()[PixelClass.PEAK] == 13
    assert r.stream_row is not None and r.I != r.stream_row["I"]
    _check_numbers_follow_from_classes(r)


def test_local_maxima_rules():
    img = np.zeros((6, 7))
    img[1, 1] = 10.0  # a maximum
    img[4, 5] = 8.0  # a maximum on a bad pixel: never reported
    img[3, 3] = 5.0
    img[3, 4] = 6.0  # beats its neighbour at [3, 3]
    img[0, 6] = 4.0  # corner maximum, edges do not count as neighbours
    bad = np.zeros(img.shape, bool)
    bad[4, 5] = True
    ss, fs = local_maxima(img, bad, threshold=3.0)
    assert sorted(zip(ss.tolist(), fs.tolist(), strict=True)) == [(0, 6), (1, 1), (3, 4)]


def test_threshold_lists_spots_near_predictions(synth, capsys):
    m = inspect_maxima(synth.stream_path, 2, 150.0)
    assert len(m) > 10
    assert (m.value > 150).all() and (np.diff(m.value) <= 0).all()
    bad = synth.truth.dead | synth.truth.hot
    assert not bad[(m.ss - 0.5).astype(int), (m.fs - 0.5).astype(int)].any()
    assert (m.distance < 2.0).all() and (m.crystal == 0).all()
    assert m.written.mean() > 0.8
    assert (
        cli_main(
            [
                "inspect",
                str(synth.stream_path),
                "--chunk",
                "2",
                "--threshold",
                "150",
                "--limit",
                "5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"{len(m)} local maxima above 150 ADU")
    assert len(out) == 2 + 5 + 1


def test_reproduces_crystfel_rows_of_ref_small(ref_small):
    """CrystFEL's own rows: clean, next to the dead column (masked pixels), and crowded."""
    stream = ref_small / "lyso_dev_r345.stream"
    cases = {(4, (-11, 7, 3)): (0, 0), (0, (-7, -12, 3)): (11, 2), (3, (5, 14, 2)): (11, 11)}
    for (chunk, hkl), (n_masked, n_neighbour) in cases.items():
        r = inspect_reflection(stream, chunk, hkl)
        counts = r.counts()
        assert (counts[PixelClass.MASKED], counts[PixelClass.NEIGHBOUR]) == (n_masked, n_neighbour)
        assert r.stream_row is not None
        assert _printed(r) == tuple(
            f"{r.stream_row[k]:.2f}" for k in ("I", "sigma", "peak", "background")
        )
        _check_numbers_follow_from_classes(r)


# --------------------------------------------------------------------------------------------
# --event, --method robust/profile, the figures' legends
# --------------------------------------------------------------------------------------------


def test_event_selects_the_chunk(synth, capsys):
    """--event picks the chunk by its Event (``//2`` or ``2``), not by its position."""
    from streamfilter.analysis.inspect import chunk_of_event
    from streamfilter.errors import StreamfilterError

    with read_stream(synth.stream_path) as r:
        events = {c.event: c.index for c in r}
    for event, index in events.items():
        assert chunk_of_event(synth.stream_path, event) == index
        assert chunk_of_event(synth.stream_path, event.lstrip("/")) == index
        assert chunk_of_event(synth.stream_path, event, image="insp.h5") == index
    with pytest.raises(StreamfilterError, match="no chunk has Event //99"):
        chunk_of_event(synth.stream_path, "99")
    row = _pick(synth, want_bad=False, min_crowd=10.0)
    event = next(e for e, i in events.items() if i == row[0])
    hkl = f"--hkl={row[2]},{row[3]},{row[4]}"
    assert cli_main(["inspect", str(synth.stream_path), "--chunk", str(row[0]), hkl]) == 0
    by_chunk = capsys.readouterr().out
    assert cli_main(["inspect", str(synth.stream_path), "--event", event, hkl]) == 0
    assert capsys.readouterr().out == by_chunk


def _reintegrated_table(synth, tmp_path, method):
    import csv

    from streamfilter import reintegrate

    table = tmp_path / f"{method}.csv"
    reintegrate(str(synth.stream_path), str(tmp_path / f"{method}.stream"), method=method,
                table=str(table))  # fmt: skip
    with open(table) as f:
        return {(int(r["chunk"]), int(r["crystal"]), int(r["h"]), int(r["k"]), int(r["l"])): r
                for r in csv.DictReader(f) if r["status"] == "0"}  # fmt: skip


@pytest.mark.parametrize("method", ["robust", "profile"])
def test_method_shows_what_reintegrate_writes(synth, tmp_path, method):
    """inspect --method robust/profile gives the I, sigma and estimator reintegrate writes;
    the robust sum is the disc's pixels minus the background model shown; a profile fit
    uses a profile normalised to 1 over the disc."""
    from streamfilter.analysis.inspect_methods import format_method_inspect, inspect_method

    table = _reintegrated_table(synth, tmp_path, method)
    seen = set()
    rows = sorted(table.items())
    picked = [kr for e in ("sum", "profile") for kr in rows if kr[1]["estimator"] == e][::23]
    for key, row in picked:
        r = inspect_method(synth.stream_path, key[0], key[2:], crystal=key[1], method=method)
        assert f"{r.I:.3f}" == row["I"] and f"{r.sigma:.3f}" == row["sigma"]
        assert r.estimator == row["estimator"]
        seen.add(r.estimator)
        on_disc = r.values[r.disc].astype(np.float64) - r.background[r.disc]
        assert r.sum_I == pytest.approx(on_disc.sum(), abs=1e-6)
        if r.estimator == "sum":
            assert r.I == pytest.approx(r.sum_I, rel=1e-9, abs=1e-9)
        else:
            assert r.profile[r.disc].sum() == pytest.approx(1.0, abs=1e-9)
            assert r.I == pytest.approx(r.fit_I, rel=1e-9)
        assert f"from the {r.estimator} estimator" in format_method_inspect(r)
    assert seen == ({"sum"} if method == "robust" else {"sum", "profile"})


def _legend_texts(fig) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    return [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]


def test_figures_explain_their_marks_and_name_the_stream(synth, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed (the [plot] extra)")
    from streamfilter.analysis.inspect_methods import inspect_method
    from streamfilter.analysis.plots import plot_inspect_method

    row = _pick(synth, want_bad=True)
    r = inspect_reflection(synth.stream_path, row[0], row[2:5], crystal=row[1])
    fig = plot_inspect(r, tmp_path / "c.png")
    legend = " | ".join(_legend_texts(fig))
    for words in ("peak disc r1 = 3 px (solid)", "background annulus r2-r3 = 4-5 px (dashed)",
                  "another reflection's peak disc (excluded)", "bad pixel (masked)",
                  "predicted position"):  # fmt: skip
        assert words in legend
    assert "insp.stream, chunk" in fig.axes[0].get_title()
    rm = inspect_method(synth.stream_path, row[0], row[2:5], crystal=row[1], method="profile")
    fig = plot_inspect_method(rm, tmp_path / "p.png")
    assert "pixel summed and fitted" in _legend_texts(fig)
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "pixels", "background model", "model: background + I_fit × profile"]
    assert "insp.stream" in fig._suptitle.get_text()
    assert (tmp_path / "p.png").stat().st_size > 5000
