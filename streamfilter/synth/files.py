"""The truth file of a simulated data set (the frame files are in :mod:`.writers`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from .. import __version__
from ..errors import StreamfilterError
from .config import SynthConfig
from .physics import BACKGROUND_COLUMNS
from .truth import Truth, TruthCrystals, TruthReflections


def compression_kwargs(config: SynthConfig) -> dict:
    if config.compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    return dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))


def write_truth(path: Path, truth: Truth) -> None:
    gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    n, n_ss, n_fs = truth.bragg.shape
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = f"streamfilter.synth {__version__}"
        f.attrs["config"] = truth.config.to_json()
        f.attrs["units"] = (
            "photons (times adu_per_photon for ADU); positions in data-array "
            "pixels, pixel i spans [i, i+1)"
        )
        f.attrs["adu_per_photon"] = truth.adu_per_photon
        f.attrs["panel_names"] = list(truth.panel_names)
        for key in ("panel_min_fs", "panel_max_fs", "panel_min_ss", "panel_max_ss"):
            f.attrs[key] = list(getattr(truth, key))
        f.attrs["panel_canvas_ss0"] = list(truth.panel_canvas_ss0)
        if truth.bragg.size:
            f.create_dataset("bragg", data=truth.bragg, chunks=(1, n_ss, n_fs), **gz)
        else:
            f.attrs["n_frames"] = n
        for key, arr in truth.frames.items():
            f.create_dataset(f"frames/{key}", data=arr, track_times=False)
        for key, arr in truth.background_components.items():
            f.create_dataset(f"background/components/{key}", data=arr, **gz)
        f.create_dataset("background/coeffs", data=truth.background_coeffs, track_times=False)
        f["background/coeffs"].attrs["columns"] = list(BACKGROUND_COLUMNS)
        f.create_dataset("bad_pixels/dead", data=truth.dead, **gz)
        f.create_dataset("bad_pixels/hot", data=truth.hot, **gz)
        for group, obj in (("reflections", truth.reflections), ("crystals", truth.crystals)):
            for fld in dataclasses.fields(obj):
                f.create_dataset(f"{group}/{fld.name}", data=getattr(obj, fld.name), **gz)
        for key, arr in truth.intensities.items():
            f.create_dataset(f"intensities/{key}", data=arr, **gz)


def load_truth(path: str | Path) -> Truth:
    """Read the truth of a simulated data set.

    Parameters
    ----------
    path : path-like
        The ``<name>_truth.h5`` file, or a directory holding exactly one such file.

    Returns
    -------
    Truth
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*_truth.h5"))
        if len(found) != 1:
            raise StreamfilterError(
                f"{path}: expected one *_truth.h5 file, found "
                f"{len(found)} ({', '.join(p.name for p in found)})"
            )
        path = found[0]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise StreamfilterError(f"{path}: cannot open the truth file: {e}") from e
    with f:
        if "config" not in f.attrs:
            raise StreamfilterError(f"{path}: not a streamfilter.synth truth file")
        cols = {
            g: {k: f[g][k][()] for k in f[g]} for g in ("reflections", "crystals", "intensities")
        }
        return Truth(
            config=SynthConfig.from_json(f.attrs["config"]),
            bragg=f["bragg"][()] if "bragg" in f else np.zeros((int(f.attrs["n_frames"]), 0, 0),
                                                                np.float32),
            background_components={k: v[()] for k, v in f["background/components"].items()},
            background_coeffs=f["background/coeffs"][()],
            dead=f["bad_pixels/dead"][()],
            hot=f["bad_pixels/hot"][()],
            reflections=TruthReflections(**cols["reflections"]),
            crystals=TruthCrystals(**cols["crystals"]),
            intensities=cols["intensities"],
            panel_names=tuple(str(x) for x in f.attrs["panel_names"]),
            panel_min_fs=tuple(int(x) for x in f.attrs["panel_min_fs"]),
            panel_max_fs=tuple(int(x) for x in f.attrs["panel_max_fs"]),
            panel_min_ss=tuple(int(x) for x in f.attrs["panel_min_ss"]),
            panel_max_ss=tuple(int(x) for x in f.attrs["panel_max_ss"]),
            adu_per_photon=float(f.attrs["adu_per_photon"]),
            panel_canvas_ss0=tuple(int(x) for x in f.attrs.get("panel_canvas_ss0", ())),
            frames={k: v[()] for k, v in f["frames"].items()} if "frames" in f else {},
        )
