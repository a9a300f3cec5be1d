"""``streamfilter info``: what a stream holds, counted in one pass without parsing tables."""

from __future__ import annotations

import dataclasses
import os
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from ..crystal import d_A
from ..progress import byte_progress, input_size
from .follow import Follow
from .marks import PASSED_THROUGH_KEY, reintegration_audit
from .model import Chunk
from .reader import StreamReader, read_stream

CELL_NAMES = ("a_nm", "b_nm", "c_nm", "alpha_deg", "beta_deg", "gamma_deg")


def _summary(values: array) -> dict[str, float] | None:
    """Median and spread of a sample: n, median, p25, p75, min, max."""
    if len(values) == 0:
        return None
    v = np.frombuffer(values, dtype=np.float64)
    p25, med, p75 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": float(med), "p25": float(p25), "p75": float(p75),
            "min": float(v.min()), "max": float(v.max())}


class _Counts:
    """What ``info`` counts, chunk by chunk: the counters and the values kept for medians."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.per_indexer: Counter[str] = Counter()
        self.resolution = array("d")
        self.cells = [array("d") for _ in CELL_NAMES]

    def add(self, chunk: Chunk) -> None:
        counts = self.counts
        counts["chunks"] += 1
        hit = chunk.hit
        n_peaks = chunk.n_peaks
        counts["peaks"] += n_peaks
        if hit == 1 or (hit is None and n_peaks > 0):
            counts["hits"] += 1
        crystals = chunk.crystals
        if crystals:
            counts["indexed_frames"] += 1
        if PASSED_THROUGH_KEY in chunk.keys:
            counts["passed_through"] += 1
        for xtal in crystals:
            counts["crystals"] += 1
            self.per_indexer[chunk.indexed_by or "unknown"] += 1
            counts["reflections"] += xtal.n_rows
            if xtal.resolution_limit is not None:
                self.resolution.append(xtal.resolution_limit)
            if xtal.cell is not None:
                for arr, value in zip(self.cells, xtal.cell):
                    arr.append(value)

    def line(self) -> str:
        """The counts so far in one line (``info --follow``'s live summary)."""
        c = self.counts
        n = c["chunks"]
        pct = (lambda x: f"{100.0 * x / n:.1f}%") if n else (lambda x: "-")
        return (f"chunks {n}, hits {c['hits']} ({pct(c['hits'])}), indexed frames "
                f"{c['indexed_frames']} ({pct(c['indexed_frames'])}), crystals "
                f"{c['crystals']}, reflections {c['reflections']}")


def stream_info(path: str | os.PathLike, *, quiet: bool = True, follow: Follow | None = None,
                live: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Counts and summaries of one stream (every key is listed in docs/commands/info.md).

    Reflections and peaks are counted from their rows without parsing numbers, so this runs
    at close to the speed of reading the file; memory stays constant apart from seven
    numbers per crystal kept for the medians.

    With ``follow`` the stream may still be being written (``info --follow``): it is read
    until it has not grown for ``follow.idle`` seconds, and ``live`` is called with the
    counts so far in one line (:meth:`_Counts.line`) each time the reader has caught up
    with the writer after new chunks came in.  The result is that of the finished stream.
    """
    seen = _Counts()
    if follow is not None and live is not None:
        said = [-1]

        def on_wait() -> None:
            if seen.counts["chunks"] != said[0]:
                said[0] = seen.counts["chunks"]
                live(seen.line())

        follow = dataclasses.replace(follow, on_wait=on_wait)
    size = None if follow is not None else input_size(str(path))
    with read_stream(path, follow=follow) as reader, byte_progress(
            size, "info", quiet or follow is not None) as bar:
        for chunk in reader:
            bar.update(reader.bytes_read - bar.n)
            seen.add(chunk)
        return _result(path, reader, seen)


def _result(path: str | os.PathLike, reader: StreamReader, seen: _Counts) -> dict[str, Any]:
    """The ``info`` object of a stream read to its end."""
    counts, cells = seen.counts, seen.cells
    h = reader.header
    audit = reintegration_audit(h)
    res = _summary(seen.resolution)
    if res is not None:
        # 1/d in nm^-1 -> d in Angstrom for the reader's convenience
        res["median_d_A"] = d_A(res["median"]) if res["median"] > 0 else float("inf")
    return {
        "path": str(path),
        "format_version": h.format_version,
        "crystfel_version": h.crystfel_version,
        "generated_by": h.generator,
        "command_line": h.command_line,
        "int_radius": list(h.int_radius) if h.int_radius else None,
        "integration_method": h.integration_method,
        "indexing_methods": h.indexing_methods,
        "has_geometry": h.geometry_text is not None,
        "has_cell": h.cell_text is not None,
        "concatenated_streams": len(reader.headers),
        "crlf": reader.crlf,
        "chunks": counts["chunks"],
        "hits": counts["hits"],
        "indexed_frames": counts["indexed_frames"],
        "crystals": counts["crystals"],
        "crystals_per_indexer": dict(seen.per_indexer),
        "reflections": counts["reflections"],
        "peaks": counts["peaks"],
        "resolution_limit_nm_inv": res,
        "cell": {n: _summary(a) for n, a in zip(CELL_NAMES, cells)},
        "bytes": reader.bytes_read,
        "incomplete_tail": None if reader.incomplete_tail is None
        else str(reader.incomplete_tail),
        "reintegrated_by": audit["line"] if audit else None,
        "reintegration_method": audit["method"] if audit else None,
        "chunks_reintegrated": (
            counts["indexed_frames"] - counts["passed_through"] if audit else None
        ),
        "chunks_passed_through": counts["passed_through"] if audit else None,
    }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable report of :func:`stream_info`."""
    lines = [f"{info['path']}"]
    lines.append(f"  format {info['format_version']}, written by "
                 f"{info['generated_by'] or 'an unknown program'}"
                 + (", CRLF line endings" if info["crlf"] else "")
                 + (f", {info['concatenated_streams']} concatenated streams"
                    if info["concatenated_streams"] > 1 else ""))
    if info["command_line"]:
        lines.append(f"  command line: {info['command_line']}")
    radius = info["int_radius"]
    lines.append("  integration: "
                 + (info["integration_method"] or "not given (CrystFEL default rings-nocen)")
                 + ", int-radius "
                 + (",".join(f"{r:g}" for r in radius) if radius else
                    "not given (CrystFEL default 4,5,7)")
                 + (" (indexamajig's, before re-integration)"
                    if info.get("reintegrated_by") else ""))
    if info.get("reintegrated_by"):
        lines.append(f"  re-integrated by: {info['reintegrated_by']}")
        passed = info["chunks_passed_through"]
        lines.append(
            f"  re-integration ({info['reintegration_method']}): "
            f"{info['chunks_reintegrated']} chunks with crystals re-integrated, {passed} "
            "passed through unchanged"
            + (" (NOT re-integrated: their rows are the input's)" if passed else "")
        )
    n = info["chunks"]
    pct = (lambda x: f"{100.0 * x / n:.1f}%") if n else (lambda x: "-")
    lines.append(f"  chunks {n}, hits {info['hits']} ({pct(info['hits'])}), indexed frames "
                 f"{info['indexed_frames']} ({pct(info['indexed_frames'])}), crystals "
                 f"{info['crystals']}")
    if info.get("incomplete_tail"):
        lines.append(f"  warning: {info['incomplete_tail']} (not counted)")
    if info["crystals_per_indexer"]:
        lines.append("  crystals per indexer: " + ", ".join(
            f"{k} {v}" for k, v in sorted(info["crystals_per_indexer"].items())))
    lines.append(f"  reflections {info['reflections']}, peaks {info['peaks']}")
    res = info["resolution_limit_nm_inv"]
    if res:
        lines.append(f"  resolution limit: median {res['median']:.2f} nm^-1 "
                     f"({res['median_d_A']:.2f} A), IQR {res['p25']:.2f}-{res['p75']:.2f} nm^-1")
    cell = info["cell"]
    if cell["a_nm"]:
        parts = []
        for name in ("a_nm", "b_nm", "c_nm", "alpha_deg", "beta_deg", "gamma_deg"):
            s = cell[name]
            parts.append(f"{name.split('_')[0]} {s['median']:.4g} "
                         f"(IQR {s['p75'] - s['p25']:.2g})")
        lines.append("  cell medians: " + ", ".join(parts) + " [nm, deg]")
    return "\n".join(lines)
