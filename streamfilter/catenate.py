"""``streamfilter cat``: validate and join streams through the reader and the writer.

One input gives a byte-identical copy.  With several inputs (shard outputs), the first
header is written once; a later header identical to the first is dropped (so
split -> cat gives back the original file); a different one is kept verbatim where it stood,
as ``cat`` would (CrystFEL's readers skip it and use the first geometry), and reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import StreamfilterError, StreamFormatError
from .progress import byte_progress
from .stream import Chunk, StreamWriter, is_same_file, read_stream
from .stream.model import (
    BEGIN_CRYSTAL,
    BEGIN_PEAKS,
    BEGIN_REFL,
    END_CRYSTAL,
    END_PEAKS,
    END_REFL,
)


@dataclass
class CatSummary:
    """What ``cat`` did: chunks written, malformed chunks copied verbatim, headers."""

    chunks: int = 0
    malformed: list[str] = field(default_factory=list)
    headers_dropped: int = 0
    headers_kept: int = 0
    upgraded_chunks: int = 0
    crlf_inputs: list[str] = field(default_factory=list)


def check_chunk(chunk: Chunk, full: bool = False) -> None:
    """Structural checks that CrystFEL's reader would otherwise turn into a silent EOF.

    The chunk must have ``Image filename:`` and ``photon_energy_eV =`` lines and balanced
    peak-list, crystal and reflection-table markers.  With ``full`` every table row is parsed
    too.  Raises :class:`StreamFormatError` naming file, line and chunk.
    """
    raw = chunk.raw
    if b"\nImage filename: " not in raw:
        raise chunk.error("chunk has no 'Image filename:' line (CrystFEL would stop reading "
                          "this file here)")
    if b"\nphoton_energy_eV = " not in raw:
        raise chunk.error("chunk has no 'photon_energy_eV =' line (CrystFEL would stop "
                          "reading this file here)")
    for begin, end in ((BEGIN_PEAKS, END_PEAKS), (BEGIN_CRYSTAL, END_CRYSTAL),
                       (BEGIN_REFL, END_REFL)):
        nb = raw.count(b"\n" + begin + b"\n") + raw.count(b"\n" + begin + b"\r\n")
        ne = raw.count(b"\n" + end + b"\n") + raw.count(b"\n" + end + b"\r\n")
        if nb != ne:
            full = True  # let the parser find and name the offending line
            break
    if full:
        for xtal in chunk.crystals:
            xtal.reflections  # noqa: B018 - parse to validate
        chunk.peaks  # noqa: B018


def cat_streams(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                upgrade: bool = False, keep_going: bool = False, full_check: bool = False,
                quiet: bool = True, geometry: str | None = None) -> CatSummary:
    """Join ``inputs`` into ``output`` (``"-"`` for stdin / stdout), validating every chunk.

    Parameters
    ----------
    upgrade : bool
        Convert 2.1/2.2 input to format 2.3 (see :mod:`streamfilter.upgrade`).
    keep_going : bool
        Copy a malformed chunk verbatim, report it and continue, instead of stopping with
        an error (exit status 2).
    full_check : bool
        Parse every reflection and peak row too (slower).
    geometry : str, optional
        Geometry file for ``upgrade`` when the stream has none embedded.
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
            with read_stream(path, keep_going=keep_going) as reader:
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
                done += reader.bytes_read
    return summary
