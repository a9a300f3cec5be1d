"""robust and profile against the truth on real detector layouts and at a low background.

Targets (RMS(I - T) as a ratio to ``--method crystfel`` on the rows every method writes):
robust within 0.02 of the floor (the same disc summed with the true background), profile
below the floor, RMS((I - T)/sigma) within 1.00 +- 0.10, and at least as many rows written
as crystfel.  The ref-detectors sets (CSPAD 64 panels, AGIPD 128 panels, PILATUS CBF when
frames in CBF can be read) skip when
``../shared/data/ref-detectors`` is absent; the synthetic set at their background level
(a third of a photon per pixel, most pixels 0) always runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamfilter.analysis.accuracy import TruthComparison, compare_on_truth
from streamfilter.integrate.profile import ProfileOptions
from tests.conftest import REPO

REF_DETECTORS = Path(
    os.environ.get("STREAMFILTER_REF_DETECTORS", REPO.parent / "shared" / "data" / "ref-detectors")
)
REF_DETECTORS_MISSING = (
    "../shared/data/ref-detectors/{} not present (reference data of CrystFEL 0.12.0, not "
    "shipped; STREAMFILTER_REF_DETECTORS=DIR points at another copy)"
)


def _compare(stream: Path, truth: Path) -> TruthComparison:
    return compare_on_truth(
        stream, truth, perfect_background=True, extra={"profile": ("profile", ProfileOptions())}
    )


def _check_targets(cmp: TruthComparison) -> dict[str, float]:
    tables = cmp.tables()
    ov = {m: t.overall for m, t in tables.items()}
    ratio = {m: ov[m].rms_error / ov["crystfel"].rms_error for m in ov}
    assert ratio["robust"] <= ratio["perfect"] + 0.02, ratio
    assert ratio["profile"] < ratio["perfect"], ratio
    for m in ("robust", "profile"):
        assert ov[m].rms_z == pytest.approx(1.0, abs=0.10), (m, ov[m].rms_z)
        assert cmp.written[m].sum() >= cmp.written["crystfel"].sum()
    return ratio


def _reads_cbf() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("fabio", "streamfilter.frames.formats"))


@pytest.mark.parametrize("name", ["cspad", "agipd", "pilatus-cbf"])
def test_real_layout_robust_at_the_floor_and_profile_below_it(name):
    root = REF_DETECTORS / name
    stream, truth = root / f"{name}_r345.stream", root / "truth.h5"
    if not (stream.is_file() and truth.is_file()):
        pytest.skip(REF_DETECTORS_MISSING.format(name))
    if name == "pilatus-cbf" and not _reads_cbf():
        pytest.skip(
            "pilatus-cbf: this build has no CBF frame reader (fabio and "
            "streamfilter.frames.formats)"
        )
    ratio = _check_targets(_compare(stream, truth))
    # measured: cspad robust 0.960, profile 0.952, floor 0.960; agipd 0.974, 0.970, 0.974;
    # pilatus-cbf 0.927, 0.919, 0.925
    assert ratio["robust"] < 0.99


def test_low_background_robust_is_unbiased_and_profile_beats_the_floor(tmp_path):
    """At a third of a photon per pixel (77 % of the pixels 0, as on the real layouts) the
    background fit's clipping must not cut the Poisson tail: robust is unbiased on the weak
    reflections, at the floor overall, and profile fitting below it."""
    import numpy as np

    from streamfilter.synth import SynthConfig, generate

    config = SynthConfig(
        seed=3, n_frames=8, water_level=(1.0, 2.5), diffuse_level=(0.5, 1.2),
        flat_level=(0.05, 0.2), slope=0.0, intensity_scale=500.0,
    )  # fmt: skip
    ds = generate(tmp_path, config)
    cmp = _compare(ds.stream_path, ds.truth_path)
    _check_targets(cmp)
    rows = cmp.common()
    weak = rows & (cmp.T < 20)
    assert weak.sum() > 200
    bias = np.mean(cmp.I["robust"][weak] - cmp.T[weak])
    floor_bias = np.mean(cmp.I["perfect"][weak] - cmp.T[weak])
    # measured 0.14 photon; before the Poisson-aware clipping 1.06 (the background fit 25 %
    # low), and robust 0.962 against a floor of 0.940, profile 0.952 (now 0.946 and 0.938)
    assert abs(bias - floor_bias) < 0.4


def test_truth_frames_are_found_by_filename_and_event_and_panels_by_their_dims(tmp_path):
    """ref-detectors' truth layout: frames named as the streams name them, panels of a 4-D
    (frame, module, ss, fs) array picked by their fixed module index."""
    from types import SimpleNamespace

    import h5py
    import numpy as np

    from streamfilter.analysis.accuracy import panel_region, truth_background, truth_frame_index

    mean = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f["frames/filename"] = [b"a.h5", b"a.h5"]
        f["frames/event"] = [b"//0", b"//1"]
        f["background/mean"] = mean
        frame_of = truth_frame_index(f)
        assert frame_of("a.h5", "//1") == 1
        with pytest.raises(KeyError, match="b.h5"):
            frame_of("b.h5", "//0")
        bg = truth_background(f, 1)
    p = SimpleNamespace(min_fs=1, max_fs=3, min_ss=2, max_ss=3, dims=("%", 2, "ss", "fs"))
    np.testing.assert_array_equal(bg[panel_region(p)], mean[1, 2, 2:4, 1:4])
