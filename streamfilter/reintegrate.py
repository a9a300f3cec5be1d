"""``streamfilter reintegrate``: re-integrate every reflection from its frame, rewrite the stream.

The library entry point is :func:`reintegrate`; the CLI only parses options.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence

import numpy as np

from .errors import StreamfilterError
from .pipeline import (
    DEFAULT_RADII,
    METHODS,
    TABLE_COLUMNS,
    ReintegrateSummary,
    add_provenance,
    config_for,
    run_chunks,
)
from .progress import byte_progress, input_size
from .stream import StreamWriter, is_same_file, read_stream


class _TableWriter:
    """Per-reflection diagnostics as CSV, written chunk by chunk (constant memory)."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "w", newline="")  # noqa: SIM115
        self._w = csv.writer(self._f)
        self._w.writerow(TABLE_COLUMNS)

    def write(self, diag: dict[str, np.ndarray] | None) -> None:
        if not diag:
            return
        cols = []
        for name in TABLE_COLUMNS:
            v = diag[name]
            if v.dtype.kind == "f":
                v = np.char.mod("%.3f", v)
            cols.append(v.tolist())
        self._w.writerows(zip(*cols))

    def close(self) -> None:
        self._f.close()


def reintegrate(input_path: str, output_path: str, *, method: str = "crystfel",
                int_radius: tuple[float, float, float] | None = None,
                background: str | None = None, geometry: str | None = None,
                data_roots: Sequence[str] = (), jobs: int = 1, dask: str | None = None,
                table: str | None = None, strict: bool = False, keep_going: bool = False,
                quiet: bool = True, batch_size: int = 8) -> ReintegrateSummary:
    """Re-integrate ``input_path`` into ``output_path`` (``-`` for stdin/stdout).

    Every chunk with crystals has its frame loaded once; every crystal's reflection table and
    counters are replaced; all other bytes are copied.  A chunk whose frame cannot be read is
    copied unchanged and listed in the summary (``strict=True`` makes that an error).
    Output goes to a temporary file renamed at the end.

    Parameters
    ----------
    method : ``"crystfel"`` or ``"robust"``
    int_radius : (r1, r2, r3) pixels; default: the stream's own ``--int-radius``, else 4,5,7
    background : robust background model (see ``streamfilter reintegrate --help``)
    geometry : geometry file overriding the stream's embedded one
    data_roots : extra directories in which to look for the frames
    jobs : worker processes (``-j``); ``dask``: ``"local"`` or a scheduler address
    table : write per-reflection diagnostics (CSV) to this file
    """
    if is_same_file(input_path, output_path):
        raise StreamfilterError(f"{output_path}: output is the input; refusing to overwrite")
    t0 = time.perf_counter()
    summary = ReintegrateSummary()
    with read_stream(input_path, keep_going=keep_going) as reader:
        config = config_for(reader.header, input_path, method=method, int_radius=int_radius,
                            background=background, geometry=geometry, data_roots=data_roots,
                            strict=strict, diagnostics=table is not None)
        summary.config = config
        table_writer = _TableWriter(table) if table else None
        try:
            with StreamWriter(output_path) as writer, \
                    byte_progress(input_size(input_path), "reintegrate", quiet) as bar:
                writer.write(add_provenance(reader.header, config))
                if dask is not None and input_size(input_path) is not None:
                    # Workers read their chunk ranges from the file; the client only the index.
                    from .distributed import dask_range_map
                    from .stream.index import build_index

                    results = dask_range_map(config, build_index(input_path), dask,
                                             jobs=max(jobs, 1))
                    for result in results:
                        writer.write(result.preceding)
                        writer.write(result.body)
                        summary.add(result)
                        if table_writer is not None:
                            table_writer.write(result.diagnostics)
                    return summary
                for chunk, result in run_chunks(reader, config, jobs=jobs, dask=dask,
                                                batch_size=batch_size):
                    writer.write(chunk.preceding)
                    writer.write(result.body)
                    summary.add(result)
                    if table_writer is not None:
                        table_writer.write(result.diagnostics)
                    bar.update(reader.bytes_read - bar.n)
                writer.write(reader.trailer)
        finally:
            if table_writer is not None:
                table_writer.close()
            summary.seconds = time.perf_counter() - t0
    return summary


ROBUST_HELP = """\
methods:
  crystfel  reproduces indexamajig's rings integration number for number (CrystFEL 0.12):
            re-predicts every reflection from astar/bstar/cstar, photon energy, det_shift and
            the geometry; peak disc d^2 <= r1^2, background annulus r2^2 <= d^2 <= r3^2 around
            the pixel holding the prediction; overlap mask of all predicted reflections; flat
            mean background (plane with -grad, taken from the stream's --integration); sigma
            with the Poisson term from adu_per_photon; drops I < -5 sigma. -sat keeps
            saturated reflections.
  robust    see streamfilter.integrate.robust: the same peak disc r1, a background estimated
            from a wider annulus with neighbours' discs and found peaks masked, high-side
            clipping and a plane fit, partial rings near edges and bad pixels, and a sigma(I)
            that includes the uncertainty of the background estimate.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reintegrate", help="re-integrate every reflection from its HDF5 frame",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-integrate every reflection of every crystal from the frames the "
        "stream references and write a stream that partialator and process_hkl read as "
        "indexamajig's. Only reflection rows and num_* counters change.",
        epilog=ROBUST_HELP)
    p.add_argument("input", metavar="IN", help="input stream, - for stdin")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output, - for stdout")
    p.add_argument("--int-radius", metavar="R1,R2,R3",
                   help="ring radii in pixels (default: the stream's own, else "
                   + ",".join(f"{r:g}" for r in DEFAULT_RADII) + ")")
    p.add_argument("--method", choices=METHODS, default="crystfel",
                   help="integration method (default crystfel)")
    p.add_argument("--background", metavar="MODEL",
                   help="background model of --method robust (mean, plane, clip; see below)")
    p.add_argument("--data-root", action="append", default=[], metavar="DIR",
                   help="directory to look for the frames in (repeatable); the stream's own "
                   "directory is searched first")
    p.add_argument("-g", "--geometry", metavar="FILE",
                   help="geometry file (default: the one embedded in the stream)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes (default 1)")
    p.add_argument("--dask", metavar="SCHEDULER",
                   help="run on Dask: 'local' for a LocalCluster or a scheduler address")
    p.add_argument("--table", metavar="FILE", help="write per-reflection diagnostics (CSV)")
    p.add_argument("--strict", action="store_true",
                   help="a frame that cannot be read is an error (default: pass the chunk "
                   "through unchanged and count it)")
    p.add_argument("--keep-going", action="store_true",
                   help="copy malformed chunks verbatim instead of stopping")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def _radii(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        r = tuple(float(x) for x in text.split(","))
    except ValueError:
        r = ()
    if len(r) != 3 or not (0 < r[0] < r[1] <= r[2]):
        raise StreamfilterError(f"--int-radius {text!r}: expected three radii r1 < r2 <= r3")
    return r  # type: ignore[return-value]


def run(args: argparse.Namespace) -> int:
    s = reintegrate(args.input, args.output, method=args.method,
                    int_radius=_radii(args.int_radius), background=args.background,
                    geometry=args.geometry, data_roots=args.data_root, jobs=args.jobs,
                    dask=args.dask, table=args.table, strict=args.strict,
                    keep_going=args.keep_going, quiet=args.quiet)
    if not args.quiet:
        print(s.format(), file=sys.stderr)
    return 0
