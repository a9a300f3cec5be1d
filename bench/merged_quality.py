"""Merged quality with CrystFEL's own partialator: indexamajig's rows vs re-integrated streams.

    export PATH=$HOME/.local/crystfel/bin:$PATH  # partialator and compare_hkl (CrystFEL 0.12)
    python bench/merged_quality.py                      # ref-small, then a 160-frame synth set
    python bench/merged_quality.py --synth-frames 0     # ref-small only
    python bench/merged_quality.py --keep DIR           # keep streams, .hkl files, logs

For each data set the stream indexamajig wrote (``rings``, int-radius 3,4,5) is re-integrated
with ``streamfilter reintegrate IN -o OUT --method crystfel|robust|profile``.  Then the
original and the three re-integrated streams go through exactly the same partialator runs:

    partialator -i S -o S_unity.hkl   -y 4/mmm --polarisation=none --model=unity \
        --iterations=1 -j 2 --no-logs
    partialator -i S -o S_xsphere.hkl -y 4/mmm --polarisation=none --model=xsphere \
        --iterations=3 -j 2 --no-logs

(``--polarisation=none`` because neither pattern_sim nor ``streamfilter synth`` applies a
polarisation factor to the Bragg signal; ``--iterations`` and ``-j`` are options.)  Each merged
list is scored with compare_hkl over the fixed range 30-2.0 A in 10 shells (``-y 4/mmm -p
CELL --lowres=30 --highres=2.0 --nshells=10``), so every input has the same shells:

* CC vs truth: ``--fom=CC`` of the merged list against the true intensities (Pearson
  correlation of I over the reflections both lists hold);
* R1(I) vs truth: ``--fom=R1I``, compare_hkl's R1(I) = sum |I - k T| / sum I over the common
  reflections, T the true intensity scaled by compare_hkl's fitted relative scale factor and
  B factor (k above; it prints both);
* CC1/2: ``--fom=CC`` of partialator's half-data-set lists ``.hkl1`` against ``.hkl2``;
* Rsplit: ``--fom=Rsplit`` of the same halves, 2^-1/2 sum |I1 - I2| / (sum (I1 + I2) / 2).

Truth: ref-small's ``truth.hkl``; for the synth set the ``intensities`` of
``synth_truth.h5`` (absences left out) written as a CrystFEL list.  Data sets: ref-small
(``$STREAMFILTER_REF_SMALL`` or ``../shared/data/ref-small``, 30 frames: few observations
per reflection, so partialator is only roughly meaningful there) and a ``streamfilter synth``
set (``--synth-frames``, default 160, ``--synth-seed``, default 5) made in the work directory.

Without partialator or compare_hkl on PATH, or without any data set, the script says what is
missing and exits with status 0, measuring nothing.  A tool that fails stops it with
status 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

METHODS = ("crystfel", "robust", "profile")
MODELS = ("unity", "xsphere")
POINT_GROUP = "4/mmm"
LOWRES_A, HIGHRES_A, NSHELLS = 30.0, 2.0, 10
TOOLS = ("partialator", "compare_hkl")


@dataclass
class DataSet:
    """One data set: the indexamajig-style stream, its frames' folder, cell and truth list."""

    name: str
    stream: Path
    data_root: Path
    cell: Path
    truth_hkl: Path


@dataclass
class Figures:
    """compare_hkl figures of one merged list: overall value and per-shell values."""

    overall: dict[str, float] = field(default_factory=dict)
    shells: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    crystals: str = ""


def ref_small() -> Path | None:
    """ref-small's folder, from ``$STREAMFILTER_REF_SMALL`` or beside the repository."""
    env = os.environ.get("STREAMFILTER_REF_SMALL")
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "ref-small"]:
        if (c / "lyso_dev_r345.stream").is_file() and (c / "truth.hkl").is_file():
            return c
    return None


