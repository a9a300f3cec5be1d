"""A small stream for the merge conformance tests, written from integers with a fixed seed.

Every printed number is an exact decimal (integer hundredths, or vectors built from a
quaternion with + - * / and sqrt only), so the text is the same on every machine and
numpy version; its md5 is recorded in ``tests/data/merge/README.md`` together with the
process_hkl outputs recorded from it.

The stream: 26 chunks (format 2.3, CrystFEL 0.12.0 layout), one non-hit, two chunks with
two crystals, a tetragonal cell (a = b = 7.9 nm, c = 3.8 nm) in random orientations, photon
energies of 9-13 keV, resolution limits of 1.2-2.0 nm^-1 (reflections to 0.5 nm^-1 beyond),
and 60-110 reflections per crystal with I = true intensity x crystal scale + noise
(photons), sigma(I), peak values up to 4000 ADU, on two panels (p0, p1).
"""

from __future__ import annotations

import numpy as np

from tests.streamtext import HEADER_23

SEED = 20261208
N_CHUNKS = 26
A_NM, C_NM = 7.9, 3.8
REFL_HEADER = "   h    k    l          I   sigma(I)       peak background  fs/px  ss/px panel\n"


def _rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of the quaternion q (normalised here), by arithmetic only."""
    w, x, y, z = (q / np.sqrt(np.dot(q, q))).tolist()
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _true_intensities(rng: np.random.Generator) -> dict[tuple[int, int, int], int]:
    """One intensity (hundredths of a photon) per 4/mmm-unique reflection."""
    out = {}
    for h in range(0, 17):
        for k in range(0, h + 1):
            for l in range(0, 9):  # noqa: E741
                out[(h, k, l)] = int(rng.integers(0, 600_000))
    return out


def _asu_4mmm(h: int, k: int, l: int) -> tuple[int, int, int]:  # noqa: E741
    h, k = sorted((abs(h), abs(k)), reverse=True)
    return h, k, abs(l)


def _crystal(rng: np.random.Generator, truth: dict) -> str:
    rot = _rotation(rng.integers(-1000, 1001, 4).astype(np.float64))
    astar = rot @ np.array([1 / A_NM, 0.0, 0.0])
    bstar = rot @ np.array([0.0, 1 / A_NM, 0.0])
    cstar = rot @ np.array([0.0, 0.0, 1 / C_NM])
    limit = int(rng.integers(120, 201)) / 100  # nm^-1
    scale = int(rng.integers(50, 151))  # percent
    candidates = [(h, k, l) for h in range(-16, 17) for k in range(-16, 17)
                  for l in range(-8, 9)  # noqa: E741
                  if (h, k, l) != (0, 0, 0)
                  and (h * h + k * k) / A_NM**2 + l * l / C_NM**2 < (limit + 0.5) ** 2]
    n = int(rng.integers(60, 111))
    draw = np.argsort(rng.integers(0, 2**62, len(candidates)), kind="stable")[:n]
    chosen = sorted(candidates[i] for i in draw)
    rows = []
    for h, k, l in chosen:  # noqa: E741
        noise = int(rng.integers(-20_000, 20_001))
        i_cents = truth[_asu_4mmm(h, k, l)] * scale // 100 + noise
        sigma_cents = int(rng.integers(2_000, 30_001))
        peak_cents = int(rng.integers(500, 400_001))
        bg_cents = int(rng.integers(-500, 2_001))
        fs, ss = int(rng.integers(0, 1000)), int(rng.integers(0, 1000))
        panel = "p0" if ss < 500 else "p1"
        rows.append(f"{h:4d} {k:4d} {l:4d} {i_cents / 100:10.2f} {sigma_cents / 100:10.2f} "
                    f"{peak_cents / 100:10.2f} {bg_cents / 100:10.2f} {fs / 10:6.1f} "
                    f"{ss / 10:6.1f} {panel}\n")
    return (
        "--- Begin crystal\n"
        f"Cell parameters {A_NM:.5f} {A_NM:.5f} {C_NM:.5f} nm, 90.00000 90.00000 90.00000 deg\n"
        f"astar = {astar[0]:+9.7f} {astar[1]:+9.7f} {astar[2]:+9.7f} nm^-1\n"
        f"bstar = {bstar[0]:+9.7f} {bstar[1]:+9.7f} {bstar[2]:+9.7f} nm^-1\n"
        f"cstar = {cstar[0]:+9.7f} {cstar[1]:+9.7f} {cstar[2]:+9.7f} nm^-1\n"
        "lattice_type = tetragonal\ncentering = P\nunique_axis = c\n"
        "profile_radius = 0.00200 nm^-1\n"
        "predict_refine/final_residual = 0.050 (0.1 0.2)\n"
        "predict_refine/det_shift x = 0.000 y = 0.000 mm\n"
        f"diffraction_resolution_limit = {limit:.2f} nm^-1 or {10 / limit:.2f} A\n"
        f"num_reflections = {n}\nnum_saturated_reflections = 0\n"
        "num_implausible_reflections = 0\n"
        "Reflections measured after indexing\n" + REFL_HEADER + "".join(rows)
        + "End of reflections\n--- End crystal\n"
    )


def build_merge_stream(seed: int = SEED, n_chunks: int = N_CHUNKS) -> bytes:
    """The stream's bytes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    truth = _true_intensities(rng)
    parts = [HEADER_23]
    for i in range(n_chunks):
        n_crystals = 0 if i == 7 else 2 if i in (4, 15) else 1
        energy_ev = int(rng.integers(900_000, 1_300_001)) / 100
        parts.append(
            "----- Begin chunk -----\nImage filename: merge_synth.h5\n"
            f"Event: //{i}\nImage serial number: {i + 1}\nhit = {int(n_crystals > 0)}\n"
            f"indexed_by = {'xgandalf' if n_crystals else 'none'}\nn_indexing_tries = 1\n"
            f"photon_energy_eV = {energy_ev:f}\nbeam_divergence = 0.00e+00 rad\n"
            "beam_bandwidth = 1.00e-08 (fraction)\naverage_camera_length = 0.100000 m\n"
            "num_peaks = 0\npeak_resolution = 0.000000 nm^-1 or 0.000000 A\n"
            "Peaks from peak search\n  fs/px   ss/px (1/d)/nm^-1   Intensity  Panel\n"
            "End of peak list\n"
        )
        parts.extend(_crystal(rng, truth) for _ in range(n_crystals))
        parts.append("----- End chunk -----\n")
    return "".join(parts).encode()


