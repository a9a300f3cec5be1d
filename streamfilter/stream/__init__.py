"""CrystFEL streams: the one reader, the one writer, the data model and the tables.

Modules: :mod:`.model` (header, chunk, crystal), :mod:`.reader`, :mod:`.follow` (a stream
still being written), :mod:`.writer` (atomic output), :mod:`.tables` (reflection and peak
tables), :mod:`.text` (marker lines and blocks), :mod:`.index` (chunk offsets), and the
operations :mod:`.cat`, :mod:`.split`, :mod:`.info`, :mod:`.upgrade` (format 2.1/2.2 -> 2.3)
and :mod:`.validate` (CrystFEL's reader rules).
"""

from .follow import DEFAULT_IDLE, Follow
from .model import Chunk, Crystal, StreamHeader, TableUpdate
from .reader import IncompleteTail, StreamReader, is_same_file, read_stream, stream_from_bytes
from .tables import (
    REFLECTION_HEADER_23,
    PeakTable,
    ReflectionTable,
    format_peaks,
    format_reflections,
    parse_reflections,
)
from .writer import StreamWriter, atomic_output

__all__ = [
    "Chunk", "Crystal", "StreamHeader", "TableUpdate", "StreamReader", "read_stream",
    "stream_from_bytes", "is_same_file", "PeakTable", "ReflectionTable", "format_reflections",
    "format_peaks", "parse_reflections", "REFLECTION_HEADER_23", "StreamWriter", "atomic_output",
    "IncompleteTail", "Follow", "DEFAULT_IDLE",
]
