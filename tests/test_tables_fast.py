"""The vectorised fixed-width table parser against an independent token-by-token oracle.

The fast path (``FixedLayout``) must give exactly what splitting each row on whitespace and
converting every token gives, or hand the table to the general parser; a table that no parser
can read must raise ``RowError``.  Rows are CrystFEL's printf output, then mutated byte by byte
(seeded), so every structural check of the fast path is exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamfilter.stream.tables import (
    PEAK23,
    ROW23,
    RowError,
    _fast_table,
    parse_peaks,
    parse_reflections,
)

ROW = "%4i %4i %4i %10.2f %10.2f %10.2f %10.2f %6.1f %6.1f %s\n"
PEAK = "%7.2f %7.2f %10.2f  %10.2f   %s\n"
ALPHABET = np.frombuffer(b" -.0123456789e+x\t", dtype=np.uint8)


def _value(rng: np.random.Generator, scale: float) -> float:
    kind = rng.integers(8)
    if kind == 0:
        return 0.0
    if kind == 1:
        return -0.004  # prints as -0.00
    if kind == 2:
        return float(rng.choice([9999999.994, -999999.995, 99999.95, -9999.95, 1e9, -1e8]))
    return float(rng.normal(0, scale) * 10 ** rng.integers(0, 4))


def reflection_rows(rng: np.random.Generator, n: int, panels: tuple[str, ...]) -> bytes:
    out = []
    for _ in range(n):
        hkl = rng.integers(-60, 61, 3)
        if rng.random() < 0.05:
            hkl[rng.integers(3)] = rng.choice([-9999, 10000, -1000])  # overflowing %4i
        out.append(ROW % (*hkl, _value(rng, 100), abs(_value(rng, 10)), _value(rng, 500),
                          _value(rng, 50), rng.uniform(-5, 2000), rng.uniform(-5, 2000),
                          panels[rng.integers(len(panels))]))
    return "".join(out).encode()


def peak_rows(rng: np.random.Generator, n: int, panels: tuple[str, ...]) -> bytes:
    return "".join(PEAK % (rng.uniform(0, 1200), rng.uniform(0, 1200), rng.uniform(0, 10),
                           _value(rng, 300), panels[rng.integers(len(panels))])
                   for _ in range(n)).encode()


def oracle(block: bytes, kinds: str) -> list[list] | None:
    """Columns by splitting rows on whitespace; None when some row is not readable.

    ``kinds`` has one letter per column: i (int), f (float), s (name).  Like CrystFEL's
    sscanf, tokens past the last column are ignored.
    """
    cols: list[list] = [[] for _ in kinds]
    for line in block.split(b"\n")[:-1]:
        tok = line.split()
        if len(tok) < len(kinds):
            return None
        try:
            for c, k, t in zip(cols, kinds, tok):
                c.append(int(t) if k == "i" else float(t) if k == "f" else t.decode())
        except ValueError:
            return None
    return cols


def mutate(rng: np.random.Generator, block: bytes, n_bytes: int) -> bytes:
    buf = bytearray(block)
    for pos in rng.integers(0, len(buf), n_bytes):
        if buf[pos] != 10:  # keep the line structure; rows themselves get broken
            buf[pos] = int(rng.choice(ALPHABET))
    return bytes(buf)


def assert_columns(got: list[np.ndarray], want: list[list]) -> None:
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w, dtype=np.asarray(g).dtype))
        if np.asarray(g).dtype.kind == "f":  # -0.00 keeps its sign, as C's strtod
            assert np.array_equal(np.signbit(g), np.signbit(np.asarray(w, float)))


def reflection_columns(t) -> list[np.ndarray]:
    return [t.h, t.k, t.l, t.I, t.sigma, t.peak, t.background, t.fs, t.ss, t.panel]


@pytest.mark.parametrize("panels", [("p0", "p1"), ("p0a0", "p12a7", "q")])
def test_printf_rows_take_the_fast_path_and_equal_the_oracle(panels):
    rng = np.random.default_rng(11)
    for _ in range(50):
        block = reflection_rows(rng, int(rng.integers(1, 300)), panels)
        want = oracle(block, "iiiffffffs")
        assert want is not None
        fits = all(len(line) >= ROW23.fixed + 2 for line in block.split(b"\n")[:-1]) and \
            all(line[ROW23.fixed - 1:ROW23.fixed] == b" " for line in block.split(b"\n")[:-1])
        if fits and b"  10000" not in block and b"-9999 " not in block and b"-1000" not in block:
            assert _fast_table(block, ROW23) is not None, "printf rows must take the fast path"
        assert_columns(reflection_columns(parse_reflections(block, "2.3")), want)


def test_mutated_reflection_rows_equal_the_oracle_or_raise():
    rng = np.random.default_rng(5)
    fast_hits = 0
    for _case in range(1500):
        block = reflection_rows(rng, int(rng.integers(1, 12)), ("p0", "p1"))
        block = mutate(rng, block, int(rng.integers(1, 4)))
        want = oracle(block, "iiiffffffs")
        fast = _fast_table(block, ROW23)
        if fast is not None:
            fast_hits += 1
            assert want is not None, block
            assert_columns([*fast[0], fast[1]], want)
        if want is None:
            with pytest.raises(RowError):
                parse_reflections(block, "2.3")
        else:
            assert_columns(reflection_columns(parse_reflections(block, "2.3")), want)
    assert fast_hits > 50  # 91 measured: mutations that keep a printf row (a digit for a digit)


def test_mutated_peak_rows_equal_the_oracle_or_raise():
    rng = np.random.default_rng(6)
    for _case in range(1000):
        block = mutate(rng, peak_rows(rng, int(rng.integers(1, 12)), ("p0", "p1")),
                       int(rng.integers(0, 4)))
        want = oracle(block, "ffffs")
        fast = _fast_table(block, PEAK23)
        if fast is not None:
            assert want is not None, block
            assert_columns([*fast[0], fast[1]], want)
        if want is None:
            with pytest.raises(RowError):
                parse_peaks(block, "2.3")
        else:
            t = parse_peaks(block, "2.3")
            assert_columns([t.fs, t.ss, t.one_over_d, t.intensity, t.panel], want)


def test_structure_violations_leave_the_fast_path():
    row = ROW % (1, -2, 3, -12.5, 3.25, 100.0, -0.004, 12.3, 45.6, "p0")
    assert row.startswith("   1   -2    3     -12.50       3.25     100.00      -0.00   12.3")
    assert _fast_table(row.encode(), ROW23) is not None
    for old, new in (("    -12.50", "   --12.50"),   # two signs
                     ("    -12.50", "    -12 50"),   # no point
                     ("    -12.50", "    -1 .50"),   # space inside a number
                     ("  -2 ", " - 2 "),             # sign apart from its digits
                     ("  -2 ", "  2- "),             # sign after digits
                     ("  -2 ", "   - "),             # sign without digits
                     ("  12.3", "  1.23"),           # point in the wrong column
                     ("   1 ", "   1-"),             # no separator
                     (" p0\n", " \x010\n")):         # control byte in the name
        bad = row.replace(old, new, 1)
        assert bad != row and len(bad) == len(row), (old, new)
        assert _fast_table(bad.encode(), ROW23) is None, bad
