"""The one pure step every engine runs: a chunk's bytes in, the chunk's new bytes out.

:class:`ChunkProcessor` reads the chunk's frame, hands its crystals to the
:class:`~streamfilter.pipeline.frame.FrameIntegrator` (predict once, integrate with the
chosen method) and rewrites the reflection tables; :func:`process_batch` is the same over a
batch of chunks, as a worker process runs it.
"""

from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfilter.crystal import one_over_d
from streamfilter.errors import StreamfilterError, StreamFormatError
from streamfilter.pipeline.config import ReintegrateConfig
from streamfilter.pipeline.failures import FailedChunk, header_value, mark, unmark
from streamfilter.pipeline.frame import FrameIntegrator
from streamfilter.pipeline.tuning import tune_process
from streamfilter.stream import Chunk, ReflectionTable, StreamHeader, TableUpdate

# Per-reflection diagnostics written by --table, in this order: d_A is the resolution
# d in Angstrom (from the crystal's astar/bstar/cstar); estimator says what gave I: "rings"
# (--method crystfel), "sum" (the robust peak-disc sum; --method robust, and profile's
# fallback) or "profile" (a profile fit), empty where the reflection was not integrated.
TABLE_COLUMNS = (
    "chunk",
    "serial",
    "filename",
    "event",
    "crystal",
    "h",
    "k",
    "l",
    "d_A",
    "panel",
    "fs",
    "ss",
    "I_old",
    "sigma_old",
    "I",
    "sigma",
    "estimator",
    "peak",
    "background",
    "status",
)

#: what gives I under each method when the result does not say it per reflection
DEFAULT_ESTIMATOR = {"crystfel": "rings", "robust": "sum", "profile": "sum"}


@dataclass
class ChunkResult:
    """What processing one chunk gave: its new bytes, counters, and why it was passed
    through unchanged (None if it was re-integrated or had nothing to integrate), also as a
    :class:`FailedChunk` record for the ``--failed`` file."""

    body: bytes
    counters: Counter
    passed_through: str | None = None
    diagnostics: dict[str, np.ndarray] | None = None
    preceding: bytes = b""  # bytes before the chunk (set by engines that read ranges)
    failed: FailedChunk | None = None
    hint: str | None = None  # what to do about a frame not found (said once per run)
    incomplete_tail: str | None = None  # a range's reader found the input cut in its last chunk


class ChunkProcessor:
    """Re-integrate chunks; holds the detector and a frame source with its open files."""

    def __init__(self, config: ReintegrateConfig) -> None:
        tune_process()
        self.config = config
        self.frames = config.frame_source()
        self.detector = self.frames.detector
        self._integrate = FrameIntegrator(self.detector, config.integration())
        self._upgrader = None
        if config.upgrade:
            from streamfilter.stream.upgrade import Upgrader

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
        from streamfilter.geometry import GeometryError

        if chunk.malformed is not None:
            return _passed_through(chunk, chunk.malformed)
        try:
            return self._process(chunk)
        except (StreamFormatError, GeometryError) as e:
            if isinstance(e, GeometryError):  # e.g. a header value this frame lacks
                e = chunk.error(f"geometry: {e}")
            if not self.config.keep_going:
                raise e from None
            return _passed_through(chunk, e)
        except StreamfilterError:
            raise
        except Exception as e:  # noqa: BLE001 - turned into an error that names the chunk
            err = chunk.error(
                f"internal error while re-integrating this chunk: {type(e).__name__}: {e}"
            )
            if not self.config.keep_going:
                raise err from e
            return _passed_through(chunk, err)

    def _process(self, chunk: Chunk) -> ChunkResult:
        from streamfilter.frames import FrameError

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
            counters["reflections_passed"] += sum(x.n_rows for x in crystals)
            hint = getattr(e, "hint", None)
            brief = e.brief if hint else str(e)  # the hint is said once per run
            record = FailedChunk(
                chunk.index, chunk.line_no, chunk.filename or "", chunk.event or "", brief
            )
            return ChunkResult(mark(chunk.raw, brief), counters, f"{where}: {brief}",
                               failed=record, hint=hint)  # fmt: skip
        for xtal in crystals:
            check_crystal(chunk, xtal, energy)
        counters["frames_read"] += 1
        results = self._integrate(
            frame, crystals, energy, bandwidth=chunk.beam_bandwidth, peaks=chunk.peaks
        )
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
                diag.append(_diagnostics(chunk, i, xtal, res, self.config.method))
        body = unmark(chunk.rewrite(updates))
        merged = None
        if diag:
            merged = {k: np.concatenate([d[k] for d in diag]) for k in TABLE_COLUMNS}
        return ChunkResult(body, counters, None, merged)


def _passed_through(chunk: Chunk, error: StreamfilterError) -> ChunkResult:
    """A chunk whose text cannot be used (``--keep-going``): copied with the marker line."""
    reason = error.message or str(error)
    record = FailedChunk(
        chunk.index,
        chunk.line_no,
        header_value(chunk.raw, b"Image filename: "),
        header_value(chunk.raw, b"Event: "),
        reason,
    )
    counters = Counter(chunks=1, passed_through=1)
    return ChunkResult(mark(chunk.raw, reason), counters, str(error), failed=record)


# 100 MeV: far above any X-ray or (photon-equivalent) electron-diffraction energy; beyond it
# the Ewald sphere is so flat that the prediction would examine ~1e9 candidate reflections.
MAX_PHOTON_ENERGY_EV = 1e8


def check_crystal(chunk: Chunk, xtal: Any, energy: float) -> None:
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


def _diagnostics(
    chunk: Chunk, index: int, xtal: Any, res: Any, method: str
) -> dict[str, np.ndarray]:
    """The ``--table`` columns (:data:`TABLE_COLUMNS`) of one crystal's predictions."""
    n = len(res.h)
    with np.errstate(divide="ignore"):
        d = 10.0 / one_over_d(res.h, res.k, res.l, xtal.astar, xtal.bstar, xtal.cstar)
    estimator = res.estimator
    if estimator is None:
        estimator = np.full(n, DEFAULT_ESTIMATOR.get(method, method), dtype=object)
    estimator = np.where(np.isfinite(res.I), estimator, "").astype(object)
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
        "d_A": d,
        "panel": res.panel,
        "fs": res.fs,
        "ss": res.ss,
        "I_old": I_old,
        "sigma_old": sigma_old,
        "I": res.I,
        "sigma": res.sigma,
        "estimator": estimator,
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
