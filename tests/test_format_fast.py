"""The vectorised reflection-row formatter gives exactly the bytes of C printf.

``format_reflections`` builds whole tables as one byte matrix (``_format_rows_fast``); the
reference is ``ROW23_FORMAT % row`` per row (Python's ``%`` formats floats as C printf does:
the exact binary value rounded half-to-even, ``-0.00`` for negative values that round to
zero, ``nan``/``inf``, fields widened by values that do not fit).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamfilter.stream.tables import (
    ROW23_FORMAT,
    ReflectionTable,
    _format_rows_fast,
    format_reflections,
)

COLUMNS = ("h", "k", "l", "I", "sigma", "peak", "background", "fs", "ss", "panel")


def printf(table: ReflectionTable) -> bytes:
    rows = zip(*(getattr(table, c).tolist() for c in COLUMNS))
    return "".join(ROW23_FORMAT % r for r in rows).encode()


def make_table(hkl: np.ndarray, floats: np.ndarray, panels: list[str]) -> ReflectionTable:
    """A table from (N, 3) ints, (N, 6) floats (I, sigma, peak, background, fs, ss)."""
    hkl = np.asarray(hkl, np.int32).reshape(-1, 3)
    f = np.asarray(floats, np.float64).reshape(-1, 6)
    n = len(hkl)
    panel = np.array([panels[i % len(panels)] for i in range(n)], dtype=object)
    return ReflectionTable(
        hkl[:, 0], hkl[:, 1], hkl[:, 2], f[:, 0], f[:, 1], f[:, 2], f[:, 3], f[:, 4], f[:, 5], panel
    )


def assert_same(table: ReflectionTable) -> None:
    fast = _format_rows_fast(table)
    assert fast is not None
    assert fast == printf(table)
    assert format_reflections(table) == printf(table)


# Values at and around every kind of boundary of %10.2f / %6.1f / %4i.
# fmt: off
ADVERSARIAL = [
    0.0, -0.0, 0.004, -0.004, 0.005, -0.005, 0.0049999999999999, -0.0050000000000001,
    0.015, 0.025, 0.125, -0.125, 0.375, 2.675, 1.005, 1.015, 1.025, 0.045, 1.0e-300,
    -1.0e-300, 5e-324, -5e-324, 0.05, 0.95, 0.96, -0.96, 9.995, 99.995, 0.25, -0.25,
    0.35, 0.45, 12.25, -12.25, 12.35, 999.95, 9999.95, 99999.95, -99999.95, 9999.94,
    -9999.94, 99999.9, -9999.9, 100000.0, 123456.7, 999999.99, 9999999.99, 9999999.994,
    9999999.995, 99999999.99, -999999.99, -999999.995, -9999999.99, 1e7, -1e7, 1e8, 1e9,
    -1e9, 1e15, 1e300, -1e300, np.inf, -np.inf, np.nan, -np.nan, 123.456, -123.456,
    0.1, 0.2, 0.3, 1 / 3, -2 / 3, 4503599627370495.5, 2.0**52, 2.0**53 + 2, 7.0e-3,
]
# fmt: on


def test_adversarial_floats_in_every_column() -> None:
    vals = np.array(ADVERSARIAL)
    n = len(vals)
    rng = np.random.default_rng(7)
    hkl = rng.integers(-30, 30, size=(n, 3))
    for col in range(6):
        floats = rng.normal(0, 300, size=(n, 6))
        floats[:, 4:] = rng.uniform(0, 512, size=(n, 2))
        floats[:, 2] = np.abs(floats[:, 2])
        floats[:, col] = vals
        floats[:, 2] = np.where(np.isnan(floats[:, 2]), 1.0, floats[:, 2])  # no NaN peak
        assert_same(make_table(hkl, floats, ["p0", "p1"]))


def test_adversarial_miller_indices() -> None:
    ints = np.array([0, 1, -1, 9, -9, 99, -99, 999, -999, 1000, -1000, 9999, 10000,
                     -9999, 123456, -2**31, 2**31 - 1, 42, -42, 7])  # fmt: skip
    hkl = np.stack([ints, np.roll(ints, 3), np.roll(ints, 7)], axis=1)
    floats = np.tile([1.5, 2.25, 3.0, -0.5, 100.05, 200.15], (len(ints), 1))
    assert_same(make_table(hkl, floats, ["q0"]))


def test_panel_names_of_different_lengths_and_non_ascii() -> None:
    rng = np.random.default_rng(11)
    n = 200
    hkl = rng.integers(-50, 50, size=(n, 3))
    floats = rng.normal(0, 1000, size=(n, 6))
    floats[:, 2] = np.abs(floats[:, 2])
    assert_same(make_table(hkl, floats, ["p0", "panel_long_12", "x", "ß-ü", "a0"]))
    # and one row that needs printf amid them (splicing keeps the order)
    floats[77, 0] = 1e12
    floats[0, 4] = np.inf
    floats[n - 1, 5] = -np.inf
    assert_same(make_table(hkl, floats, ["p0", "panel_long_12", "x", "ß-ü", "a0"]))


def test_exact_ties_round_half_even_like_printf() -> None:
    # exact binary ties: printf rounds the exact value half-to-even
    ties = np.array(
        [0.125, 0.375, 0.625, 0.875, -0.125, 2.5 / 100, 1.25, -1.25, 12.25, 7.75, -7.75, 0.5]
    )
    floats = np.tile(ties[:, None], (1, 6))
    floats[:, 2] = np.abs(floats[:, 2])
    table = make_table(np.zeros((len(ties), 3)), floats, ["p0"])
    assert_same(table)
    assert b"      0.12 " in format_reflections(table)  # 0.125 -> 0.12 (half-even)
    assert b"      0.38 " in format_reflections(table)  # 0.375 -> 0.38


def test_empty_and_real_tables(ref_small) -> None:
    assert format_reflections(ReflectionTable.empty()) == b""
    from streamfilter.stream import read_stream

    n = 0
    with read_stream(ref_small / "lyso_dev_r345.stream") as r:
        for chunk in r:
            for x in chunk.crystals:
                t = x.reflections
                if t is not None and len(t):
                    assert format_reflections(t) == printf(t)
                    n += 1
    assert n > 20


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
anyfloat = st.one_of(
    finite,
    st.floats(min_value=-1e4, max_value=1e4),
    st.integers(-(10**9), 10**9).map(lambda i: i / 100),  # x.xx exactly in decimal
    st.integers(-(10**9), 10**9).map(lambda i: (i + 0.5) / 100),  # decimal ties x.xx5
    st.integers(-(10**6), 10**6).map(lambda i: (i + 0.5) / 10),  # decimal ties x.x5
    st.integers(-(2**20), 2**20).map(lambda i: i / 1024),  # exact binary values
    st.integers(-(2**30), 2**30).map(lambda i: i / 8),  # exact ties x.xx5 and x.x5
    st.sampled_from([np.nan, np.inf, -np.inf, -0.0, 0.0]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-20000, 20000),
            st.integers(-999, 9999),
            st.integers(-(2**31), 2**31 - 1),
            anyfloat,
            anyfloat,
            anyfloat.filter(lambda x: x == x),
            anyfloat,
            anyfloat,
            anyfloat,
        ),
        min_size=1,
        max_size=40,
    )
)
def test_hypothesis_rows_match_printf(rows) -> None:
    hkl = np.array([r[:3] for r in rows])
    floats = np.array([r[3:] for r in rows], np.float64)
    assert_same(make_table(hkl, floats, ["p0", "p12"]))


@settings(max_examples=200, deadline=None)
@given(x=finite)
def test_hypothesis_single_values_all_columns(x) -> None:
    floats = np.full((1, 6), x)
    assert_same(make_table(np.array([[1, -2, 3]]), floats, ["p0"]))


def test_non_integer_miller_indices_use_printf() -> None:
    t = make_table(np.array([[1, 2, 3]]), np.ones((1, 6)), ["p0"])
    t.h = t.h.astype(np.float64)
    assert _format_rows_fast(t) is None
    assert format_reflections(t) == printf(t)


def test_nan_peak_is_refused() -> None:
    t = make_table(np.array([[1, 2, 3]]), np.array([[1, 1, np.nan, 1, 1, 1]]), ["p0"])
    with pytest.raises(ValueError, match="NaN in the peak column"):
        format_reflections(t)
