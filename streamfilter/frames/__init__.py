"""Frame access: :class:`FrameSource` reads the frame a stream chunk names (HDF5, CBF).

:mod:`.source` (FrameSource, Frame), :mod:`.events` (event IDs, ``%`` paths), :mod:`.errors`,
:mod:`.layout` (panels sharing one array), :mod:`.badmap` (mask bits, ``flag_*``),
:mod:`.hdf5` (the h5py reference read), :mod:`._direct` (the direct-inflate fast path) and
:mod:`.formats` (format detection, CBF through fabio).
"""

from .errors import FrameError, FrameNotFoundError, FrameReadError
from .events import EventID, parse_event, substitute_path
from .source import Frame, FrameSource

__all__ = [
    "EventID",
    "Frame",
    "FrameError",
    "FrameNotFoundError",
    "FrameReadError",
    "FrameSource",
    "parse_event",
    "substitute_path",
]
