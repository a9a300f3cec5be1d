"""Resumable outputs: partial files plus a progress journal, for ``reintegrate --resume``.

A resumable run writes each output ``OUT`` to ``OUT.partial`` (beside it, never at ``OUT``
itself) and, every few seconds, records how far it got in ``OUT.sfjournal``:

* the input it reads (path, size in bytes, modification time in ns, SHA-256 of its first
  MiB); for an input still being written (``--follow``) as it was at the checkpoint, and
  such a journal is resumed when the input has only grown since (same first MiB, at least
  as long, a chunk beginning at the journaled offset),
* a digest of every option that changes the output bytes,
* the position to continue from (chunk number, byte offset and line of that chunk's
  ``----- Begin chunk -----`` line in the input, format version in force there),
* the size in bytes of each partial output at that position, and the run's counters.

The partial outputs are flushed and fsync'd *before* the journal that describes them is
written (to a temporary file, fsync'd, renamed, directory fsync'd), so whatever kills the
process (Ctrl-C, SIGTERM, SIGKILL, a power cut) the journal never claims bytes the partial
files do not hold.  Resuming validates the journal against the input and the options,
truncates each partial output to its journaled size and continues from the journaled chunk;
the result is byte for byte the output of an uninterrupted run.

What is left behind:

* success: ``OUT`` only (the journal is removed first, then every partial file is renamed,
  with SIGINT/SIGTERM held back so that it is all or nothing);
* an interruption (SIGINT, SIGTERM, a worker killed; see :func:`is_resumable`) after the
  first checkpoint: ``OUT.partial`` and ``OUT.sfjournal``, nothing at ``OUT``;
* an interruption before the first checkpoint, or any error: nothing (the partial files
  are removed; there is nothing worth resuming, or the same error would come back).

A partial output is locked (``flock``) while a run writes it, so two runs cannot write the
same output at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from streamfilter.errors import StreamfilterError
from streamfilter.interrupt import signals_held
from streamfilter.stream.writer import check_output_dir, commit_temp

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

PARTIAL_SUFFIX = ".partial"
JOURNAL_SUFFIX = ".sfjournal"
JOURNAL_FORMAT = "streamfilter journal"
JOURNAL_VERSION = 1
DEFAULT_INTERVAL = 2.0  # seconds between checkpoints

__all__ = [
    "Checkpoint",
    "InputIdentity",
    "ResumableRun",
    "clear_stale",
    "is_resumable",
    "journal_path",
    "options_digest",
    "partial_path",
    "read_journal",
]


def partial_path(output: str | os.PathLike) -> Path:
    """``OUT.partial``: where a resumable run writes ``OUT`` until it is complete."""
    return Path(f"{output}{PARTIAL_SUFFIX}")


def journal_path(output: str | os.PathLike) -> Path:
    """``OUT.sfjournal``: the progress journal of a resumable run writing ``OUT``."""
    return Path(f"{output}{JOURNAL_SUFFIX}")


def options_digest(options: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the options that shape the output, in a canonical JSON form."""
    text = json.dumps(options, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def is_resumable(exc: BaseException) -> bool:
    """True for failures that leave valid, resumable progress: KeyboardInterrupt (SIGINT,
    and SIGTERM in the CLI) and errors marked ``resumable`` (a worker process killed)."""
    return isinstance(exc, KeyboardInterrupt) or bool(getattr(exc, "resumable", False))


HEAD_BYTES = 1 << 20  # bytes of the input whose digest identifies it (with size and mtime)


@dataclass(frozen=True)
class InputIdentity:
    """What identifies an input file: its path, size (bytes), modification time (ns) and
    the SHA-256 of its first MiB.  A run directory may be moved or mounted elsewhere, so
    a journal is matched on the file name, not the whole path."""

    path: str
    size: int
    mtime_ns: int
    head_sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike) -> InputIdentity:
        p = Path(path).resolve()
        with open(p, "rb") as f:
            st = os.fstat(f.fileno())
            head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
        return cls(str(p), st.st_size, st.st_mtime_ns, head)

    def grown_into(self, path: str | os.PathLike) -> bool:
        """True if the file at ``path`` is this one, grown since (``--follow``): at least as
        long, and the same first MiB (or as much of it as this identity had)."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                head = hashlib.sha256(f.read(min(self.size, HEAD_BYTES))).hexdigest()
        except OSError:
            return False
        return st.st_size >= self.size and head == self.head_sha256


@dataclass
class Checkpoint:
    """A consistent point of a run.

    Attributes
    ----------
    position : dict
        Where to continue in the input (the caller's keys; reintegrate: ``chunk``,
        ``offset`` and ``line`` of the next chunk's begin line, ``version``, ``header_end``).
    sizes : list of int
        Bytes of each partial output (in the order the outputs were given) at this point.
    state : dict
        Anything else to restore (counters, messages), JSON-serialisable.
    """

    position: dict[str, Any]
    sizes: list[int] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


def read_journal(path: str | os.PathLike) -> dict[str, Any] | None:
    """The journal at ``path`` as a dict, None if there is none.

    Raises StreamfilterError for a file that is not a readable journal.
    """
    try:
        text = Path(path).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise StreamfilterError(f"{path}: cannot read the journal: {e}") from None
    try:
        record = json.loads(text)
        if record.get("format") != JOURNAL_FORMAT:
            raise ValueError("not a streamfilter journal")
        if record.get("version") != JOURNAL_VERSION:
            raise ValueError(f"journal version {record.get('version')}, expected {JOURNAL_VERSION}")
        Checkpoint(**record["checkpoint"])
        InputIdentity(**record["input"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StreamfilterError(
            f"{path}: not a valid journal ({e}); delete it and its .partial file(s) to start afresh"
        ) from None
    return record


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _journal_tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _write_journal(path: Path, record: dict[str, Any]) -> None:
    """Replace the journal atomically and durably (a temporary file, fsync, rename)."""
    tmp = _journal_tmp(path)
    try:
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StreamfilterError(f"{path}: cannot write the journal: {e.strerror or e}") from None
    _fsync_dir(path.parent)


class _Partial:
    """One partial output file: opened without truncating, locked, then sized."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.path = partial_path(output)
        self.fd = -1
        self.raw: BinaryIO | None = None
        self.file: _NamedFile | None = None
        self.created = False

    def open(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise StreamfilterError(
                f"{self.output}: cannot create a file in {self.path.parent}: {e.strerror or e}"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self.fd)
                self.fd = -1
                raise StreamfilterError(
                    f"{self.path}: another streamfilter run is writing "
                    f"{self.output} (the file is locked)"
                ) from None
        self.raw = os.fdopen(self.fd, "r+b", buffering=1 << 20)
        self.file = _NamedFile(self.raw, self.output)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def truncate(self, size: int) -> None:
        self.raw.seek(0)
        self.raw.truncate(size)
        self.raw.seek(size)

    def sync(self) -> int:
        """Flush and fsync; returns the logical size (bytes written so far)."""
        self.file.flush()
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise self.file.error(e) from None
        return self.raw.tell()

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.raw.close()  # also releases the lock
            self.file = None

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _NamedFile:
    """Writes to a partial output whose errors (full disk, file too large) name the output."""

    def __init__(self, f: BinaryIO, output: str) -> None:
        self._f = f
        self.output = output

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            raise self.error(e) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            raise self.error(e) from None

    def error(self, e: OSError) -> StreamfilterError:
        return StreamfilterError(f"{self.output}: cannot write the output: {e.strerror or e}")


class ResumableRun:
    """Partial outputs and the journal of one resumable run.

    Use as a context manager: :meth:`start` opens the partial outputs and returns the
    checkpoint to continue from (None: start afresh); write through :attr:`files`; call
    :meth:`checkpoint` whenever :meth:`due`; leaving the block normally commits (renames
    every partial output to its final name and removes the journal); leaving it with an
    exception keeps or removes the partial files as described in the module docstring.

    Parameters
    ----------
    outputs : sequence of str
        Final output paths (the first is the one the journal is named after).
    identity : InputIdentity
        The input being read.
    options : str
        :func:`options_digest` of everything that shapes the output.
    interval : float
        Seconds between checkpoints (0: at every opportunity).
    growing : bool
        The input is still being written (``--follow``): each checkpoint records the
        input's identity anew, and a journal is resumed when the input is the journaled
        one grown since (:meth:`InputIdentity.grown_into`), not only when it is unchanged.
    """

    def __init__(
        self,
        outputs: Sequence[str | os.PathLike],
        identity: InputIdentity,
        options: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        growing: bool = False,
    ) -> None:
        self.outputs = [str(o) for o in outputs]
        self.growing = growing
        self.identity = identity
        self.options = options
        self.interval = interval
        self.journal = journal_path(self.outputs[0])
        self._partials = [_Partial(o) for o in self.outputs]
        self._last = time.monotonic()
        self._journaled = False
        self._owned = False  # set once the partial files are open and locked by this run
        self.resumed_from: Checkpoint | None = None

    @property
    def files(self) -> list[BinaryIO]:
        """The open partial outputs, in the order of ``outputs``."""
        return [p.file for p in self._partials]

    # -- starting ----------------------------------------------------------------------------

    def start(self) -> Checkpoint | None:
        """Open the partial outputs; the journaled checkpoint to resume from, or None."""
        for o in self.outputs:
            check_output_dir(o)
        record = read_journal(self.journal)
        stale = _journal_tmp(self.journal)
        if record is not None:
            self._validate(record)
        cp = Checkpoint(**record["checkpoint"]) if record is not None else None
        opened: list[_Partial] = []
        try:
            for p in self._partials:
                with signals_held():  # a Ctrl-C must not fall between creating and owning
                    existed = p.path.exists()
                    p.open()
                    opened.append(p)
                    p.created = not existed
            for p, size in zip(self._partials, cp.sizes if cp is not None else ()):
                have = p.size()
                if have < size:
                    raise StreamfilterError(
                        f"{p.path}: holds {have} bytes but the journal {self.journal} "
                        f"recorded {size}; it was changed or truncated. Delete {p.path} and "
                        f"{self.journal} to start afresh"
                    )
        except BaseException:
            for p in opened:  # leave nothing this run created, touch nothing else
                p.close()
                if p.created:
                    p.remove()
            raise
        # From here on the files are this run's: truncated to the checkpoint, and kept or
        # removed when the run ends.
        self._owned = True
        with contextlib.suppress(OSError):
            os.unlink(stale)  # left by a run killed while it wrote its journal
        for p, size in zip(self._partials, cp.sizes if cp is not None else [0] * len(opened)):
            p.truncate(size)
        if cp is not None:
            self._journaled = True
            self.resumed_from = cp
        return cp

    def _validate(self, record: dict[str, Any]) -> None:
        where = f"{self.journal}: journal of an interrupted run"
        fix = f"; delete {self.journal} and the .partial file(s) to start afresh"
        got = InputIdentity(**record["input"])
        me = self.identity
        if Path(got.path).name != Path(me.path).name:
            raise StreamfilterError(f"{where} reading {got.path}, not {me.path}{fix}")
        if self.growing and got.grown_into(me.path):
            pass  # a stream still being written: it grew after the checkpoint
        elif (got.size, got.mtime_ns, got.head_sha256) != (me.size, me.mtime_ns, me.head_sha256):
            raise StreamfilterError(
                f"{where}: its input {me.path} changed since (size {got.size} -> {me.size} "
                f"bytes, mtime {got.mtime_ns} -> {me.mtime_ns} ns)"
                + ("; it only grew: add --follow for a stream still being written"
                   if got.grown_into(me.path) else "") + fix
            )
        if record.get("options") != self.options:
            raise StreamfilterError(
                f"{where} with other options (or another streamfilter "
                f"version); rerun with the same options{fix}"
            )
        names = [Path(o).name for o in self.outputs]
        if [Path(o).name for o in record.get("outputs", [])] != names:
            raise StreamfilterError(
                f"{where} writing {record.get('outputs')}, not {self.outputs}{fix}"
            )
        for p in self._partials:
            if not p.path.is_file():
                raise StreamfilterError(f"{where}: its partial output {p.path} is missing{fix}")

    # -- progress ----------------------------------------------------------------------------

    def due(self) -> bool:
        """True when the last checkpoint is at least ``interval`` seconds old."""
        return time.monotonic() - self._last >= self.interval

    def checkpoint(self, position: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        """Make everything written so far durable and record ``position`` in the journal.

        Call it only at a consistent point: every byte written so far belongs to the
        output, and the input continues exactly at ``position``.
        """
        with signals_held():  # a checkpoint is taken whole or not at all
            self._checkpoint(position, state)
        self._journaled = True
        self._last = time.monotonic()

    def _checkpoint(self, position: dict[str, Any], state: dict[str, Any] | None) -> None:
        sizes = [p.sync() for p in self._partials]
        if self.growing:  # the input as it is now, so that a resumed run finds it grown
            self.identity = InputIdentity.of(self.identity.path)
        record = {
            "format": JOURNAL_FORMAT,
            "version": JOURNAL_VERSION,
            "input": asdict(self.identity),
            "options": self.options,
            "outputs": self.outputs,
            "checkpoint": asdict(Checkpoint(dict(position), sizes, dict(state or {}))),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_journal(self.journal, record)

    # -- ending ------------------------------------------------------------------------------

    def commit(self) -> None:
        """Rename every partial output to its final name and remove the journal."""
        for p in self._partials:
            p.sync()
        with signals_held():
            for j in (self.journal, _journal_tmp(self.journal)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(j)
            for p in self._partials:
                commit_temp(p.path, p.output)
                p.close()

    def abandon(self, keep: bool) -> None:
        """Close the partial outputs; keep them with the journal (if there is one to resume
        from) or remove them all.  Files this run never opened (a journal that did not
        match, a partial file locked by another run) are left alone."""
        for p in self._partials:
            p.close()
        if not self._owned or (keep and self._journaled):
            return
        for p in self._partials:
            p.remove()
        for j in (self.journal, _journal_tmp(self.journal)):
            with contextlib.suppress(OSError):
                os.unlink(j)

    def __enter__(self) -> ResumableRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.commit()
        else:
            self.abandon(keep=is_resumable(exc))


def clear_stale(output: str | os.PathLike) -> bool:
    """Remove the partial output and journal an interrupted resumable run left for
    ``output`` (after a normal run wrote ``output`` afresh).  A partial output locked by a
    running process is left alone.  Returns True if something was removed."""
    partial, journal = partial_path(output), journal_path(output)
    if not any(p.exists() for p in (partial, journal, _journal_tmp(journal))):
        return False
    partials = [partial]
    with contextlib.suppress(StreamfilterError):
        record = read_journal(journal)
        if record is not None:
            partials += [partial_path(o) for o in record["outputs"][1:]]
    if partial.exists() and fcntl is not None:
        try:
            fd = os.open(partial, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a run is writing it
        finally:
            os.close(fd)
    for p in (*partials, journal, _journal_tmp(journal)):
        with contextlib.suppress(OSError):
            os.unlink(p)
    return True
