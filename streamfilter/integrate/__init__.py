"""Reflection integration: plain arrays in, plain arrays out; knows nothing of streams.

Every method has one signature, ``integrate(frame, predictions, peaks, photon_energy_eV,
radii, layout, options)`` -> one :class:`CrystalResult` per crystal, and is chosen by name
from :data:`METHODS`:

``crystfel``  :mod:`.rings`, indexamajig's ``rings`` integration number for number;
``robust``    :mod:`.robust`, CrystFEL's peak disc minus a better background;
``profile``   :mod:`.profile`, profile fitting on robust's background.

The modules under them: :mod:`.model` (inputs and results), :mod:`.layout` (the detector
as integration sees it, built once per run), :mod:`.boxes` (pixel boxes and discs),
:mod:`.background` (the frame-wide radial background).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from streamfilter.integrate.layout import DetectorLayout
from streamfilter.integrate.model import (
    CrystalPredictions,
    CrystalResult,
    FoundPeaks,
    RingsResult,
    Status,
)

#: method name -> (module, options class); a method's module is imported when it is used
METHODS: dict[str, tuple[str, str]] = {
    "crystfel": ("streamfilter.integrate.rings", "CrystfelOptions"),
    "robust": ("streamfilter.integrate.robust", "RobustOptions"),
    "profile": ("streamfilter.integrate.profile", "ProfileOptions"),
}

#: the method ``streamfilter reintegrate`` uses unless told otherwise
DEFAULT_METHOD = "profile"


def method(name: str) -> tuple[Callable[..., list[CrystalResult]], type]:
    """The integration function and the options class of the method called ``name``."""
    try:
        module_name, options_name = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (choose from {', '.join(METHODS)})") from None
    module = importlib.import_module(module_name)
    return module.integrate_frame, getattr(module, options_name)


def integrate(
    name: str,
    frame: Any,
    predictions: list[CrystalPredictions],
    peaks: FoundPeaks | None,
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    layout: DetectorLayout,
    options: Any = None,
) -> list[CrystalResult]:
    """Integrate one frame's crystals with the method called ``name`` (see the module)."""
    func, _ = method(name)
    return func(frame, predictions, peaks, photon_energy_eV, radii, layout, options)


__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "CrystalPredictions",
    "CrystalResult",
    "DetectorLayout",
    "FoundPeaks",
    "RingsResult",
    "Status",
    "integrate",
    "method",
]
