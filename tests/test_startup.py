"""What a ``reintegrate --method crystfel`` run imports and sets up, in fresh processes.

Start-up is part of every run's time: pyparsing (the geometry grammar), hdf5plugin and the
robust/profile modules are imported only when needed, and the results do not change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from streamfilter.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "stream_files" / "example.stream"


def run_python(code: str, cwd: Path = REPO, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_background_choices_are_the_robust_modules():
    from streamfilter.cli.reintegrate import BACKGROUNDS
    from streamfilter.integrate.robust import BACKGROUNDS as ROBUST

    assert BACKGROUNDS == ROBUST


def test_crystfel_run_imports_only_what_it_needs(tmp_path):
    """A crystfel run in a fresh process: no pyparsing, hdf5plugin, robust or profile
    module, and the same bytes as a run in this process (where all of them are loaded)."""
    import hdf5plugin  # noqa: F401
    import pyparsing  # noqa: F401

    import streamfilter.integrate.profile  # noqa: F401

    fresh, here = tmp_path / "fresh.stream", tmp_path / "here.stream"
    code = (
        "import json, sys; from streamfilter.cli import main; "
        f"rc = main(['reintegrate', {str(EXAMPLE)!r}, '-o', {str(fresh)!r}, '-q', "
        "'--method', 'crystfel']); "
        "print(json.dumps([rc] + [m in sys.modules for m in ('pyparsing', 'hdf5plugin', "
        "'streamfilter.integrate.robust', 'streamfilter.integrate.profile')]))"
    )
    assert json.loads(run_python(code)) == [0, False, False, False, False]
    assert main(["reintegrate", str(EXAMPLE), "-o", str(here), "-q", "--method", "crystfel"]) == 0
    assert fresh.read_bytes() == here.read_bytes()


def test_help_still_describes_every_method(capsys):
    with pytest.raises(SystemExit):
        main(["reintegrate", "--help"])
    text = capsys.readouterr().out
    for word in ("crystfel  reproduces", "robust    the peak disc", "profile   robust's",
                 "--background {radial,plane,mean}"):  # fmt: skip
        assert word in text


@pytest.mark.parametrize("compression", ["bitshuffle-lz4", "gzip"])
def test_hdf5plugin_is_loaded_when_a_dataset_needs_it(tmp_path, compression):
    """In a fresh process a bitshuffle/LZ4 frame is read right (hdf5plugin imported on
    demand); a gzip frame does not import it."""
    import hdf5plugin

    data = np.random.default_rng(5).poisson(30.0, size=(2, 16, 12)).astype(np.int32)
    opts = (dict(hdf5plugin.Bitshuffle(cname="lz4")) if compression != "gzip"
            else {"compression": "gzip", "shuffle": True})  # fmt: skip
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("/d", data=data, chunks=(1, 16, 12), **opts)
    geom = (
        "clen = 0.1\nres = 10000\nadu_per_photon = 1\nphoton_energy = 9000\ndata = /d\n"
        "dim0 = %\ndim1 = ss\ndim2 = fs\na/min_fs = 0\na/max_fs = 11\na/min_ss = 0\n"
        "a/max_ss = 15\na/corner_x = 0\na/corner_y = 0\na/fs = x\na/ss = y\n"
    )
    code = (
        "import json, sys; from streamfilter.frames import FrameSource; "
        "from streamfilter.geometry import parse_geometry; "
        f"src = FrameSource(parse_geometry({geom!r}), [{str(tmp_path)!r}]); "
        "before = 'hdf5plugin' in sys.modules; "
        "a = src.load('f.h5', '//1').data['a']; "
        "print(json.dumps([before, 'hdf5plugin' in sys.modules, a.tolist()]))"
    )
    before, after, values = json.loads(run_python(code))
    assert not before and after == (compression != "gzip")
    np.testing.assert_array_equal(values, data[1])


def test_malloc_keeps_freed_memory_unless_told_otherwise():
    """On glibc the per-frame buffers are reused (no fresh pages per frame); with malloc
    settings in the environment nothing is changed."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        libc = platform.libc_ver()[0] or "unknown"
        pytest.skip(f"malloc settings are glibc's; this libc is {libc}")
    import os

    code = "from streamfilter.pipeline.tuning import keep_freed_memory as k; print(k(), k())"
    # (Dask sets MALLOC_TRIM_THRESHOLD_ in the environment of the processes it starts)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    assert run_python(code, env=env).split() == ["True", "True"]
    assert run_python(code, env={**env, "MALLOC_ARENA_MAX": "2"}).split() == ["False", "False"]
