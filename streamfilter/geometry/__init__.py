"""CrystFEL detector geometry (``.geom``) files.

A ``.geom`` file maps the pixels of one or more HDF5 arrays to detector panels in the
laboratory frame.  :func:`parse_geometry` turns the text (a file, or the block a stream
embeds between ``----- Begin geometry file -----`` and ``----- End geometry file -----``) into
a :class:`Detector` holding :class:`Panel` and :class:`BadRegion` objects.

:mod:`.model` holds the data model, errors and warnings (and the coordinate conventions);
:mod:`.parse` the parser; :mod:`.syntax` the line grammar and its fast paths.
"""

from .model import (
    HC_EV_ANGSTROM,
    MAX_MASKS,
    BadRegion,
    Detector,
    GeometryError,
    GeometryWarning,
    MaskSpec,
    Panel,
    UnknownPanelError,
)
from .parse import load_geometry, parse_geometry

__all__ = [
    "BadRegion",
    "Detector",
    "GeometryError",
    "GeometryWarning",
    "MaskSpec",
    "Panel",
    "UnknownPanelError",
    "load_geometry",
    "parse_geometry",
    "HC_EV_ANGSTROM",
    "MAX_MASKS",
]
