"""``--method crystfel`` against CrystFEL 0.12.0 on real detector layouts (CSPAD: 64 rotated
ASICs, clen from an HDF5 header; AGIPD 1M: 128 tiles of 64 x 128 px in a 4-D array, per-frame
masks; PILATUS: mini-CBF files, byte-offset compressed, -1/-2 gap and bad markers), for both
of each set's streams: ``rings`` 3,4,5 and ``rings-grad`` 2,3,5.

The input is a copy whose ``I`` column is zeroed, so a chunk passed through unchanged cannot
match.  Re-integrated with the stream's own radii and method, as ``streamfilter reintegrate
IN -o OUT -g GEOM --method crystfel`` does:

==================== ========================== =========================
stream                rows identical (GSL)        without GSL (numpy plane)
==================== ========================== =========================
cspad_r345            13594 / 13598 (99.971 %)    the same (no plane)
cspad_grad235         13335 / 13340 (99.963 %)    13258 (99.385 %)
agipd_r345             8415 /  8417 (99.976 %)    the same (no plane)
agipd_grad235          8107 /  8109 (99.975 %)    7920 (97.669 %)
pilatus-cbf_r345      11622 / 11625 (99.974 %)    the same (no plane)
pilatus-cbf_grad235   11682 / 11685 (99.974 %)    11456 (98.04 %)
==================== ========================== =========================

The ``rings`` streams are re-integrated with GSL made unavailable (they fit no plane); the
``rings-grad`` ones with the system's GSL, and they are only checked when it is there (without
it numpy's last bits print 0.6-2.3 % of the rows 0.01 off on ``%.2f`` ties, and agipd writes
one row CrystFEL does not).

The rows that still differ are the same spots in both streams (cspad: 4 spots, agipd: 2): each
is predicted within ~1e-4 px of a pixel boundary (e.g. agipd 14,12,-13 at ss 152.000), below
what the 7 printed decimals of astar/bstar/cstar resolve, so CrystFEL's central pixel may be
the neighbour of ours (``test_conformance_crystfel``'s "pixel-boundary" ambiguity).  The 5th
cspad_grad235 row (8,-26,-17) is such a spot's neighbour.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamfilter import reintegrate
from streamfilter.integrate import gsl, plane
from streamfilter.stream import read_stream
from streamfilter.stream.tables import ROW23_FORMAT
from tests.conftest import ref_detector_set

GEOMETRY = {
    "cspad": "cspad-cxiformat.geom",
    "agipd": "agipd_1m.geom",
    "pilatus-cbf": "pilatus6m-crop.geom",
}
STREAMS = [(name, kind) for name in GEOMETRY for kind in ("r345", "grad235")]
I_FIELD = slice(15, 25)  # "%4i %4i %4i %10.2f": the I column of CrystFEL's rows


def zero_intensities(src, dst) -> int:
    """Copy ``src`` with every reflection row's I set to 0.00; returns the rows changed."""
    n, inside = 0, False
    with open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            if line.startswith(b"Reflections measured after indexing"):
                inside = True
            elif line.startswith(b"End of reflections"):
                inside = False
            elif inside and not line.lstrip().startswith(b"h "):
                float(line[I_FIELD])  # a fixed-width row, as CrystFEL writes them
                line = line[: I_FIELD.start] + b"%10.2f" % 0.0 + line[I_FIELD.stop :]
                n += 1
            out.write(line)
    return n


def rows_and_counters(path) -> tuple[dict, dict]:
    """(chunk, crystal, h, k, l) -> row text; (chunk, crystal) -> the crystal's counters.

    Chunks are keyed by image and event: the two streams' workers wrote them in another order.
    """
    rows, counters = {}, {}
    with read_stream(path) as reader:
        for chunk in reader:
            frame = (chunk.filename, chunk.event)
            for i, x in enumerate(chunk.crystals):
                t = x.reflections
                cols = [np.asarray(c).tolist() for c in
                        (t.h, t.k, t.l, t.I, t.sigma, t.peak, t.background, t.fs, t.ss, t.panel)]
                for r in zip(*cols, strict=True):
                    rows[(*frame, i, *r[:3])] = ROW23_FORMAT % tuple(r)
                counters[(*frame, i)] = (x.num_reflections, x.num_saturated_reflections,
                                         x.num_implausible_reflections, len(t))  # fmt: skip
    return rows, counters


@pytest.fixture(scope="module", params=STREAMS, ids=[f"{n}_{k}" for n, k in STREAMS])
def conformance(request, tmp_path_factory):
    name, kind = request.param
    folder = ref_detector_set(name)
    stream = folder / f"{name}_{kind}.stream"
    tmp = tmp_path_factory.mktemp(f"{name}_{kind}")
    zeroed, out = tmp / "zeroed.stream", tmp / "out.stream"
    assert zero_intensities(stream, zeroed) > 1000
    with pytest.MonkeyPatch.context() as mp:
        if kind == "r345":  # no plane: must not need GSL (the environment reaches workers)
            mp.setenv(gsl.ENV, "off")
        gsl.reset()
        summary = reintegrate(
            str(zeroed), str(out), method="crystfel", geometry=str(folder / GEOMETRY[name]),
            data_roots=[str(folder)], strict=True,
        )  # fmt: skip
        solver = plane.plane_solver()
    gsl.reset()
    assert not summary.passed_through and not summary.failed
    return f"{name}_{kind}", solver, rows_and_counters(stream), rows_and_counters(out)


def test_rows_identical_to_crystfels(conformance):
    name, solver, (theirs, _), (mine, _) = conformance
    same = sum(mine.get(k) == v for k, v in theirs.items())
    figure = f"{name}: {same}/{len(theirs)} rows identical ({100 * same / len(theirs):.3f} %)"
    print(figure)
    if "grad" in name and not solver.startswith("GSL"):
        pytest.skip(f"{figure}; required only with GSL, the plane solver here is {solver}")
    assert same / len(theirs) >= 0.995
    assert len(theirs) - same <= 5  # what we reach: 99.96-99.98 %, the spots named above


def test_same_rows_and_counters(conformance):
    name, solver, (theirs, their_counts), (mine, my_counts) = conformance
    if "grad" in name and not solver.startswith("GSL"):
        # a plane's last bits can also tip bg_ok or I < -5 sigma (agipd: one row more)
        diff = len(mine.keys() ^ theirs.keys())
        pytest.skip(f"{name}: {diff} rows in one stream only; required only with GSL, the "
                    f"plane solver here is {solver}")
    assert mine.keys() == theirs.keys()
    assert my_counts == their_counts
    assert all(c[0] == c[3] for c in my_counts.values())  # num_reflections = rows written
