"""Reflection integration: pixel boxes, CrystFEL-identical rings, and the robust modes.

``boxes`` cuts the square boxes around predicted reflections (shared by every mode);
``rings`` reproduces CrystFEL's ``rings`` integration number for number.
"""

from streamfilter.integrate.boxes import (
    BACKGROUND,
    IGNORED,
    PEAK,
    Boxes,
    central_pixels,
    gather_boxes,
    gather_window,
    overlap_map,
    ring_classes,
)
from streamfilter.integrate.rings import (
    CrystalResult,
    RingsResult,
    Status,
    integrate_frame_crystfel,
    integrate_rings,
    poisson_variance,
)

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "PEAK",
    "Boxes",
    "CrystalResult",
    "RingsResult",
    "Status",
    "central_pixels",
    "gather_boxes",
    "gather_window",
    "integrate_frame_crystfel",
    "integrate_rings",
    "overlap_map",
    "poisson_variance",
    "ring_classes",
]
