"""The value-dependent parts of CrystFEL's bad-pixel map (``libcrystfel/src/image.c``,
``create_badmap`` and ``mark_flagged_pixels``): mask bit tests and ``flag_*`` values."""

from __future__ import annotations

import numpy as np

from ..geometry import Panel


def mask_dtype(stored: np.dtype, largest_bits: int) -> np.dtype:
    """Integer type to read a mask in: its own type when the bit masks fit (no widening
    copy), else int64 (CrystFEL reads masks as C int)."""
    if stored.kind in "ui" and stored.itemsize <= 8:
        usable = 8 * stored.itemsize - (1 if stored.kind == "i" else 0)
        if largest_bits < (1 << usable):
            return stored
    return np.dtype(np.int64)


def mask_bad(m: np.ndarray, goodbits: int, badbits: int) -> np.ndarray:
    """CrystFEL's test: bad if ``(m & goodbits) != goodbits`` or ``(m & badbits) != 0``."""
    bad = np.zeros(m.shape, dtype=bool)
    if badbits:
        bad |= (m & badbits) != 0
    if goodbits:
        bad |= (m & goodbits) != goodbits
    return bad


def flagged(values: np.ndarray, p: Panel, is_float: bool) -> np.ndarray:
    """Bad pixels that depend on the values: ``flag_*`` (float32 comparisons, as CrystFEL)
    and, for float datasets, non-finite values."""
    bad = ~np.isfinite(values) if is_float else np.zeros(values.shape, dtype=bool)
    for kind, v in p.flags:
        v32 = np.float32(v)
        if kind == "lessthan":
            bad |= values < v32
        elif kind == "morethan":
            bad |= values > v32
        else:
            bad |= np.rint(values) == v32
    return bad
