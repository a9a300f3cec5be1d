"""``streamfilter reintegrate``: re-integrate every reflection from its frame, rewrite the stream.

The library entry point is :func:`reintegrate`; the CLI only parses options.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from streamfilter.errors import StreamfilterError, StreamFormatError
from streamfilter.pipeline.config import (
    ReintegrateConfig,
    add_provenance,
    config_for,
)
from streamfilter.pipeline.engines import run_chunks
from streamfilter.pipeline.failures import (
    Allowance,
    FailedChunk,
    default_failed_path,
    remove_stale_failed,
    write_failed,
)
from streamfilter.pipeline.journal import (
    DEFAULT_INTERVAL,
    Checkpoint,
    InputIdentity,
    ResumableRun,
    clear_stale,
    journal_path,
    options_digest,
    partial_path,
    read_journal,
)
from streamfilter.pipeline.step import TABLE_COLUMNS, ChunkResult
from streamfilter.progress import byte_progress, input_size
from streamfilter.stream import (
    Follow,
    StreamHeader,
    StreamReader,
    StreamWriter,
    atomic_output,
    is_same_file,
    read_stream,
)

#: Frames with found peaks that ``reintegrate`` checks before it starts (``check_sample``).
CHECK_SAMPLE = 10


@dataclass
class ReintegrateSummary:
    """Counters of a run (summed over chunks) and the chunks passed through unchanged.

    ``failed`` holds a record of every chunk passed through unchanged, ``failed_path`` the
    file that lists them (None if there were none or the output is standard output and no
    ``failed`` file was asked for), ``allowance`` the run's ``--allow-failed``.
    """

    counters: Counter = field(default_factory=Counter)
    passed_through: list[str] = field(default_factory=list)
    seconds: float = 0.0
    config: ReintegrateConfig | None = None
    failed: list[FailedChunk] = field(default_factory=list)
    failed_path: str | None = None
    allowance: Allowance = field(default_factory=Allowance)
    check: Any = None  # the CheckResult of the geometry and frames (None: not checked)
    incomplete_tail: str | None = None  # the input ends inside its last chunk: what was left
    hints: Counter = field(default_factory=Counter)  # what to do about frames not found

    def add(self, result: ChunkResult) -> None:
        self.counters.update(result.counters)
        if result.passed_through:
            self.passed_through.append(result.passed_through)
        if result.failed is not None:
            self.failed.append(result.failed)
        if result.hint:
            self.hints[result.hint] += 1
        if result.incomplete_tail:
            self.incomplete_tail = result.incomplete_tail

    @property
    def n_failed(self) -> int:
        """Chunks passed through unchanged (with crystals, or whose text was unusable)."""
        return self.counters["passed_through"]

    @property
    def with_crystals(self) -> int:
        """Chunks with crystals: re-integrated ones plus those passed through."""
        return self.counters["frames_read"] + self.counters["passed_through"]

    @property
    def acceptable(self) -> bool:
        """No chunk failed, or no more than ``--allow-failed`` admits."""
        return self.allowance.admits(self.n_failed, self.with_crystals)

    def warning(self) -> str | None:
        """The warning for chunks not re-integrated (None if there are none)."""
        n = self.n_failed
        if not n:
            return None
        where = f"listed in {self.failed_path}" if self.failed_path else "see the summary"
        first = ""
        if self.failed:
            f = min(self.failed, key=lambda f: f.chunk)
            first = f"; first: chunk {f.chunk} (line {f.line}): {' '.join(f.reason.split())}"
        verdict = (
            f"within --allow-failed {self.allowance}"
            if self.acceptable
            else "the output is NOT fully re-integrated"
        )
        hints = "".join(f"\n  {k} frame file(s) not found. {h}" for h, k in self.hints.items())
        return (
            f"reintegrate: warning: {n} of {self.with_crystals} chunks with crystals were "
            f"not re-integrated and were copied unchanged ({where}); {verdict}{first}{hints}"
        )

    def format(self) -> str:
        from streamfilter.integrate import Status

        c = self.counters
        names = {int(s): s.name.lower() for s in Status}
        dropped = ", ".join(
            f"{names.get(int(k[7:]), k)} {v}"
            for k, v in sorted(c.items())
            if k.startswith("status_") and int(k[7:]) != 0 and v
        )
        rate = c["chunks"] / self.seconds if self.seconds > 0 else float("nan")
        passed = c["passed_through"]
        kept = f" ({c['reflections_passed']} reflection rows kept as they were)" if passed else ""
        lines = [
            f"reintegrate: {c['chunks']} chunks, {c['frames_read']} frames read and "
            f"re-integrated, {c['crystals']} crystals re-integrated, {c['no_crystals']} "
            "chunks without crystals",
            f"  reflections: {c['reflections_in']} in the re-integrated chunks' input, "
            f"{c['reflections_out']} written; not written: {dropped or 'none'}",
            f"  chunks passed through unchanged: {passed}{kept}",
            f"  time {self.seconds:.1f} s ({rate:.1f} chunks/s)",
        ]
        for p in self.passed_through[:20]:
            lines.append(f"    {p}")
        if len(self.passed_through) > 20:
            lines.append(f"    ... and {len(self.passed_through) - 20} more")
        if self.check is not None:
            lines.append("  geometry and frames checked against the stream's peaks: "
                         + self.check.message.replace("\n", "; "))  # fmt: skip
        if self.incomplete_tail:
            lines.append(f"  warning: {self.incomplete_tail}")
        return "\n".join(lines)



class _TableWriter:
    """Per-reflection diagnostics as CSV, written chunk by chunk (constant memory) to a binary
    file (a temporary or partial output)."""

    def __init__(self, f: BinaryIO, *, header: bool = True) -> None:
        self._f = f
        if header:
            self._rows([TABLE_COLUMNS])

    def write(self, diag: dict[str, np.ndarray] | None) -> None:
        if not diag:
            return
        cols = []
        for name in TABLE_COLUMNS:
            v = diag[name]
            if v.dtype.kind == "f":  # NaN (no old row, not integrated): an empty field
                v = np.where(np.isnan(v), "", np.char.mod("%.3f", v))
            cols.append(v.tolist())
        self._rows(zip(*cols))

    def _rows(self, rows: Iterable) -> None:
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        self._f.write(text.getvalue().encode())


def reintegrate(
    input_path: str,
    output_path: str,
    *,
    method: str = "profile",
    int_radius: tuple[float, float, float] | None = None,
    background: str | None = None,
    geometry: str | None = None,
    data_roots: Sequence[str] = (),
    jobs: int = 1,
    dask: str | None = None,
    table: str | None = None,
    strict: bool = False,
    keep_going: bool = False,
    quiet: bool = True,
    batch_size: int = 8,
    resume: bool = False,
    journal_every: float = DEFAULT_INTERVAL,
    allow_failed: str | Allowance | None = None,
    failed: str | None = None,
    warn: Callable[[str], None] | None = None,
    force: bool = False,
    check_sample: int = CHECK_SAMPLE,
    follow: Follow | None = None,
) -> ReintegrateSummary:
    """Re-integrate ``input_path`` into ``output_path`` (``-`` for stdin/stdout).

    Every chunk with crystals has its frame loaded once; every crystal's reflection table and
    counters are replaced; all other bytes are copied.  A chunk whose frame cannot be read is
    copied unchanged and listed in the summary (``strict=True`` makes that an error).
    Output goes to a temporary file renamed at the end, so an error or an interruption never
    leaves a file at ``output_path``.

    Parameters
    ----------
    method : ``"profile"`` (default), ``"robust"`` or ``"crystfel"``
    int_radius : (r1, r2, r3) pixels; default: the stream's own ``--int-radius``, else 4,5,7
    background : robust background model (see ``streamfilter reintegrate --help``)
    geometry : geometry file overriding the stream's embedded one
    data_roots : extra directories in which to look for the frames
    jobs : processes that integrate (``-j``): this one and a pool of ``jobs - 1`` workers;
        with ``dask="local"`` the LocalCluster's worker processes
    dask : ``"local"`` or a scheduler address
    table : write per-reflection diagnostics (CSV) to this file
    strict : a frame that cannot be read is an error
    keep_going : a chunk whose text cannot be used is copied verbatim and counted instead
        of stopping the run (every input chunk then comes out, rewritten or verbatim)
    resume : write ``OUT.partial`` plus a progress journal ``OUT.sfjournal`` (see
        :mod:`streamfilter.journal`), and continue from that journal if an earlier run with
        the same input and options was interrupted; the result is byte-identical to an
        uninterrupted run.  Needs a regular, uncompressed input file and a file output.
    journal_every : seconds between journal checkpoints (``resume`` only)
    allow_failed : how many chunks with crystals may be passed through unchanged for the
        run to count as complete (``summary.acceptable``): a count (``"5"``) or a
        percentage (``"5%"``); default none.  A run in which chunks with crystals exist but
        none was re-integrated is an error (no output is left) unless this admits them all.
    failed : file listing every chunk passed through unchanged (default ``OUT.failed``;
        none for standard output); written only when there are such chunks, and a stale
        one from an earlier run is removed
    warn : called with each warning about the run's set-up (default :func:`warnings.warn`)
    force : re-integrate even when the geometry or the frames do not match the stream
        (the check before the run, :func:`preflight`)
    check_sample : frames with found peaks that check looks at (0: no check)
    follow : read an input that is still being written (``--follow``,
        :class:`~streamfilter.stream.follow.Follow`): each chunk is re-integrated once its
        end line is there, and the run ends when the input has not grown for
        ``follow.idle`` seconds; the output is the same as a run on the finished input.
        The check before the run waits for its frames likewise.  Needs a regular,
        uncompressed input file; not with ``dask``.  With ``resume`` a checkpoint records
        the input as it was then, and the run resumes when the input has only grown since.
    """
    _refuse_overwrites(input_path, output_path, table)
    if follow is not None:
        _check_follow(input_path, dask)
    if resume:
        _check_resumable(input_path, output_path, table, dask)
    t0 = time.perf_counter()
    summary = ReintegrateSummary()
    if isinstance(allow_failed, str):
        try:
            allow_failed = Allowance.parse(allow_failed)
        except ValueError as e:
            raise StreamfilterError(f"--allow-failed {e}") from None
    summary.allowance = allow_failed or Allowance()
    failed_path = failed if failed is not None else default_failed_path(output_path)
    if failed_path is not None and (
        is_same_file(input_path, failed_path) or failed_path in (output_path, table)
    ):
        raise StreamfilterError(f"{failed_path}: --failed would overwrite the input or an output")
    try:
        with read_stream(input_path, keep_going=keep_going, follow=follow) as reader:
            config = config_for(
                reader.header,
                input_path,
                method=method,
                int_radius=int_radius,
                background=background,
                geometry=geometry,
                data_roots=data_roots,
                strict=strict,
                diagnostics=table is not None,
                keep_going=keep_going,
            )
            _check_geometry(config, reader.header, input_path, geometry)
            config.integration()  # refuses options the method does not use, before any output
            _check_crystfel_version(config, reader.header, input_path, warn or warnings.warn)
            summary.check = preflight(config, input_path, check_sample, force, follow)
            summary.config = config
            if resume:
                _run_resumable(
                    reader,
                    config,
                    summary,
                    input_path,
                    output_path,
                    table,
                    jobs=jobs,
                    batch_size=batch_size,
                    quiet=quiet,
                    interval=journal_every,
                    follow=follow is not None,
                )
            else:
                _run(
                    reader,
                    config,
                    summary,
                    input_path,
                    output_path,
                    table,
                    jobs=jobs,
                    dask=dask,
                    batch_size=batch_size,
                    quiet=quiet,
                    follow=follow is not None,
                )
                if output_path != "-":
                    clear_stale(output_path)  # an interrupted --resume run's leftovers
    finally:
        summary.seconds = time.perf_counter() - t0
    if failed_path is not None:
        if summary.failed:
            write_failed(failed_path, summary.failed, input_path)
            summary.failed_path = failed_path
        else:
            remove_stale_failed(failed_path)
    return summary


def preflight(
    config: ReintegrateConfig,
    input_path: str,
    sample: int,
    force: bool,
    follow: Follow | None = None,
) -> Any:
    """Do the geometry and the frames match the stream?  Measured on the first ``sample``
    frames with found peaks that can be read (:class:`streamfilter.pipeline.checks.RunCheck`:
    re-predicted reflections against the stream's found peaks, found peaks on bright pixels).

    Returns the :class:`~streamfilter.pipeline.checks.CheckResult` (None when nothing was
    checked: ``sample`` 0, or standard input, which cannot be read twice).  Raises
    :class:`StreamfilterError` naming the figures when they do not match, unless ``force``.
    Frames that cannot be read are left to the run (they are passed through and listed).
    With ``follow`` the check waits for its frames in an input still being written.
    """
    if sample <= 0 or input_path == "-":
        return None
    from streamfilter.pipeline.checks import sample_run

    result = sample_run(config, input_path, sample, follow=follow)
    if not result.ok and not force:
        raise StreamfilterError(
            f"{input_path}: the geometry or the frames do not match the stream; nothing was "
            f"written.\n{result.message}\nCheck -g/--geometry and --data-root "
            "(`streamfilter check` looks at every frame); --force re-integrates anyway"
        )
    return result


def _check_crystfel_version(
    config: ReintegrateConfig, header: StreamHeader, input_path: str, warn: Callable
) -> None:
    """``--method crystfel`` emulates CrystFEL 0.12; say so for a stream an older one wrote."""
    import re

    version = header.crystfel_version
    m = re.match(r"(\d+)\.(\d+)", version or "")
    if config.method == "crystfel" and m and (int(m[1]), int(m[2])) < (0, 12):
        warn(
            f"reintegrate: warning: {input_path} was written by CrystFEL {version}; "
            "--method crystfel emulates CrystFEL 0.12's integration rules, which may differ "
            "from that version's"
        )


def _refuse_empty(summary: ReintegrateSummary) -> None:
    """Chunks with crystals exist and none was re-integrated: an error (the caller is
    still inside its output's context, so no output is left), unless allowed."""
    c = summary.counters
    if c["passed_through"] and not c["frames_read"] and not summary.acceptable:
        raise StreamfilterError(
            f"no chunk was re-integrated: all {c['passed_through']} chunks with crystals "
            f"would be copied unchanged (first: {summary.passed_through[0]}); no output "
            "was written. Check --data-root, -g/--geometry and the paths in the geometry "
            "(mask files), or accept it with --allow-failed 100%"
        )


def _run(
    reader: StreamReader,
    config: ReintegrateConfig,
    summary: ReintegrateSummary,
    input_path: str,
    output_path: str,
    table: str | None,
    *,
    jobs: int,
    dask: str | None,
    batch_size: int,
    quiet: bool,
    follow: bool = False,
) -> None:
    """One pass over the input into temporary outputs renamed at the end.  A followed input
    grows: its size and number of frames at the start are no total for the progress."""
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(StreamWriter(output_path))
        table_writer = _TableWriter(stack.enter_context(atomic_output(table))) if table else None
        size, count = (None, None) if follow else (input_size(input_path), input_path)
        bar = stack.enter_context(byte_progress(size, "reintegrate", quiet, count=count))
        writer.write(add_provenance(reader.header, config))
        if dask is not None and input_size(input_path) is not None:
            # Workers read their chunk ranges from the file; the client only the index.
            # The last range's result carries the bytes after the last chunk.
            from streamfilter.pipeline.dask import dask_range_map
            from streamfilter.stream.index import build_index

            results = dask_range_map(config, build_index(input_path), dask, jobs=max(jobs, 1))
            trailer = b""
        else:
            results = _local_results(
                reader, config, bar, jobs=jobs, dask=dask, batch_size=batch_size
            )
            trailer = None
        for result in results:
            writer.write(result.preceding)
            writer.write(result.body)
            summary.add(result)
            if table_writer is not None:
                table_writer.write(result.diagnostics)
        writer.write(reader.trailer if trailer is None else trailer)
        if reader.incomplete_tail is not None:
            summary.incomplete_tail = str(reader.incomplete_tail)
        _refuse_empty(summary)


def _local_results(
    reader: StreamReader, config: ReintegrateConfig, bar: Any, **engine: Any
) -> Iterator[ChunkResult]:
    """Results of the process pool (or -j 1) in input order, with their preceding bytes."""
    for chunk, result in run_chunks(reader, config, **engine):
        result.preceding = chunk.preceding
        yield result
        bar.update(reader.bytes_read - bar.n)


# Messages of chunks passed through that a journal keeps (the counters are always complete).
_JOURNAL_MESSAGES = 1000


def _run_resumable(
    reader: StreamReader,
    config: ReintegrateConfig,
    summary: ReintegrateSummary,
    input_path: str,
    output_path: str,
    table: str | None,
    *,
    jobs: int,
    batch_size: int,
    quiet: bool,
    interval: float,
    follow: bool = False,
) -> None:
    """Like :func:`_run`, into ``OUT.partial`` with checkpoints in ``OUT.sfjournal``.

    A checkpoint is taken just before a chunk's new bytes are written: the output then
    holds everything before that chunk's begin line, and the input continues at that line.
    A followed input (``follow``) may have grown since the checkpoint: its journal records
    the input as it was then, and ``reader`` (which follows it) continues at that line.
    """
    from streamfilter import __version__

    identity = InputIdentity.of(input_path)
    # search_dirs[0] is the input's own directory: a run directory may move between runs
    options = dataclasses.replace(config, search_dirs=config.search_dirs[1:])
    digest = options_digest(
        {
            "config": dataclasses.asdict(options),
            "table": table is not None,
            "streamfilter": __version__,
        }
    )
    outputs = [output_path] + ([table] if table else [])
    record = read_journal(journal_path(output_path))
    got = InputIdentity(**record["input"]) if record is not None else None
    if got is not None and (
        (got.size, got.mtime_ns, got.head_sha256)
        == (identity.size, identity.mtime_ns, identity.head_sha256)
        or (follow and got.grown_into(input_path))
    ):  # checked before the run takes the partial files over (start() checks the rest)
        _check_position(input_path, record["checkpoint"]["position"], journal_path(output_path))
    size, count = (None, None) if follow else (identity.size, input_path)
    with (
        ResumableRun(outputs, identity, digest, interval=interval, growing=follow) as run,
        byte_progress(size, "reintegrate", quiet, count=count) as bar,
    ):
        cp = run.start()
        writer = StreamWriter(run.files[0])
        if cp is None:
            header_end = pos = len(reader.header.raw)
            writer.write(add_provenance(reader.header, config))
            source = reader
        else:
            source = _continue_reader(input_path, identity, cp, config.keep_going, reader, follow)
            header_end, pos = cp.position["header_end"], cp.position["offset"]
            summary.counters.update(cp.state.get("counters", {}))
            summary.passed_through.extend(cp.state.get("passed_through", []))
            summary.failed.extend(FailedChunk(*f) for f in cp.state.get("failed", []))
        table_writer = _TableWriter(run.files[1], header=cp is None) if table else None
        with contextlib.closing(source):
            for chunk, result in run_chunks(source, config, jobs=jobs, batch_size=batch_size):
                writer.write(chunk.preceding)
                pos += len(chunk.preceding)
                if run.due():
                    run.checkpoint(
                        {
                            "chunk": chunk.index,
                            "offset": pos,
                            "line": chunk.line_no,
                            "version": chunk.version,
                            "header_end": header_end,
                        },
                        {
                            "counters": dict(summary.counters),
                            "passed_through": summary.passed_through[:_JOURNAL_MESSAGES],
                            "failed": [f.as_list() for f in summary.failed],
                        },
                    )
                writer.write(result.body)
                pos += len(chunk.raw)
                summary.add(result)
                if table_writer is not None:
                    table_writer.write(result.diagnostics)
                bar.update(pos - bar.n)
            writer.write(source.trailer)
        if source.incomplete_tail is not None:
            summary.incomplete_tail = str(source.incomplete_tail)
        _refuse_empty(summary)


def _check_position(input_path: str, position: Any, journal: Any) -> None:
    """The journaled position must name a chunk's begin line in the input."""
    from streamfilter.stream.model import BEGIN_CHUNK

    fix = f"; delete {journal} to start afresh"
    kinds = {"header_end": int, "offset": int, "chunk": int, "line": int, "version": str}
    if not isinstance(position, dict) or any(
        not isinstance(position.get(k), t) for k, t in kinds.items()
    ):
        raise StreamfilterError(f"{journal}: not a valid journal (position){fix}")
    with open(input_path, "rb") as f:
        f.seek(position["offset"])
        if f.read(len(BEGIN_CHUNK)) != BEGIN_CHUNK:
            raise StreamfilterError(
                f"{journal}: byte {position['offset']} of {input_path} is not the beginning "
                f"of a chunk{fix}"
            )


def _continue_reader(
    input_path: str,
    identity: InputIdentity,
    cp: Checkpoint,
    keep_going: bool,
    reader: StreamReader,
    follow: bool,
) -> StreamReader:
    """A reader over the input from the journaled chunk on (the header is read too); for a
    followed input, ``reader`` (which follows it) moved there."""
    from streamfilter.stream.index import read_range_bytes

    at = cp.position
    if follow:
        reader.continue_at(at["offset"], at["chunk"], at["line"])
        reader.version = at["version"]
        return reader
    reader = read_range_bytes(
        input_path,
        at["header_end"],
        at["offset"],
        identity.size,
        at["chunk"],
        at["line"],
        keep_going=keep_going,
    )
    reader.version = at["version"]
    return reader


def _refuse_overwrites(input_path: str, output_path: str, table: str | None) -> None:
    """Outputs (the stream, the table, a resumable run's files) must never be the input."""
    if is_same_file(input_path, output_path):
        raise StreamfilterError(f"{output_path}: output is the input; refusing to overwrite")
    if table is not None:
        if is_same_file(input_path, table):
            raise StreamfilterError(f"{table}: --table is the input; refusing to overwrite")
        if (
            table != "-"
            and output_path != "-"
            and Path(table).resolve() == Path(output_path).resolve()
        ):
            raise StreamfilterError(f"{table}: --table and the output are the same file")
    if output_path != "-":
        for p in (partial_path(output_path), journal_path(output_path)):
            if is_same_file(input_path, p):
                raise StreamfilterError(
                    f"{p}: the input is named like the output's partial "
                    "file or journal; refusing to overwrite it"
                )


def _check_follow(input_path: str, dask: str | None) -> None:
    """What ``--follow`` does not combine with: ``--dask``, whose workers read chunk ranges
    from an index of the file taken at the start, and standard input (``.gz`` input is
    refused by the reader)."""
    if dask is not None:
        raise StreamfilterError(
            "--follow does not work with --dask (its workers read chunk ranges of the "
            "finished file); use -j N"
        )
    if input_path == "-":
        raise StreamfilterError(
            "--follow follows a file that is being written; standard input is read until "
            "it ends without it"
        )


def _check_resumable(
    input_path: str, output_path: str, table: str | None, dask: str | None
) -> None:
    if output_path == "-" or table == "-":
        raise StreamfilterError("--resume: needs file outputs, not standard output")
    if input_size(input_path) is None or not Path(input_path).is_file():
        raise StreamfilterError(
            f"{input_path}: --resume needs a regular, uncompressed input "
            "file (it seeks to the chunk where the run stopped)"
        )
    if dask is not None:
        raise StreamfilterError("--resume does not work with --dask yet; use -j N")


def _check_geometry(
    config: ReintegrateConfig, header: StreamHeader, input_path: str, geometry: str | None
) -> None:
    """Parse the geometry once up front, so an error names the file and its line."""
    from streamfilter.geometry import GeometryError, parse_geometry
    from streamfilter.stream.model import BEGIN_GEOM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the workers' own parse reports warnings
        try:
            det = parse_geometry(config.geometry_text, config.geometry_source)
            per_frame = {path: 1.0 for path in det.header_paths()}
            for panel in det.panels:
                if not math.isfinite(det.clen_m(per_frame, panel)):  # predictions need it
                    raise GeometryError(det.source, None, "clen", "clen must be finite")
                if not np.any(np.cross(panel.fs, panel.ss)):  # no ray would meet it
                    raise GeometryError(
                        det.source,
                        None,
                        f"{panel.name}/ss",
                        f"panel {panel.name}: fs and ss are parallel or zero",
                    )
        except GeometryError as e:
            if geometry is not None:
                raise
            first = header.raw[: header.raw.find(BEGIN_GEOM)].count(b"\n") + 2
            line = first + e.line_no - 1 if e.line_no is not None else first - 1
            key = f", key '{e.key}'" if e.key else ""
            raise StreamFormatError(
                input_path, line, None, f"embedded geometry{key}: {e.message}"
            ) from None