#: process_hkl's options, one recorded output each: name -> arguments (process_hkl's
#: spelling, which ``streamfilter merge`` takes too).  ``stat`` also records the --stat file.
CASES: dict[str, list[str]] = {
    "default": [],
    "y4mmm": ["-y", "4/mmm"],
    "pol_none": ["-y", "4/mmm", "--polarisation=none"],
    "no_pol": ["-y", "4/mmm", "--no-polarisation"],
    "pol_vert": ["-y", "4/mmm", "--polarisation=vert"],
    "pol_45deg70": ["-y", "4/mmm", "--polarisation=45deg70"],
    "y_m42m": ["-y", "-42m"],
    "y_m4m2": ["-y", "-4m2"],
    "y_m1": ["-y", "-1"],
    "min_res": ["-y", "4/mmm", "--min-res=6.5"],
    "max_adu": ["-y", "4/mmm", "--max-adu=2000"],
    "even": ["-y", "4/mmm", "--even-only"],
    "odd": ["-y", "4/mmm", "--odd-only"],
    "min_snr": ["-y", "4/mmm", "--min-snr=2"],
    "push_res": ["-y", "4/mmm", "--push-res=0.2"],
    "min_meas": ["-y", "4/mmm", "--min-measurements=4"],
    "start_stop": ["-y", "4/mmm", "--start-after=3", "--stop-after=10"],
    "scale": ["-y", "4/mmm", "--scale"],
    "stat": ["-y", "mmm", "--stat=STAT"],
    "min_cc": ["-y", "4/mmm", "--min-cc=0.975", "--stat=STAT"],
    "scale_stat_min_cc": ["-y", "-4m2", "--scale", "--min-cc=0.97", "--stat=STAT",
                          "--polarisation=none"],
    "combined": ["-y", "422", "--scale", "--min-snr=1", "--max-adu=3000", "--push-res=0.3",
                 "--min-res=7.0", "--odd-only", "--polarisation=vert50",
                 "--min-measurements=2"],
}
