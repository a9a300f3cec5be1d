"""Where profile fitting stops helping: weak spots and unmodelled pixel gain errors.

    python bench/profile_limits.py          # about 30 s

Both experiments use a :mod:`streamfilter.synth` data set (seed 3, 8 frames, the accuracy
bench's) and print, like ``accuracy_ref_small.py``, RMS(I - T) over the rows every method
writes as a ratio to ``--method crystfel``, with z = RMS((I - T)/sigma) (1 when sigma is
honest) and the floor of summation (the disc minus the true background):

* **weak spots:** ``SynthConfig.intensity_scale`` from its default 2000 down to 40 (fewer and
  fewer spots reach robust I/sigma >= 10; a frame with fewer than 8 such spots is summed as
  with ``--method robust``);
* **pixel gain errors:** every pixel of the frames multiplied by a fixed random gain
  1 + N(0, spread) that the geometry does not know (``adu_per_photon`` stays 1).
"""

from __future__ import annotations

import tempfile

import h5py
import numpy as np

from streamfilter.analysis.accuracy import compare_on_truth
from streamfilter.integrate.profile import ProfileOptions
from streamfilter.integrate.robust import RobustOptions
from streamfilter.synth import SynthConfig, generate

SCALES = (2000.0, 300.0, 100.0, 40.0)
SPREADS = (0.0, 0.1, 0.3)


def _line(label: str, ds) -> str:
    """Compare every method on one generated set; one formatted line."""
    opts = RobustOptions()
    cmp = compare_on_truth(
        ds.stream_path, ds.truth_path, options=opts, perfect_background=True,
        extra={"profile": ("profile", ProfileOptions(opts))},
    )  # fmt: skip
    ov = {m: t.overall for m, t in cmp.tables().items()}
    c = ov["crystfel"]
    return (
        f"{label:>24s} {c.n:6d} {c.rms_z:6.2f} "
        f"{ov['robust'].rms_error / c.rms_error:7.3f} {ov['robust'].rms_z:5.2f} "
        f"{ov['profile'].rms_error / c.rms_error:8.3f} {ov['profile'].rms_z:5.2f} "
        f"{ov['perfect'].rms_error / c.rms_error:6.3f}"
    )


def _gain_errors(path, spread: float, seed: int = 7) -> None:
    """Multiply every frame by one fixed random per-pixel gain 1 + N(0, spread), in place."""
    with h5py.File(path, "r+") as f:
        data = f["/entry/data/data"]
        gain = 1 + np.random.default_rng(seed).normal(0.0, spread, data.shape[1:])
        for i in range(data.shape[0]):
            data[i] = np.rint(data[i] * gain).astype(data.dtype)


def main() -> int:
    header = (f"{'':>24s} {'rows':>6s} {'cf z':>6s} {'robust':>7s} {'z':>5s} "
              f"{'profile':>8s} {'z':>5s} {'floor':>6s}")
    print("synth seed 3, 8 frames; RMS(I - T) / crystfel's, z = RMS((I - T)/sigma)")
    print(header)
    for scale in SCALES:
        with tempfile.TemporaryDirectory(prefix="sf-limits-") as d:
            ds = generate(d, SynthConfig(seed=3, n_frames=8, intensity_scale=scale))
            print(_line(f"intensity_scale {scale:g}", ds), flush=True)
    for spread in SPREADS:
        with tempfile.TemporaryDirectory(prefix="sf-limits-") as d:
            ds = generate(d, SynthConfig(seed=3, n_frames=8))
            _gain_errors(ds.h5_path, spread)
            print(_line(f"gain spread {spread:g}", ds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
