"""Reflection prediction: CrystFEL's (:mod:`.crystfel`), and indexamajig's prediction set of a
stream crystal reconciled with the rows the stream printed (:mod:`.reconcile`)."""

from streamfilter.predict.crystfel import (
    MIN_PARTIALITY,
    PredictionGeometry,
    Predictions,
    photon_energy_to_wavelength,
    positions_for,
    predict_reflections,
    prediction_geometry,
    reciprocal_matrix,
)
from streamfilter.predict.threshold import threshold_radius, threshold_radius_for

__all__ = [
    "MIN_PARTIALITY",
    "PredictionGeometry",
    "Predictions",
    "photon_energy_to_wavelength",
    "positions_for",
    "predict_reflections",
    "prediction_geometry",
    "reciprocal_matrix",
    "threshold_radius",
    "threshold_radius_for",
]
