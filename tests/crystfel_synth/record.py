"""Record CrystFEL's rings integration of small simulated data sets (see README.md here).

``CRYSTFEL_BIN=DIR python tests/crystfel_synth/record.py WORKDIR [LAYOUT ...]`` (or with
``indexamajig`` on the PATH) simulates each layout's set
(:data:`SETS`), runs CrystFEL's ``indexamajig`` on it with the true orientations
(``--indexing=file``) and writes ``<layout>_r345.stream.gz`` next to this script.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

from streamfilter.stream import read_stream
from streamfilter.synth import SynthConfig, generate

HERE = Path(__file__).resolve().parent
# layout -> (shrink, peakfinder8 threshold in ADU)
SETS = {"cspad": (4, 300), "agipd": (4, 10), "jungfrau16m": (8, 10), "eiger16m": (8, 10),
        "pilatus": (4, 10)}


def config(layout: str) -> SynthConfig:
    """The simulated set of a layout: seed 11, two frames, one crystal each."""
    return SynthConfig(seed=11, n_frames=2, name=layout, layout=layout,
                       shrink=SETS[layout][0], hit_fraction=1.0, multi_crystal_fraction=0.0)


def solutions(stream: Path, directory: Path) -> None:
    """``events.lst`` and the ``--indexing=file`` solution file ``true.sol`` of a set."""
    with read_stream(stream) as r, open(directory / "true.sol", "w") as sol, \
            open(directory / "events.lst", "w") as events:
        for c in r:
            events.write(f"{c.filename} {c.event}\n")
            for x in c.crystals:
                v = " ".join(f"{a:+.7f}" for a in (*x.astar, *x.bstar, *x.cstar))
                sol.write(f"{c.filename} {c.event} {v} 0.000 0.000 tPc\n")


def record(workdir: Path, layout: str, bindir: str) -> Path:
    directory = workdir / layout
    if directory.exists():
        shutil.rmtree(directory)
    ds = generate(directory, config(layout))
    solutions(ds.stream_path, directory)
    import hdf5plugin

    # 0.12.0 opens a relative --fromfile-input-file as "../" + name
    subprocess.run(
        ["indexamajig", "-i", "events.lst", "-g", f"{layout}.geom", "-o", "cf.stream", "-j", "1",
         "--peaks=peakfinder8", f"--threshold={SETS[layout][1]}", "--min-snr=5",
         "--min-pix-count=2", "--max-pix-count=50", "--local-bg-radius=3",
         "--indexing=file", f"--fromfile-input-file={layout}/true.sol", "--no-check-cell",
         "--no-refine", "-p", f"{layout}.cell", "--integration=rings", "--int-radius=3,4,5"],
        cwd=directory, check=False,
        env={**os.environ, "HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH,
             "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    out = HERE / f"{layout}_r345.stream.gz"
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        f.write((directory / "cf.stream").read_bytes())
    return out


def main(argv: list[str]) -> int:
    workdir = Path(argv[0])
    found = shutil.which("indexamajig")
    bindir = str(Path(found).parent) if found else os.environ.get("CRYSTFEL_BIN", "")
    for layout in argv[1:] or SETS:
        print(record(workdir, layout, bindir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
