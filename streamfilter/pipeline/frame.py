"""One frame: its crystals predicted once, then integrated by the chosen method.

:class:`FrameIntegrator` holds what a run builds once (the detector's layout for integration,
the prediction geometry per set of header values) and turns a frame plus the stream's crystals
into one :class:`~streamfilter.integrate.CrystalResult` per crystal:

    crystals -> predict (indexamajig's prediction set, :mod:`streamfilter.predict.reconcile`)
             -> integrate (:data:`streamfilter.integrate.METHODS`, plain arrays in and out)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from streamfilter.integrate import (
    DEFAULT_METHOD,
    CrystalPredictions,
    CrystalResult,
    DetectorLayout,
    FoundPeaks,
)
from streamfilter.integrate import method as method_of
from streamfilter.integrate.rings import CrystfelOptions
from streamfilter.predict.crystfel import PredictionGeometry, prediction_geometry
from streamfilter.predict.reconcile import PROFILE_RADIUS_TOLERANCE, predict_crystal, settle

__all__ = ["Integration", "FrameIntegrator", "integrate_frame"]


@dataclass(frozen=True)
class Integration:
    """How a run integrates (picklable).

    Attributes
    ----------
    method : str
        A name of :data:`streamfilter.integrate.METHODS`.
    radii : (float, float, float)
        Peak, gap and background radii in pixels.
    options : object or None
        The method's options (``CrystfelOptions``, ``RobustOptions``, ``ProfileOptions``);
        None: its defaults.
    indexamajig : CrystfelOptions
        The ``-grad``/``-sat`` flags the stream was integrated with: which reflections
        indexamajig predicted is settled by integrating as it did.
    stream_radii : (float, float, float) or None
        The radii the stream was integrated with (None: ``radii``).
    push_res : float
        indexamajig's ``--push-res`` (nm^-1; default no cut).
    use_stream_rows : bool
        Reconcile the prediction with the stream's rows (:func:`predict_crystal`).
    profile_radius_tolerance : float
        Half the last printed digit of the crystals' ``profile_radius`` (nm^-1).
    """

    method: str = DEFAULT_METHOD
    radii: tuple[float, float, float] = (4.0, 5.0, 7.0)
    options: Any = None
    indexamajig: CrystfelOptions = field(default_factory=CrystfelOptions)
    stream_radii: tuple[float, float, float] | None = None
    push_res: float = math.inf
    use_stream_rows: bool = True
    profile_radius_tolerance: float = PROFILE_RADIUS_TOLERANCE


class FrameIntegrator:
    """Integrate the crystals of one frame after another (one per run and process)."""

    def __init__(self, detector: Any, integration: Integration) -> None:
        self.integration = integration
        self.layout = DetectorLayout(detector)
        self._method, options_class = method_of(integration.method)
        self._options = integration.options or options_class()
        self._geometries: dict[tuple, PredictionGeometry] = {}

    def geometry(self, header_values: dict[str, float] | None) -> PredictionGeometry:
        """The prediction geometry for a frame's header values (built once per set)."""
        key = tuple(sorted(header_values.items())) if header_values else ()
        geometry = self._geometries.get(key)
        if geometry is None:
            if len(self._geometries) >= 8:
                self._geometries.clear()
            geometry = prediction_geometry(self.layout.detector, header_values)
            self._geometries[key] = geometry
        return geometry

    def predict(
        self,
        frame: Any,
        crystals: list[Any],
        photon_energy_eV: float,
        bandwidth: float | None = None,
    ) -> list[CrystalPredictions]:
        """indexamajig's prediction set of every crystal of the frame (the same whichever
        method integrates them).

        Parameters
        ----------
        frame : streamfilter.frames.Frame
            Its pixels settle the reflections the rounded ``profile_radius`` leaves open.
        crystals : list of streamfilter.stream.Crystal
        photon_energy_eV : float
            The chunk's ``photon_energy_eV``.
        bandwidth : float, optional
            The chunk's ``beam_bandwidth`` (fraction).
        """
        run = self.integration
        geometry = self.geometry(getattr(frame, "header", None))
        predictions = [
            predict_crystal(x, photon_energy_eV, self.layout, geometry, bandwidth, run.push_res,
                            run.use_stream_rows, run.profile_radius_tolerance)
            for x in crystals
        ]  # fmt: skip
        if run.use_stream_rows:
            stream_radii = run.stream_radii if run.stream_radii is not None else run.radii
            predictions = settle(
                crystals, predictions, frame, photon_energy_eV, stream_radii, self.layout,
                run.indexamajig, run.profile_radius_tolerance,
            )  # fmt: skip
        return [p.arrays() for p in predictions]

    def integrate(
        self,
        frame: Any,
        predictions: list[CrystalPredictions],
        photon_energy_eV: float,
        peaks: Any = None,
        *,
        method: str | None = None,
        options: Any = None,
    ) -> list[CrystalResult]:
        """Integrate :meth:`predict`'s predictions with the run's method (or ``method``
        with ``options``, e.g. to score several methods on the same predictions).

        ``peaks`` is the chunk's found-peak table (data-array fs/ss), kept out of the
        robust background.
        """
        func, opts = self._method, self._options
        if method is not None:
            func, options_class = method_of(method)
            opts = options or options_class()
        found = None
        if peaks is not None and len(peaks):
            found = FoundPeaks(peaks.fs, peaks.ss, peaks.panel)
        return func(
            frame, predictions, found, photon_energy_eV, self.integration.radii, self.layout,
            opts,
        )  # fmt: skip

    def __call__(
        self,
        frame: Any,
        crystals: list[Any],
        photon_energy_eV: float,
        *,
        bandwidth: float | None = None,
        peaks: Any = None,
    ) -> list[CrystalResult]:
        """:meth:`predict` then :meth:`integrate`: one :class:`CrystalResult` per crystal
        (every predicted reflection; ``written`` selects the rows to write)."""
        predictions = self.predict(frame, crystals, photon_energy_eV, bandwidth)
        return self.integrate(frame, predictions, photon_energy_eV, peaks)


def integrate_frame(
    method: str,
    frame: Any,
    detector: Any,
    crystals: list[Any],
    photon_energy_eV: float,
    radii: tuple[float, float, float],
    options: Any = None,
    *,
    bandwidth: float | None = None,
    peaks: Any = None,
    gradient: bool = False,
    keep_saturated: bool = False,
    reject_bad_peak: bool = True,
    **integration: Any,
) -> list[CrystalResult]:
    """Integrate one frame's crystals once (a :class:`FrameIntegrator` for one call).

    ``gradient``, ``keep_saturated`` and ``reject_bad_peak`` are indexamajig's flags
    (:class:`~streamfilter.integrate.rings.CrystfelOptions`): they settle the prediction set
    and, for ``method="crystfel"`` without ``options``, are the method's options too.
    ``integration`` takes the other fields of :class:`Integration` (``stream_radii``,
    ``push_res``, ``use_stream_rows``, ``profile_radius_tolerance``).  A run over many
    frames keeps one :class:`FrameIntegrator` instead.
    """
    flags = CrystfelOptions(gradient, keep_saturated, reject_bad_peak)
    if method == "crystfel" and options is None:
        options = flags
    settings = Integration(method, tuple(radii), options, flags, **integration)
    run = FrameIntegrator(detector, settings)
    return run(frame, crystals, photon_energy_eV, bandwidth=bandwidth, peaks=peaks)
