"""``compare`` holds one frame's crystals at a time: its memory does not grow with the streams.

The measure is tracemalloc's peak (every numpy and Python allocation, deterministic for a
given input, unlike the resident size of a process on a loaded machine).
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from streamfilter.analysis import compare as compare_mod
from streamfilter.analysis.compare import CompareOptions, compare_streams
from streamfilter.analysis.obsstats import Spill, exact_order_statistics
from streamfilter.stream import read_stream


def _copies(src, dst, n: int):
    """``n`` copies of ``src``'s chunks, each copy's frames under their own file name (so
    each pairing key has one chunk, whatever ``n``)."""
    with read_stream(src) as r:
        header = r.header.raw
        body = b"".join(c.raw for c in r)
    parts = [body.replace(b"Image filename: ", f"Image filename: copy{i}/".encode())
             for i in range(n)]  # fmt: skip
    dst.write_bytes(header + b"".join(parts))
    return str(dst)


def _peak_and_report(path: str, monkeypatch) -> tuple[int, dict, int]:
    held = [0]
    make_reader = compare_mod._Side.crystals_of

    def counting(self):
        read = make_reader(self)

        def wrapped(key):
            xtals = read(key)
            held[0] = max(held[0], sum(len(x) for x in xtals))
            return xtals

        return wrapped

    monkeypatch.setattr(compare_mod._Side, "crystals_of", counting)
    tracemalloc.start()
    try:
        res = compare_streams(path, path, CompareOptions(symmetry="4/mmm"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, res.report, held[0]


def test_compare_memory_does_not_grow_with_the_stream(ref_small, tmp_path, monkeypatch):
    """10x and 20x the stream (both past the merge's batch of 100 000 observations): the
    same observations held at once (one frame's) and the same peak of allocated memory
    within 20 %, while every observation is still matched and counted."""
    src = ref_small / "lyso_dev_r345.stream"
    small = _copies(src, tmp_path / "x10.stream", 10)
    big = _copies(src, tmp_path / "x20.stream", 20)
    peak_small, rep_small, held_small = _peak_and_report(small, monkeypatch)
    peak_big, rep_big, held_big = _peak_and_report(big, monkeypatch)
    obs_small, obs_big = rep_small["observations"], rep_big["observations"]
    assert obs_big["n_a"] == 2 * obs_small["n_a"] == obs_big["matched"]
    assert obs_big["frames_common"] == 2 * obs_small["frames_common"]
    assert held_big == held_small < obs_small["n_a"] / 100
    assert peak_big <= 1.2 * peak_small, (peak_small, peak_big)
    # the same figures: a stream repeated compares like the stream itself
    assert obs_big["overall"]["median_ratio_I"] == obs_small["overall"]["median_ratio_I"] == 1.0


def test_exact_order_statistics_equal_numpy_medians():
    """The disk-backed medians are numpy's, exactly, with ties, negatives and many blocks."""
    rng = np.random.default_rng(7)
    v = np.concatenate([rng.lognormal(0, 1, 50_000), -rng.lognormal(0, 2, 999),
                        np.full(3000, 1.25)])  # fmt: skip
    g = rng.integers(0, 3, v.size)
    spill = Spill([("g", "i8"), ("v", "f8")])
    rows = np.empty(v.size, spill.dtype)
    rows["g"], rows["v"] = g, v
    spill.append(rows)

    def values():
        for b in spill.blocks(size=7_000):
            yield b["g"], b["v"]

    ranks = {s: [int((g == s).sum()) // 2, 0, int((g == s).sum()) - 1] for s in range(3)}
    got = exact_order_statistics(values, ranks)
    for s, ks in ranks.items():
        ordered = np.sort(v[g == s])
        for k in ks:
            assert got[(s, k)] == ordered[k]