def run(cmd: list[str], cwd: Path, log: Path) -> str:
    """Run ``cmd`` in ``cwd``, append its command line and output to ``log``; return stdout
    and stderr together.  A non-zero exit stops the script (status 1) naming the command."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n" + out + "\n")
    if proc.returncode != 0:
        sys.exit(f"merged_quality: {' '.join(cmd)} exited with {proc.returncode} (log: {log})")
    return out


def make_synth(work: Path, n_frames: int, seed: int, log: Path) -> DataSet:
    """Simulate ``n_frames`` frames with ``streamfilter synth`` and write its truth list."""
    import h5py
    import numpy as np

    from streamfilter.analysis.hkl import ReflectionList, write_hkl

    d = work / "synth"
    run([sys.executable, "-m", "streamfilter", "synth", str(d), "--seed", str(seed),
         "--n-frames", str(n_frames)], work, log)  # fmt: skip
    with h5py.File(d / "synth_truth.h5", "r") as f:
        cols = {k: f["intensities"][k][()] for k in ("h", "k", "l", "I")}
    keep = cols["I"] > 0  # the P4(3)2(1)2 absences are stored as zeros
    n = int(keep.sum())
    truth = ReflectionList(
        h=cols["h"][keep].astype(np.int32), k=cols["k"][keep].astype(np.int32),
        l=cols["l"][keep].astype(np.int32), I=cols["I"][keep].astype(np.float64),
        sigma=np.zeros(n), nmeas=np.ones(n, dtype=np.int64), phase=np.full(n, np.nan),
        symmetry=POINT_GROUP, notes=[],
    )  # fmt: skip
    write_hkl(d / "truth.hkl", truth)
    return DataSet(f"synth ({n_frames} frames, seed {seed})", d / "synth.stream", d,
                   d / "synth.cell", d / "truth.hkl")  # fmt: skip


def reintegrate(ds: DataSet, out_dir: Path, jobs: int, log: Path) -> dict[str, Path]:
    """The inputs to merge: indexamajig's stream and one re-integrated stream per method."""
    streams = {"indexamajig": ds.stream}
    for method in METHODS:
        out = out_dir / f"{method}.stream"
        t0 = time.perf_counter()
        run([sys.executable, "-m", "streamfilter", "reintegrate", str(ds.stream), "-o", str(out),
             "--method", method, "--data-root", str(ds.data_root), "-j", str(jobs), "-q"],
            out_dir, log)  # fmt: skip
        print(f"  reintegrate --method {method}: {time.perf_counter() - t0:.1f} s", flush=True)
        streams[method] = out
    return streams


def partialator_cmd(stream: Path, out: Path, model: str, iterations: int, jobs: int) -> list[str]:
    """The partialator command line, the same for every input apart from the file names."""
    return ["partialator", "-i", str(stream), "-o", str(out), "-y", POINT_GROUP,
            "--polarisation=none", f"--model={model}",
            f"--iterations={1 if model == 'unity' else iterations}", "-j", str(jobs),
            "--no-logs"]  # fmt: skip


OVERALL = re.compile(r"Overall (CC|R1\(I\)|Rsplit) = ([-0-9.naNinf]+)")


def compare(a: Path, b: Path, fom: str, cell: Path, cwd: Path, log: Path
            ) -> tuple[float, list[tuple[float, float, int]]]:
    """compare_hkl ``--fom=fom`` of ``a`` against ``b``: the overall figure and, per shell,
    (d at the shell centre in A, figure, number of reflections).  R1(I) and Rsplit in %."""
    shell_file = cwd / f"{a.name}_{b.name}_{fom}.dat"
    out = run(["compare_hkl", "-y", POINT_GROUP, "-p", str(cell), f"--lowres={LOWRES_A}",
               f"--highres={HIGHRES_A}", f"--nshells={NSHELLS}", f"--fom={fom}",
               f"--shell-file={shell_file}", str(a), str(b)], cwd, log)  # fmt: skip
    m = OVERALL.search(out)
    if m is None:
        sys.exit(f"merged_quality: no overall figure in compare_hkl's output (log: {log})")
    shells = []
    for line in shell_file.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            shells.append((float(parts[3]), float(parts[1]), int(parts[2])))
    return float(m.group(2)), shells


def score(hkl: Path, ds: DataSet, cwd: Path, log: Path) -> Figures:
    """CC and R1(I) vs the truth, CC1/2 and Rsplit of the halves, overall and per shell."""
    fig = Figures()
    half1, half2 = Path(f"{hkl}1"), Path(f"{hkl}2")
    for key, a, b, fom in (("CC", hkl, ds.truth_hkl, "CC"), ("R1I", hkl, ds.truth_hkl, "R1I"),
                           ("CC1/2", half1, half2, "CC"), ("Rsplit", half1, half2, "Rsplit")):
        fig.overall[key], fig.shells[key] = compare(a, b, fom, ds.cell, cwd, log)
    return fig


