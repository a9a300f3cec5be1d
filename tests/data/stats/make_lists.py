"""Write the small reflection lists behind check_hkl/compare_hkl's recorded outputs here.

Run from the repository root: ``python tests/data/stats/make_lists.py``.  It writes
``mono.hkl``, ``mono.hkl1``, ``mono.hkl2`` and ``mono.cell`` into this directory (committed;
the recorded ``*.dat``/``*.log`` outputs in README.md were made from them, so rewriting them
needs the recordings made again).  A C-centred monoclinic cell with unique axis b (point
group ``2/m_uab``), reflections to 3.2 A with a Wilson fall-off, 75 % of them present;
the second half-set is weaker (scale 0.8, B 5 A^2 larger), so Wilson scaling matters; a few
rows carry a negative I, a sigma of 0 (I/sigma infinite) and a NaN sigma, which check_hkl
leaves out of <I/sigma> or of every figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamfilter.analysis.hkl import ReflectionList, write_hkl
from streamfilter.analysis.symmetry import point_group, unpack_hkl
from streamfilter.crystal import Cell, centring_absent

HERE = Path(__file__).resolve().parent
CELL = Cell(30.0, 35.0, 40.0, 90.0, 105.0, 90.0, "C")
CELL_TEXT = """CrystFEL unit cell file version 1.0

lattice_type = monoclinic
centering = C
unique_axis = b

a = 30.0 A
b = 35.0 A
c = 40.0 A
al = 90.0 deg
be = 105.0 deg
ga = 90.0 deg
"""


def main() -> None:
    rng = np.random.default_rng(17)
    pg = point_group("2/m_uab")
    g = np.arange(-15, 16)
    h, k, l = (x.ravel() for x in np.meshgrid(g, g, g, indexing="ij"))  # noqa: E741
    r = CELL.one_over_d(h, k, l)
    ok = (r > 0) & (r <= 10 / 3.2) & ~centring_absent(h, k, l, "C")
    keys = np.unique(pg.asu_keys(h[ok], k[ok], l[ok]))
    keys = keys[rng.random(keys.size) < 0.75]
    h, k, l = unpack_hkl(keys)  # noqa: E741
    s2 = (CELL.one_over_d(h, k, l) / 20.0) ** 2
    truth = 2000.0 * np.exp(-2 * 20.0 * s2) * rng.exponential(1.0, keys.size)
    n1 = rng.integers(1, 5, keys.size)
    n2 = rng.integers(1, 5, keys.size)
    noise = 30.0 + 0.1 * truth
    i1 = truth + rng.normal(0, 1, keys.size) * noise
    i2 = (truth + rng.normal(0, 1, keys.size) * noise) * 0.8 * np.exp(-2 * 5.0 * s2)
    full = (i1 * n1 + i2 * n2) / (n1 + n2)
    sig = noise / np.sqrt(n1 + n2)
    sig[5], full[6], sig[7] = 0.0, -abs(full[6]) - 50.0, np.nan
    write_hkl(HERE / "mono.hkl", ReflectionList(h, k, l, full, sig, n1 + n2, None, "2/m_uab"),
              notes=["synthetic: tests/data/stats/make_lists.py"])  # fmt: skip
    for name, ii, nn, frac in (("mono.hkl1", i1, n1, 0.9), ("mono.hkl2", i2, n2, 0.85)):
        keep = rng.random(keys.size) < frac
        lst = ReflectionList(h, k, l, ii, noise / np.sqrt(nn), nn, None, "2/m_uab")
        write_hkl(HERE / name, lst.take(keep), notes=["synthetic: make_lists.py"])
    (HERE / "mono.cell").write_text(CELL_TEXT)


if __name__ == "__main__":
    main()
