"""A small simulated serial-crystallography data set with known truth.

:func:`generate` writes, from a seed, everything a CrystFEL user would have after
``indexamajig``, plus the answers:

* ``<name>.h5``: a multi-event HDF5 file, ``/entry/data/data`` of shape
  ``(n_frames, 2 * panel_height, panel_width)`` (two panels stacked along ss in **one** array,
  like ``ref-small``), gzip + shuffle or bitshuffle-LZ4 (``hdf5plugin``), and a bad-pixel
  mask ``/entry/data/mask`` (uint8, shared by all frames);
* ``<name>.geom``: the CrystFEL geometry (``dim0 = %``, ``mask0_goodbits``/``badbits``);
* ``<name>.cell``: the target unit cell;
* ``<name>.stream``: a format-2.3 stream in indexamajig's layout whose crystals carry the
  **true** orientations and whose reflection rows are a CrystFEL-identical ``rings``
  integration (:func:`streamfilter.pipeline.integrate_frame`, ``crystfel``) of the noisy
  frames at the predicted positions (:func:`streamfilter.predict.predict_reflections`);
* ``<name>_truth.h5``: the noise-free Bragg image and background of every frame, the true
  intensity of every spot, the crystals and the full intensity list (see :class:`Truth`).

The physics, per frame (all image values in photons until the final gain):

* 0, 1 or 2 crystals of a lysozyme-like tetragonal P cell in uniformly random orientations;
* every reflection predicted on a panel gets a 2-D Gaussian spot (pixel-integrated, standard
  deviation ``spot_sigma_px``) centred on its predicted position, holding
  ``true_I = scale * I_full(hkl) * partiality`` photons, where ``I_full`` follows Wilson
  statistics (``I0 * exp(-B / (2 d^2)) * E``, E unit-exponential, one value per 4/mmm
  equivalence class, P4(3)2(1)2 absences zero) and ``partiality`` is CrystFEL's excitation
  weight (clipped to 1) from the prediction;
* a smooth background: water ring (Gaussian in q = 1/d around ``water_ring_A``), diffuse
  ``exp(-q / 0.12)`` term, linear slopes in lab x and y, and a flat level;
* Poisson noise on ``bragg + background``; dead pixels (a column and a block) read 0, hot
  pixels 20000-65000 ADU; pixel values are photons times ``adu_per_photon``.

Coordinates follow CrystFEL: positions are **data-array** coordinates (fs, ss) with pixel i
spanning [i, i + 1) (centre i + 0.5); arrays are indexed ``[ss, fs]``.  Panel-relative
positions are ``fs - min_fs``, ``ss - min_ss``.

Every random draw comes from ``numpy.random.default_rng([seed, stream_id, frame])``, so frame
i is the same whatever ``n_frames`` is, and the same seed gives the same stream bytes.

Run ``python -m streamfilter.synth DIR --seed 1 --name example`` (or ``streamfilter synth``)
to write a data set.

Other detectors: ``SynthConfig(layout=...)`` simulates the same physics on a CSPAD-, AGIPD-,
LPD-, JUNGFRAU-16M-, EIGER-16M- or PILATUS-like layout, or on any CrystFEL geometry file,
and writes the frames as those detectors store them (:mod:`.layouts`, :mod:`.canvas`,
:mod:`.writers`).

Modules: :mod:`.config` (SynthConfig, geometry and cell files), :mod:`.physics` (intensities,
spots, background, bad pixels), :mod:`.simulate` (one frame), :mod:`.chunks` (stream text),
:mod:`.truth` (Truth), :mod:`.files` (HDF5 and truth files, :func:`load_truth`),
:mod:`.dataset` (:func:`generate`) and :mod:`.demo` (``streamfilter demo``).  The public
names below are imported on first use, so ``import streamfilter.synth.config`` stays light.
"""


from __future__ import annotations

import importlib

# public name -> the module of this package that defines it
_EXPORTS = {
    "SynthConfig": "config",
    "geometry_text": "config",
    "cell_text": "config",
    "DATA_PATH": "config",
    "MASK_PATH": "config",
    "MASK_GOOD": "config",
    "MASK_BAD": "config",
    "PANEL_NAMES": "config",
    "BRAGG_QUANTUM": "physics",
    "BACKGROUND_COLUMNS": "physics",
    "background_image": "physics",
    "Truth": "truth",
    "TruthReflections": "truth",
    "TruthCrystals": "truth",
    "load_truth": "files",
    "SynthDataset": "dataset",
    "generate": "dataset",
    "run_demo": "demo",
    "LAYOUT_NAMES": "layouts",
    "make_layout": "layouts",
}

__all__ = [
    "SynthConfig",
    "SynthDataset",
    "Truth",
    "TruthReflections",
    "TruthCrystals",
    "generate",
    "load_truth",
    "geometry_text",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
