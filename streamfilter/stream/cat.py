"""``streamfilter cat``: validate and join streams through the reader and the writer.

One input gives a byte-identical copy.  With several inputs (shard outputs), the first
header is written once; a later header identical to the first is dropped (so
split -> cat gives back the original file); a different one is kept verbatim where it stood,
as ``cat`` would (CrystFEL's readers skip it and use the first geometry), and reported.

An input that ends inside its last chunk (still being written, or cut short) contributes
its complete chunks only: the incomplete tail is never copied into the output (where it
would be a malformed chunk in the middle of the joined stream), and it is reported as a
warning; with ``strict`` it is an error and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import StreamfilterError, StreamFormatError
from ..progress import byte_progress
from .model import (
    BEGIN_CRYSTAL,
    BEGIN_PEAKS,
    BEGIN_REFL,
    END_CRYSTAL,
    END_PEAKS,
    END_REFL,
    Chunk,
)
from .reader import is_same_file, read_stream
from .writer import StreamWriter


@dataclass
class CatSummary:
    """What ``cat`` did: chunks written, malformed chunks copied verbatim, headers, and the
    incomplete tails left out (one message per input that ends inside a chunk)."""

    chunks: int = 0
    malformed: list[str] = field(default_factory=list)
    incomplete_tails: list[str] = field(default_factory=list)
    headers_dropped: int = 0
    headers_kept: int = 0
    upgraded_chunks: int = 0
    crlf_inputs: list[str] = field(default_factory=list)


def _crystal_marks(raw: bytes) -> list[int]:
    """Offsets of the lines of ``raw`` that start with ``--- ``: every crystal marker, like
    ``Chunk.marks`` (which the reader finds on its way), for a chunk built without them."""
    marks = []
    i = raw.find(b"--- ")
    while i >= 0:
        if i == 0 or raw[i - 1] == 10:
            marks.append(i)
        i = raw.find(b"--- ", i + 1)
    return marks


_PEAKS, _PEAKS_END = b"\n" + BEGIN_PEAKS, b"\n" + END_PEAKS
_REFL, _REFL_END = b"\n" + BEGIN_REFL, b"\n" + END_REFL


def _balanced(raw: bytes, marks: list[int]) -> bool:
    """True if peak-list, crystal and reflection-table markers pair up; ``marks`` are the
    offsets of the crystal-marker lines (no rescan of the tables).

    Every search starts or ends next to what it looks for: the peak list ends just before
    the first crystal (or the end of the chunk), a table ends just before its crystal's end
    marker; the tables in between are never read.
    """
    head = marks[0] if marks else len(raw)
    p = raw.find(_PEAKS, 0, head)
    if p >= 0 and raw.rfind(_PEAKS_END, p, head) < 0:
        return False
    begin = -1
    for off in marks:
        if raw.startswith(BEGIN_CRYSTAL, off):
            if begin >= 0:
                return False
            begin = off
        elif raw.startswith(END_CRYSTAL, off):
            if begin < 0:
                return False
            r = raw.find(_REFL, begin, off)
            if r >= 0 and raw.rfind(_REFL_END, r, off) < 0:
                return False
            begin = -1
    return begin < 0


def check_chunk(chunk: Chunk, full: bool = False) -> None:
    """Structural checks that CrystFEL's reader would otherwise turn into a silent EOF.

    The chunk must have ``Image filename:`` and ``photon_energy_eV =`` lines and balanced
    peak-list, crystal and reflection-table markers.  With ``full`` every table row is parsed
    too.  Raises :class:`StreamFormatError` naming file, line and chunk.
    """
    raw = chunk.raw
    if raw.find(b"\nImage filename: ") < 0:
        raise chunk.error("chunk has no 'Image filename:' line (CrystFEL would stop reading "
                          "this file here)")
    if raw.find(b"\nphoton_energy_eV = ") < 0:
        raise chunk.error("chunk has no 'photon_energy_eV =' line (CrystFEL would stop "
                          "reading this file here)")
    marks = chunk.marks if chunk.marks is not None else _crystal_marks(raw)
    if full or not _balanced(raw, marks):
        # the parser finds and names the offending line
        for xtal in chunk.crystals:
            xtal.reflections  # noqa: B018 - parse to validate
        chunk.peaks  # noqa: B018


def cat_streams(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                upgrade: bool = False, keep_going: bool = False, full_check: bool = False,
                quiet: bool = True, geometry: str | None = None, strict: bool = False
                ) -> CatSummary:
    """Join ``inputs`` into ``output`` (``"-"`` for stdin / stdout), validating every chunk.

    Parameters
    ----------
    upgrade : bool
        Convert 2.1/2.2 input to format 2.3 (see :mod:`streamfilter.stream.upgrade`).
    keep_going : bool
        Copy a malformed chunk verbatim, report it and continue, instead of stopping with
        an error (exit status 2).
    full_check : bool
        Parse every reflection and peak row too (slower).
    geometry : str, optional
        Geometry file for ``upgrade`` when the stream has none embedded.
    strict : bool
        An input that ends inside its last chunk is an error (default: its complete chunks
        are written, the tail is left out and listed in ``incomplete_tails``).
    """
    for p in inputs:
        if is_same_file(p, output):
            raise StreamfilterError(f"{output}: output is also an input; refusing to overwrite")
    summary = CatSummary()
    first_header: bytes | None = None
    total = sum(os.path.getsize(p) for p in inputs
                if str(p) != "-" and os.path.isfile(p)) or None
    with StreamWriter(output) as writer, byte_progress(total, "cat", quiet) as bar:
        done = 0
        for path in inputs:
            with read_stream(path, keep_going=keep_going,
                             incomplete_tail_error=strict) as reader:
                if reader.crlf:
                    summary.crlf_inputs.append(str(path))
                upgrader = None
                if upgrade and reader.version in ("2.1", "2.2"):
                    from .upgrade import Upgrader

                    upgrader = Upgrader(reader.header, geometry)
                header = reader.header.raw if upgrader is None else upgrader.header()
                if first_header is None:
                    writer.write(header)
                    first_header = header
                elif header == first_header:
                    summary.headers_dropped += 1
                else:
                    writer.write(header)
                    summary.headers_kept += 1
                for chunk in reader:
                    summary.chunks += 1
                    if chunk.malformed is None:
                        try:
                            check_chunk(chunk, full_check or upgrader is not None)
                        except StreamFormatError as e:
                            if not keep_going:
                                raise
                            chunk.malformed = e
                    if chunk.malformed is not None:
                        summary.malformed.append(str(chunk.malformed))
                        writer.write_chunk(chunk)
                    elif upgrader is not None:
                        writer.write(chunk.preceding)
                        writer.write(upgrader.chunk(chunk))
                        summary.upgraded_chunks += 1
                    else:
                        writer.write_chunk(chunk)
                    bar.update(done + reader.bytes_read - bar.n)
                writer.write(reader.trailer)
                if reader.incomplete_tail is not None:
                    summary.incomplete_tails.append(str(reader.incomplete_tail))
                done += reader.bytes_read
    return summary
