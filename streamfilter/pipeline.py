"""chunk -> frame -> integrate -> chunk, and the ordered parallel map that runs it.

:class:`ChunkProcessor` is the one pure step every engine runs: it takes a chunk's bytes and
gives back the chunk's new bytes plus counters.  ``-j 1`` calls it in-process, ``-j N`` maps
it over batches of chunks on N processes (this one and a pool of N - 1 workers, see
:func:`ordered_map`), ``--dask`` with Dask distributed; all of them write results in input
order, so their output is byte-identical.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StreamfilterError, StreamFormatError
from .stream import Chunk, ReflectionTable, StreamHeader, TableUpdate

DEFAULT_RADII = (4.0, 5.0, 7.0)
METHODS = ("crystfel", "robust", "profile")

# Per-reflection diagnostics written by --table, in this order.
TABLE_COLUMNS = (
    "chunk",
    "serial",
    "filename",
    "event",
    "crystal",
    "h",
    "k",
    "l",
    "panel",
    "fs",
    "ss",
    "I_old",
    "sigma_old",
    "I",
    "sigma",
    "peak",
    "background",
    "status",
)


@dataclass(frozen=True)
class ReintegrateConfig:
    """Everything a worker needs to re-integrate chunks (picklable, sent once per worker).

    Attributes
    ----------
    geometry_text : str
        CrystFEL geometry (the stream's embedded block or ``--geometry``).
    int_radius : (float, float, float)
        Peak, gap and background radii in pixels.
    method : str
        ``profile`` (default: profile fitting on the robust background), ``robust`` (robust
        background, summation) or ``crystfel`` (reproduces indexamajig's rings).
    gradient, keep_saturated : bool
        CrystFEL's ``-grad`` / ``-sat`` flags (crystfel mode).
    background : str or None
        Background model of the robust method (``--background``).
    search_dirs : tuple of str
        Where frames are looked for: the stream's directory, then ``--data-root`` dirs.
    strict : bool
        A frame that cannot be read is an error instead of a passed-through chunk.
    diagnostics : bool
        Also return per-reflection rows for ``--table``.
    stream_radii : (float, float, float) or None
        The radii indexamajig used (from the stream header).  crystfel mode uses them to
        judge which absent rows CrystFEL had predicted, when re-integrating with others.
    upgrade : bool
        The input is format 2.1/2.2: every chunk is first converted to 2.3 (panel names
        from the geometry, see :mod:`streamfilter.upgrade`), as the output header says 2.3.
    keep_going : bool
        A chunk whose text cannot be used (a malformed row, a crystal without usable
        astar/bstar/cstar, ...) is passed through unchanged and counted instead of stopping
        the run with a :class:`~streamfilter.errors.StreamFormatError`.
    """

    geometry_text: str
    int_radius: tuple[float, float, float] = DEFAULT_RADII
    method: str = "profile"
    gradient: bool = False
    keep_saturated: bool = False
    background: str | None = None
    search_dirs: tuple[str, ...] = ()
    strict: bool = False
    diagnostics: bool = False
    stream_radii: tuple[float, float, float] | None = None
    upgrade: bool = False
    keep_going: bool = False


@dataclass
class ChunkResult:
    """What processing one chunk gave: its new bytes, counters, and why it was passed
    through unchanged (None if it was re-integrated or had nothing to integrate)."""

    body: bytes
    counters: Counter
    passed_through: str | None = None
    diagnostics: dict[str, np.ndarray] | None = None
    preceding: bytes = b""  # bytes before the chunk (set by engines that read ranges)


class ChunkProcessor:
    """Re-integrate chunks; holds the detector and a frame source with its open files."""

    def __init__(self, config: ReintegrateConfig) -> None:
        from .frames import FrameSource
        from .geometry import parse_geometry

        keep_freed_memory()
        self.config = config
        try:
            self.detector = parse_geometry(config.geometry_text, "<stream geometry>")
        except Exception as e:  # GeometryError names line and key
            raise StreamfilterError(f"geometry: {e}") from e
        self.frames = FrameSource(self.detector, config.search_dirs)
        self._integrate = _frame_integrator(config)
        self._upgrader = None
        if config.upgrade:
            from .stream import StreamHeader
            from .stream.upgrade import Upgrader

            self._upgrader = Upgrader(
                StreamHeader(b"CrystFEL stream format 2.2\n"), geometry_text=config.geometry_text
            )

    def close(self) -> None:
        self.frames.close()

    def process(self, chunk: Chunk) -> ChunkResult:
        """The new bytes of ``chunk`` with every crystal's table re-integrated.

        A chunk that cannot be used raises :class:`StreamFormatError` naming file, line and
        chunk, or with ``keep_going`` is passed through unchanged and counted.  Any other
        failure inside one chunk is reported the same way (as an internal error), so a run
        never ends with a traceback and never silently loses a chunk.
        """
        from .geometry import GeometryError

        if chunk.malformed is not None:
            return _passed_through(chunk, str(chunk.malformed))
        try:
            return self._process(chunk)
        except (StreamFormatError, GeometryError) as e:
            if isinstance(e, GeometryError):  # e.g. a header value this frame lacks
                e = chunk.error(f"geometry: {e}")
            if not self.config.keep_going:
                raise e from None
            return _passed_through(chunk, str(e))
        except StreamfilterError:
            raise
        except Exception as e:  # noqa: BLE001 - turned into an error that names the chunk
            err = chunk.error(
                f"internal error while re-integrating this chunk: {type(e).__name__}: {e}"
            )
            if not self.config.keep_going:
                raise err from e
            return _passed_through(chunk, str(err))

    def _process(self, chunk: Chunk) -> ChunkResult:
        from .frames import FrameError

        counters: Counter = Counter(chunks=1)
        if self._upgrader is not None and chunk.version != "2.3":
            chunk = chunk.twin(self._upgrader.chunk(chunk), version="2.3")
        crystals = chunk.crystals
        if not crystals:
            counters["no_crystals"] += 1
            return ChunkResult(chunk.raw, counters)
        energy = chunk.photon_energy_eV
        try:
            if energy is None:
                raise FrameError("the chunk has no photon_energy_eV line")
            frame = self.frames.load(chunk.filename, chunk.event)
        except (FrameError, OSError) as e:
            where = f"{chunk.path}, line {chunk.line_no}, chunk {chunk.index}"
            if self.config.strict:
                raise StreamfilterError(f"{where}: {e}") from e
            counters["passed_through"] += 1
            return ChunkResult(chunk.raw, counters, f"{where}: {e}")
        for xtal in crystals:
            _check_crystal(chunk, xtal, energy)
        counters["frames_read"] += 1
        results = self._integrate(frame, self.detector, crystals, energy, chunk)
        updates = {}
        diag = [] if self.config.diagnostics else None
        for i, (xtal, res) in enumerate(zip(crystals, results)):
            keep = res.written
            table = ReflectionTable(
                res.h[keep],
                res.k[keep],
                res.l[keep],
                res.I[keep],
                res.sigma[keep],
                res.peak[keep],
                res.background[keep],
                res.fs[keep],
                res.ss[keep],
                res.panel[keep],
            )
            updates[i] = TableUpdate(table, res.n_saturated, res.n_implausible)
            counters["crystals"] += 1
            counters["reflections_in"] += xtal.n_rows
            counters["reflections_out"] += int(keep.sum())
            for code, n in enumerate(np.bincount(res.status).tolist()):  # codes are >= 0
                if n:
                    counters[f"status_{code}"] += n
            if diag is not None:
                diag.append(_diagnostics(chunk, i, xtal, res))
        body = chunk.rewrite(updates)
        merged = None
        if diag:
            merged = {k: np.concatenate([d[k] for d in diag]) for k in TABLE_COLUMNS}
        return ChunkResult(body, counters, None, merged)


_MALLOC_TUNED = False
# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse, once per process (True if done).

    Every frame allocates and frees a few MB (compressed and inflated chunk, the float32
    image, the ring arrays).  With glibc's default, self-adjusting thresholds, whether those
    pages go back to the kernel after a frame depends on the order of all earlier
    allocations: when they do, the next frame starts on fresh pages, ~700 page faults (2.8
    MB) per ref-small frame, +0.5 s of system time on 600 frames (measured: 13 k faults or
    430 k for the same work, depending on unrelated allocations).  Fixed thresholds make it
    deterministic: blocks under 32 MB come from the heap, and up to 64 MB of free heap is
    kept (it was in use at the peak anyway).  Left alone on other C libraries and when
    malloc is tuned through the environment.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    import platform

    if (
        platform.libc_ver()[0] != "glibc"
        or "malloc" in os.environ.get("GLIBC_TUNABLES", "")
        or any(k.startswith("MALLOC_") for k in os.environ)
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def _passed_through(chunk: Chunk, why: str) -> ChunkResult:
    return ChunkResult(chunk.raw, Counter(chunks=1, passed_through=1), why)


# 100 MeV: far above any X-ray or (photon-equivalent) electron-diffraction energy; beyond it
# the Ewald sphere is so flat that the prediction would examine ~1e9 candidate reflections.
MAX_PHOTON_ENERGY_EV = 1e8


def _check_crystal(chunk: Chunk, xtal: Any, energy: float) -> None:
    """Refuse values no prediction can use (CrystFEL would crash or predict nonsense):
    missing or non-finite astar/bstar/cstar, a singular basis, a photon energy outside
    (0, 100 MeV], a profile radius, bandwidth or detector shift far outside any real one, a
    2.3 reflection table without panel names."""
    if not (0 < energy <= MAX_PHOTON_ENERGY_EV):  # also False for NaN
        raise chunk.error(
            f"photon_energy_eV = {energy:g} is not a plausible photon energy "
            f"(0 < E <= {MAX_PHOTON_ENERGY_EV:g} eV)",
            xtal.line_no,
        )
    vectors = (xtal.astar, xtal.bstar, xtal.cstar)
    if any(v is None for v in vectors):
        raise chunk.error("crystal has no astar/bstar/cstar (three numbers each)", xtal.line_no)
    with np.errstate(all="ignore"):
        recip = np.array(vectors, dtype=np.float64) * 1e9  # m^-1, as the prediction uses
        usable = (
            np.isfinite(recip).all()
            and abs(np.linalg.det(recip)) > 0
            and np.isfinite(np.linalg.inv(recip)).all()
        )
    if not usable:
        raise chunk.error(
            "crystal's astar/bstar/cstar are not finite, independent vectors", xtal.line_no
        )
    table = xtal.reflections
    if table is not None and table.panel is None and chunk.version == "2.3":
        raise chunk.error(
            "reflection table without a panel column (its header line is not the format-2.3 one)",
            xtal.rows_line_no,
        )
    # Generous bounds (real values are ~0.005 nm^-1, ~1e-8 and < 1 mm); beyond them the
    # arithmetic overflows or the prediction examines billions of candidates.
    for name, value, lo, hi in (
        ("profile_radius (nm^-1)", xtal.profile_radius, -1.0, 1.0),
        ("beam_bandwidth", chunk.beam_bandwidth, 0.0, 0.5),
        ("predict_refine/det_shift x (mm)", xtal.det_shift_mm[0], -1e3, 1e3),
        ("predict_refine/det_shift y (mm)", xtal.det_shift_mm[1], -1e3, 1e3),
    ):
        if value is not None and not lo <= value <= hi:  # also False for NaN
            raise chunk.error(f"{name} = {value:g} is outside [{lo:g}, {hi:g}]", xtal.line_no)


def _frame_integrator(config: ReintegrateConfig) -> Callable:
    """The per-frame integration function of the configured method."""
    radii = tuple(float(r) for r in config.int_radius)
    if config.method == "crystfel":
        from .integrate.rings import integrate_frame_crystfel

        def run(frame, detector, crystals, energy, chunk):
            return integrate_frame_crystfel(
                frame,
                detector,
                crystals,
                energy,
                radii,
                gradient=config.gradient,
                keep_saturated=config.keep_saturated,
                bandwidth=chunk.beam_bandwidth,
                stream_radii=config.stream_radii,
            )

        return run
    if config.method == "robust":
        from .integrate.robust import RobustOptions, integrate_frame_robust

        options = (
            RobustOptions()
            if config.background is None
            else RobustOptions(background=config.background)
        )

        def run(frame, detector, crystals, energy, chunk):
            return integrate_frame_robust(
                frame,
                detector,
                crystals,
                energy,
                radii,
                options,
                bandwidth=chunk.beam_bandwidth,
                peaks=chunk.peaks,
            )

        return run
    if config.method == "profile":
        from .integrate.profile import ProfileOptions, integrate_frame_profile
        from .integrate.robust import RobustOptions

        if config.background not in (None, "radial"):
            raise StreamfilterError(
                f"--method profile (the default) works on the radial "
                f"background only, not --background {config.background}; "
                f"add --method robust to sum over that background"
            )
        profile_options = ProfileOptions(robust=RobustOptions())

        def run(frame, detector, crystals, energy, chunk):
            return integrate_frame_profile(
                frame,
                detector,
                crystals,
                energy,
                radii,
                profile_options,
                bandwidth=chunk.beam_bandwidth,
                peaks=chunk.peaks,
            )

        return run
    raise StreamfilterError(f"unknown method {config.method!r} (choose from {METHODS})")


def _diagnostics(chunk: Chunk, index: int, xtal: Any, res: Any) -> dict[str, np.ndarray]:
    n = len(res.h)
    old = xtal.reflections
    I_old = np.full(n, np.nan)  # noqa: N806
    sigma_old = np.full(n, np.nan)
    if old is not None and len(old):
        key_new = (res.h.astype(np.int64) * 4096 + res.k) * 4096 + res.l
        key_old = (old.h.astype(np.int64) * 4096 + old.k) * 4096 + old.l
        order = np.argsort(key_old)
        pos = np.searchsorted(key_old, key_new, sorter=order)
        pos = np.clip(pos, 0, len(order) - 1)
        hit = key_old[order[pos]] == key_new
        I_old[hit] = old.I[order[pos[hit]]]
        sigma_old[hit] = old.sigma[order[pos[hit]]]
    return {
        "chunk": np.full(n, chunk.index),
        "serial": np.full(n, chunk.serial or -1),
        "filename": np.full(n, chunk.filename, dtype=object),
        "event": np.full(n, chunk.event or "", dtype=object),
        "crystal": np.full(n, index),
        "h": res.h,
        "k": res.k,
        "l": res.l,
        "panel": res.panel,
        "fs": res.fs,
        "ss": res.ss,
        "I_old": I_old,
        "sigma_old": sigma_old,
        "I": res.I,
        "sigma": res.sigma,
        "peak": res.peak,
        "background": res.background,
        "status": res.status,
    }


# --------------------------------------------------------------------------------------------
# Worker side: one processor per process, built once from the config.
# --------------------------------------------------------------------------------------------

_WORKER: dict[int, ChunkProcessor] = {}


def _worker_processor(config: ReintegrateConfig) -> ChunkProcessor:
    key = hash(config)
    proc = _WORKER.get(key)
    if proc is None:
        _WORKER.clear()
        proc = _WORKER[key] = ChunkProcessor(config)
    return proc


def _close_worker_processor() -> None:
    for proc in _WORKER.values():
        proc.close()
    _WORKER.clear()


def _init_pool_worker() -> None:
    # The parent handles Ctrl-C and shuts the pool down; workers must not print tracebacks
    # (nor turn the SIGTERM of a pool shutdown into a KeyboardInterrupt, as the CLI's
    # handler inherited through fork would).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def process_batch(
    config: ReintegrateConfig, batch: list[Chunk | tuple]
) -> list[ChunkResult | None]:
    """Process a batch of chunks, given as :class:`Chunk` objects (in the reading process)
    or as :func:`pack_batch` tuples (sent to a worker).

    This is the pure function every engine maps: the same bytes in give the same bytes out.
    A chunk that a worker cannot finish without its line number (an error message, see
    :class:`_LineWanted`) gives None: the reading process then processes it again.
    """
    proc = _worker_processor(config)
    out: list[ChunkResult | None] = []
    for item in batch:
        # a twin: its parsed tables go with it, instead of staying on the chunk that waits
        # in run_chunks for its turn to be written (up to 11 batches at -j 2: +11 MB RSS)
        chunk = item.twin() if isinstance(item, Chunk) else _unpack(item)
        try:
            out.append(proc.process(chunk))
        except _LineWanted:
            out.append(None)
    return out


def pack_batch(batch: list[Chunk]) -> list[tuple]:
    """What a worker process needs of each chunk: (raw, index, line_no, version, path,
    malformed), ``malformed`` being the reader's StreamFormatError for a broken chunk and
    ``line_no`` None when the reader has not counted it (see :class:`_LineWanted`)."""
    return [(c.raw, c.index, c.counted_line_no, c.version, c.path, c.malformed) for c in batch]


class _LineWanted(BaseException):
    """A worker was asked the line number of a chunk it got without one.

    A reader of a regular file counts lines only when asked, and a worker that asked for
    every chunk it gets would make the reading process count every newline of the input
    (~18 ms per 600 ref-small frames, on the critical path of ``-j 2``).  Line numbers are
    only needed in messages (errors, chunks passed through), so a worker that needs one
    stops that chunk (a BaseException passes ``ChunkProcessor.process``'s handlers) and the
    reading process, which can count, processes it again: the same bytes and messages as
    ``-j 1``.
    """


def _line_wanted() -> int:
    raise _LineWanted


def _unpack(item: tuple) -> Chunk:
    raw, index, line_no, version, path, malformed = item
    return Chunk(
        raw,
        index=index,
        line_no=_line_wanted if line_no is None else line_no,
        version=version,
        path=path,
        malformed=malformed,
    )


class WorkerDiedError(StreamfilterError):
    """A worker process was killed (the work done before it is valid: resumable)."""

    resumable = True


AHEAD = 8  # items the caller of ordered_map may finish ahead of the oldest unfinished one


def ordered_map(
    func: Callable,
    items: Iterable,
    *,
    jobs: int,
    in_flight: int | None = None,
    pack: Callable | None = None,
) -> Iterator:
    """``map(func, items)`` on ``jobs`` processes, results in input order, bounded memory.

    The calling process is one of the ``jobs``: a process pool of ``jobs - 1`` workers gets
    items until it holds ``in_flight`` of them (default 3 per worker: each busy with one and
    two queued), and while it is that full the caller runs ``func`` on the next item itself
    instead of waiting.  On a machine with ``jobs`` cores this keeps ``jobs`` processes
    computing, not ``jobs`` workers plus a reader/writer competing with them for a core, and
    only the workers' share of the items crosses a pipe.  When the workers outpace the
    caller (many cores) the pool is seldom full and the caller mostly feeds it.  ``pack``
    turns an item into what is sent to a worker (e.g. chunk objects into plain tuples); the
    caller runs ``func`` on the item itself.

    Up to ``in_flight + AHEAD`` items are under way or wait for their turn: the caller goes
    on with ``AHEAD`` more items of its own while a worker is slow with the oldest one (a
    frame that takes long, a core busy with something else for a while), and a huge input
    never piles up in memory.  An exception of the caller's own ``func`` call is raised when
    its item's turn comes, exactly as a worker's would be.

    Measured at ``-j 2`` on 600 ref-small frames (``bench/README.md``): within a few per
    cent of two independent ``-j 1`` runs on half the frames each, where two workers with
    an idle parent were 8 % slower than those.
    """
    if jobs <= 1:
        yield from map(func, items)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    workers = jobs - 1
    in_flight = in_flight or 3 * workers
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_pool_worker)
    widen_pipes(pool)
    pending: deque = deque()  # in input order: the pool's futures and the caller's results
    try:
        for item in items:
            if _running(pending) < in_flight:
                pending.append(pool.submit(func, item if pack is None else pack(item)))
            else:
                pending.append(_run_here(func, item))
            while pending and pending[0].done():
                yield pending.popleft().result()
            if len(pending) >= in_flight + AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool as e:
        raise WorkerDiedError("a worker process died (killed, or out of memory?)") from e
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _run_here(func: Callable, item: Any) -> Any:
    """``func(item)`` in this process, as a finished future (an error raised in its turn)."""
    from concurrent.futures import Future

    done: Future = Future()
    try:
        done.set_result(func(item))
    except Exception as e:  # noqa: BLE001 - raised in its turn, like a worker's
        done.set_exception(e)
    return done


def _running(pending: deque) -> int:
    """The pool's items still queued or being worked on."""
    return sum(1 for f in pending if not f.done())


PIPE_BYTES = 1 << 20


def widen_pipes(pool: Any, size: int = PIPE_BYTES) -> bool:
    """Give the pipes of ``pool`` (a ``ProcessPoolExecutor``) room for whole batches
    (Linux); True if both were widened.

    A batch's chunk bytes going out and its rewritten bytes coming back are ~0.3 MB each
    (8 ref-small chunks).  Through a default 64 KiB pipe, a worker that sends its result, or
    reads its next batch, waits until the parent's collecting or feeding thread has moved
    every 64 KiB, and when every core is busy that thread first has to wait for a core.
    With 1 MiB pipes the worker writes its result and finds its next batch whole: measured
    at ``-j 2`` (two workers) on 600 frames, each worker's idle time between batches fell
    from 0.04-0.06 s to 0.02-0.03 s.  Uses the pool's private queues; when they or
    ``F_SETPIPE_SZ`` do not exist, or the system refuses the size (``pipe-max-size``, the
    per-user pipe quota), the pipes stay as they are.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return False
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux
    if setsize is None:
        return False
    done = 0
    for queue in (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)):
        try:
            fcntl.fcntl(queue._writer.fileno(), setsize, size)  # one pipe, both ends
        except (AttributeError, OSError, ValueError):
            continue
        done += 1
    return done == 2


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


@dataclass
class ReintegrateSummary:
    """Counters of a run (summed over chunks) and the chunks passed through unchanged."""

    counters: Counter = field(default_factory=Counter)
    passed_through: list[str] = field(default_factory=list)
    seconds: float = 0.0
    config: ReintegrateConfig | None = None

    def add(self, result: ChunkResult) -> None:
        self.counters.update(result.counters)
        if result.passed_through:
            self.passed_through.append(result.passed_through)

    def format(self) -> str:
        from .integrate.rings import Status

        c = self.counters
        names = {int(s): s.name.lower() for s in Status}
        dropped = ", ".join(
            f"{names.get(int(k[7:]), k)} {v}"
            for k, v in sorted(c.items())
            if k.startswith("status_") and int(k[7:]) != 0 and v
        )
        rate = c["chunks"] / self.seconds if self.seconds > 0 else float("nan")
        lines = [
            f"reintegrate: {c['chunks']} chunks, {c['frames_read']} frames read, "
            f"{c['crystals']} crystals, {c['no_crystals']} chunks without crystals",
            f"  reflections: {c['reflections_in']} in the input, {c['reflections_out']} "
            f"written; not written: {dropped or 'none'}",
            f"  chunks passed through unchanged: {c['passed_through']}",
            f"  time {self.seconds:.1f} s ({rate:.1f} chunks/s)",
        ]
        for p in self.passed_through[:20]:
            lines.append(f"    {p}")
        if len(self.passed_through) > 20:
            lines.append(f"    ... and {len(self.passed_through) - 20} more")
        return "\n".join(lines)


def provenance_line(config: ReintegrateConfig) -> bytes:
    from . import __version__

    r = ",".join(f"{x:g}" for x in config.int_radius)
    extra = f" --background={config.background}" if config.background else ""
    flags = ("-grad" if config.gradient else "") + ("-sat" if config.keep_saturated else "")
    return (
        f"streamfilter {__version__} reintegrate --method={config.method}{flags}{extra} "
        f"--int-radius={r}\n"
    ).encode()


def add_provenance(header: StreamHeader, config: ReintegrateConfig) -> bytes:
    """The header with one audit line added after ``Generated by ...``.

    CrystFEL's reader refuses a pre-geometry header over about 4 KiB; if the line would
    push it past 4000 bytes the header is returned unchanged.
    """
    raw = header.raw
    if config.upgrade:
        from .stream.upgrade import Upgrader

        raw = Upgrader(header, geometry_text=config.geometry_text).header()
    line = provenance_line(config)
    first = raw.find(b"\n") + 1
    second = raw.find(b"\n", first) + 1
    at = second if raw[first:second].startswith(b"Generated by") else first
    geom = raw.find(b"----- Begin geometry file -----")
    audit = geom if geom >= 0 else len(raw)
    if audit + len(line) > 4000:
        return raw
    return raw[:at] + line + raw[at:]


def config_for(
    header: StreamHeader,
    stream_path: str,
    *,
    method: str = "profile",
    int_radius: tuple[float, float, float] | None = None,
    background: str | None = None,
    geometry: str | None = None,
    data_roots: Iterable[str] = (),
    strict: bool = False,
    diagnostics: bool = False,
    keep_going: bool = False,
) -> ReintegrateConfig:
    """The configuration for a stream: radii and ``-grad``/``-sat`` default to those of its
    indexamajig command line (CrystFEL's 4,5,7 when absent)."""
    if geometry is not None:
        geometry_text = Path(geometry).read_text()
    elif header.geometry_text:
        geometry_text = header.geometry_text
    else:
        raise StreamfilterError(
            f"{stream_path}: the stream has no embedded geometry; give one with --geometry"
        )
    radii = int_radius or header.int_radius or DEFAULT_RADII
    flags = (header.integration_method or "rings").split(",")[0].replace(",", "-").split("-")
    stream_dir = "." if stream_path == "-" else str(Path(stream_path).resolve().parent)
    return ReintegrateConfig(
        geometry_text=geometry_text,
        int_radius=tuple(float(r) for r in radii),
        method=method,
        gradient="grad" in flags,
        keep_saturated="sat" in flags,
        background=background,
        search_dirs=(stream_dir, *map(str, data_roots)),
        strict=strict,
        diagnostics=diagnostics,
        stream_radii=header.int_radius or DEFAULT_RADII,
        upgrade=header.format_version in ("2.0", "2.1", "2.2"),
        keep_going=keep_going,
    )


def _batches(
    reader: Iterable[Chunk], size: int, errors: list[StreamFormatError], *, tail: int = 3
) -> Iterator[list[Chunk]]:
    """Batches of ``size`` chunks, and the last ``tail * size`` chunks of the input in
    batches of ``size // 4``: the processes then finish within a small batch of each other
    instead of one waiting for the other's last full batch (measured at ``-j 2``: the
    reading process was idle for the last 35-50 ms of a 1.3 s run).  The reader runs
    ``tail`` batches ahead to see the end coming.

    A reader error ends the batches and goes to ``errors``, so that it is raised after the
    chunks before it were processed, as with ``-j 1``."""
    small = max(1, size // 4)
    ahead: deque[Chunk] = deque()
    try:
        for chunk in reader:
            ahead.append(chunk)
            if len(ahead) >= (tail + 1) * size:
                yield [ahead.popleft() for _ in range(size)]
    except StreamFormatError as e:
        errors.append(e)
    while ahead:
        yield [ahead.popleft() for _ in range(min(small, len(ahead)))]


def run_chunks(
    chunks: Iterable[Chunk],
    config: ReintegrateConfig,
    *,
    jobs: int = 1,
    batch_size: int = 8,
    dask: str | None = None,
) -> Iterator[tuple[Chunk, ChunkResult]]:
    """Process ``chunks`` with the chosen engine; yields (chunk, result) in input order."""
    if jobs <= 1 and dask is None:
        proc = ChunkProcessor(config)
        try:
            for chunk in chunks:
                yield chunk, proc.process(chunk)
        finally:
            proc.close()
        return
    reader_errors: list[StreamFormatError] = []
    batches = _batches(chunks, batch_size, reader_errors)
    held: deque = deque()

    def held_batches():
        for b in batches:
            held.append(b)
            yield b

    if dask is not None:
        from .distributed import dask_ordered_map

        results = dask_ordered_map(config, map(pack_batch, held_batches()), dask, jobs=jobs)
    else:
        import functools
        import multiprocessing

        if multiprocessing.get_start_method() == "fork":
            # set the worker up once here (geometry, imports): forked workers inherit it
            # instead of each repeating it on the critical path.  No frame file is open
            # yet: the pool forks all its workers at the first item, which it always gets.
            _worker_processor(config)
        results = ordered_map(
            functools.partial(process_batch, config), held_batches(), jobs=jobs, pack=pack_batch
        )
    try:
        for res in results:
            batch = held.popleft()
            for chunk, r in zip(batch, res):
                if r is None:  # a worker needed the line number: see _LineWanted
                    r = _worker_processor(config).process(chunk)
                yield chunk, r
    finally:
        _close_worker_processor()  # this process worked too: close its frame files
    if reader_errors:
        raise reader_errors[0]


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def elapsed_since(t0: float) -> float:
    return time.perf_counter() - t0
