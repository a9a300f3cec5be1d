"""CrystFEL streams: the one reader, the one writer, the data model and the tables."""

from .model import Chunk, Crystal, StreamHeader, TableUpdate
from .reader import StreamReader, is_same_file, read_stream, stream_from_bytes
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
]