def measure(ds: DataSet, work: Path, iterations: int, jobs: int) -> dict[str, dict[str, Figures]]:
    """Re-integrate, merge with both models and score; figures[model][input]."""
    out_dir = work / re.sub(r"\W+", "_", ds.name).strip("_")
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "commands.log"
    print(f"\n{ds.name}: {ds.stream}", flush=True)
    streams = reintegrate(ds, out_dir, jobs, log)
    figures: dict[str, dict[str, Figures]] = {m: {} for m in MODELS}
    for model in MODELS:
        for name, stream in streams.items():
            hkl = out_dir / f"{name}_{model}.hkl"
            t0 = time.perf_counter()
            out = run(partialator_cmd(stream, hkl, model, iterations, jobs), out_dir, log)
            fig = score(hkl, ds, out_dir, log)
            m = re.search(r"\((\d+) crystals used out of (\d+)\)", out)
            fig.crystals = f"{m.group(1)}/{m.group(2)}" if m else "?"
            figures[model][name] = fig
            print(f"  partialator --model={model} {name}: {time.perf_counter() - t0:.1f} s",
                  flush=True)
    return figures


def print_tables(ds: DataSet, figures: dict[str, dict[str, Figures]], iterations: int) -> None:
    """Per model: the overall table and the per-shell CC vs truth."""
    for model in MODELS:
        rows = figures[model]
        its = 1 if model == "unity" else iterations
        print(f"\n{ds.name}: partialator --model={model} --iterations={its}")
        print(f"{'input':<12} {'crystals':>8} {'CC truth':>9} {'R1(I) %':>8} {'CC1/2':>7} "
              f"{'Rsplit %':>8}")
        for name, f in rows.items():
            o = f.overall
            print(f"{name:<12} {f.crystals:>8} {o['CC']:9.4f} {o['R1I']:8.2f} {o['CC1/2']:7.4f} "
                  f"{o['Rsplit']:8.2f}")
        print(f"\n  CC vs truth per shell (d at shell centre, A; n = pairs, {ds.name}, {model})")
        first = next(iter(rows.values())).shells["CC"]
        print("  " + f"{'d (A)':>6} " + " ".join(f"{n:>16}" for n in rows))
        for i, (d, _, _) in enumerate(first):
            cells = []
            for f in rows.values():
                sh = f.shells["CC"]
                cells.append(f"{sh[i][1]:9.4f} {sh[i][2]:>6}" if i < len(sh) else " " * 16)
            print("  " + f"{d:6.2f} " + " ".join(cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synth-frames", type=int, default=160,
                    help="frames of the synth set (default 160; 0: no synth set)")
    ap.add_argument("--synth-seed", type=int, default=5, help="synth seed (default 5)")
    ap.add_argument("--no-ref-small", action="store_true", help="skip ref-small")
    ap.add_argument("--iterations", type=int, default=3,
                    help="partialator --iterations for xsphere (default 3; unity: 1)")
    ap.add_argument("-j", "--jobs", type=int, default=2,
                    help="-j for reintegrate and partialator (default 2)")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep its files")
    args = ap.parse_args(argv)

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"merged_quality: {', '.join(missing)} not on PATH (CrystFEL not installed; "
              "e.g. export PATH=$HOME/.local/crystfel/bin:$PATH); nothing measured.")
        return 0
    root = None if args.no_ref_small else ref_small()
    if root is None and args.synth_frames <= 0:
        print("merged_quality: no data set (ref-small not found in $STREAMFILTER_REF_SMALL or "
              "../shared/data/ref-small, and --synth-frames 0); nothing measured.")
        return 0
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="merged_quality_")
    work = Path(args.keep or tmp.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        sets = []
        if root is not None:
            sets.append(DataSet("ref-small (30 frames)", root / "lyso_dev_r345.stream", root,
                                root / "lysozyme.cell", root / "truth.hkl"))
        elif not args.no_ref_small:
            print("ref-small not found ($STREAMFILTER_REF_SMALL, ../shared/data/ref-small): "
                  "skipped")
        if args.synth_frames > 0:
            sets.append(make_synth(work, args.synth_frames, args.synth_seed,
                                   work / "synth.log"))
        results = [(ds, measure(ds, work, args.iterations, args.jobs)) for ds in sets]
        for ds, figures in results:
            print_tables(ds, figures, args.iterations)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
