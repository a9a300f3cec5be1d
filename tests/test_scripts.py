"""Tests of the pipeline shell scripts in ``crystfel_scripts/``.

The real-run tests need neither CrystFEL nor Slurm, installed or not: they put stand-ins
first in ``PATH`` (and the tests of a missing tool hide the real one, see ``path_without``).
``partialator``, ``check_hkl`` and ``compare_hkl`` log their arguments and write the files
they name; ``sbatch`` logs its arguments, runs the ``--wrap`` script at once (each array
task in turn, a dependent job only after its dependency succeeded) and prints a job id;
``streamfilter`` logs and then runs the real ``streamfilter`` of this checkout.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT_DIR = REPO / "crystfel_scripts"
SCRIPTS = ["reintegrate_and_merge.sh", "compare_high_low.sh", "slurm_reintegrate.sh"]
CRYSTFEL_TOOLS = ["partialator", "check_hkl", "compare_hkl", "sbatch"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None,
                                reason="bash not found (crystfel_scripts/ are bash scripts)")

FAKE_TOOL = r'''#!{python}
"""Stand-in for {{streamfilter, partialator, check_hkl, compare_hkl, sbatch}} in tests."""
import json, os, subprocess, sys

name, argv = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([name, *argv]) + "\n")


def value(opt):
    for k, a in enumerate(argv):
        if a == opt and k + 1 < len(argv):
            return argv[k + 1]
        if a.startswith(opt + "="):
            return a[len(opt) + 1:]
    return None


if name == "streamfilter" and not os.environ.get("FAKE_STREAMFILTER_LOG_ONLY"):
    sys.path.insert(0, {repo!r})
    from streamfilter.cli import main
    sys.exit(main(argv))
elif name == "partialator":
    for suffix in ("", "1", "2"):
        with open(value("-o") + suffix, "w") as f:
            f.write("fake reflection list\n")
elif name in ("check_hkl", "compare_hkl"):
    with open(value("--shell-file"), "w") as f:
        f.write("fake shells\n")
elif name == "sbatch":
    state_file = os.environ["FAKE_SLURM_STATE"]
    state = {{"next": 4100, "ok": []}}
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
    job = state["next"]
    state["next"] += 1
    dep = value("--dependency")
    ok = dep is None or int(dep.split(":")[1]) in state["ok"]
    if ok:
        array = value("--array")
        tasks = [None]
        if array:
            lo, hi = array.split("%")[0].split("-")
            tasks = range(int(lo), int(hi) + 1)
        for task in tasks:
            env = dict(os.environ)
            if task is not None:
                env["SLURM_ARRAY_TASK_ID"] = str(task)
            ok = subprocess.run(["sh", "-c", value("--wrap")], env=env).returncode == 0 and ok
    if ok:
        state["ok"].append(job)
    with open(state_file, "w") as f:
        json.dump(state, f)
    print(f"{{job}};fakecluster")
'''


def script(name: str) -> Path:
    return SCRIPT_DIR / name




def path_without(*tools: str) -> str:
    """The current PATH with none of ``tools`` on it: a directory holding one of them is
    replaced by a directory of links to everything else in it (dropping it would also drop
    bash and the coreutils when, say, sbatch is installed in /usr/bin)."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return os.pathsep.join(
        _shadow(Path(d), tools) if any((Path(d) / t).exists() for t in tools) else d
        for d in dirs
    )


_SHADOWS: dict[tuple[str, tuple[str, ...]], str] = {}


def _shadow(directory: Path, tools: tuple[str, ...]) -> str:
    key = (str(directory), tools)
    if key not in _SHADOWS:
        shadow = Path(tempfile.mkdtemp(prefix="path-without-"))
        atexit.register(shutil.rmtree, shadow, True)
        for entry in directory.iterdir():
            if entry.name not in tools:
                (shadow / entry.name).symlink_to(entry)
        _SHADOWS[key] = str(shadow)
    return _SHADOWS[key]


def run(name: str, *args: str | Path, env: dict | None = None, cwd: Path | None = None):
    """Run a script with bash; returns the CompletedProcess (text)."""
    return subprocess.run(
        ["bash", str(script(name)), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def commands(stdout: str) -> list[list[str]]:
    """The --dry-run output, one shell-split command per line."""
    return [shlex.split(line) for line in stdout.splitlines()]


def dry_run(name: str, *args: str | Path, env: dict | None = None) -> list[list[str]]:
    r = run(name, "--dry-run", *args, env=env)
    assert r.returncode == 0, r.stderr
    return commands(r.stdout)


@pytest.fixture
def fake_env(tmp_path: Path) -> dict:
    """Environment with the stand-in tools first in PATH and a fresh log."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    text = FAKE_TOOL.format(python=sys.executable, repo=str(REPO))
    for tool in ["streamfilter", *CRYSTFEL_TOOLS]:
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{path_without(*CRYSTFEL_TOOLS)}"
    env["FAKE_LOG"] = str(tmp_path / "fake.log")
    env["FAKE_SLURM_STATE"] = str(tmp_path / "slurm.json")
    env["STREAMFILTER_CACHE"] = str(tmp_path / "cache")
    return env


def logged(env: dict) -> list[list[str]]:
    log = Path(env["FAKE_LOG"])
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def no_crystfel_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = path_without(*CRYSTFEL_TOOLS)
    return env


# --------------------------------------------------------------------------------------------
# all scripts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name: str) -> None:
    assert os.access(script(name), os.X_OK), f"{name} is not executable"
    r = run(name, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"Usage: {name} ")
    for word in ("--dry-run", "-y", "Example:", "--"):
        assert word in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("name", [*SCRIPTS, "common.sh"])
def test_shellcheck(name: str) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (lints crystfel_scripts/)")
    r = subprocess.run(["shellcheck", str(script(name))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


REQUIRED = {
    "reintegrate_and_merge.sh": (
        ["-i", "in.stream", "-o", "out", "-y", "4/mmm", "-p", "x.cell"],
        ["-i", "-o", "-y", "-p"],
    ),
    "slurm_reintegrate.sh": (
        ["-i", "in.stream", "-o", "out", "-n", "4", "-y", "4/mmm"],
        ["-i", "-o", "-n", "-y"],
    ),
    "compare_high_low.sh": (["-y", "4/mmm", "a.stream", "b.stream"], ["-y"]),
}


@pytest.mark.parametrize("name,option", [(n, o) for n, (_, opts) in REQUIRED.items() for o in opts])
def test_missing_required_option(name: str, option: str) -> None:
    args, _ = REQUIRED[name]
    k = args.index(option)
    r = run(name, "--dry-run", *args[:k], *args[k + 2 :])
    assert r.returncode == 2
    assert r.stdout == ""
    assert re.search(rf"error: missing required {option} ", r.stderr), r.stderr


@pytest.mark.parametrize(
    "name,args,message",
    [
        ("compare_high_low.sh", ["-y", "4/mmm", "a.stream"], "need exactly two streams"),
        (
            "reintegrate_and_merge.sh",
            [*REQUIRED["reintegrate_and_merge.sh"][0], "-j", "0"],
            "-j needs a positive integer",
        ),
        (
            "reintegrate_and_merge.sh",
            [*REQUIRED["reintegrate_and_merge.sh"][0], "--method", "magic"],
            "--method must be profile, robust or crystfel",
        ),
        (
            "slurm_reintegrate.sh",
            [*REQUIRED["slurm_reintegrate.sh"][0], "--frobnicate"],
            "unknown option '--frobnicate'",
        ),
        (
            "reintegrate_and_merge.sh",
            [*REQUIRED["reintegrate_and_merge.sh"][0], "--highres"],
            "option --highres needs a value",
        ),
    ],
)
def test_bad_arguments(name: str, args: list[str], message: str) -> None:
    r = run(name, "--dry-run", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("name", SCRIPTS)
def test_readme_examples_dry_run(name: str) -> None:
    """Every example in crystfel_scripts/README.md runs under --dry-run."""
    text = (SCRIPT_DIR / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    examples = [shlex.split(b.replace("\\\n", " ")) for b in blocks]
    examples = [e for e in examples if e[0].endswith("/" + name)]
    assert examples, f"no README example for {name}"
    for ex in examples:
        ex = [a for a in ex if a != "--dry-run"]
        r = run(name, "--dry-run", *ex[1:])
        assert r.returncode == 0, r.stderr
        assert len(commands(r.stdout)) >= 2


# --------------------------------------------------------------------------------------------
# reintegrate_and_merge.sh
# --------------------------------------------------------------------------------------------


def test_reintegrate_and_merge_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "new dir" / "run"
    cmds = dry_run(
        "reintegrate_and_merge.sh",
        "-i", "/data/lyso run.stream", "-o", out, "-y", "4/mmm", "-p", "lyso.cell",
        "--method=robust", "--int-radius", "3,5,8", "--background", "plane",
        "--data-root", "/frames/a", "--data-root=/frames/b", "-g", "det.geom", "-j", "8",
        "--highres", "2.0", "--lowres=30", "--nshells", "12",
        "--", "--model=unity", "--iterations=1", "--polarisation=none", "extra.stream",
    )  # fmt: skip
    o = str(out)
    shells = ["-y", "4/mmm", "-p", "lyso.cell", "--nshells=12", "--lowres=30", "--highres=2.0"]
    assert cmds == [
        ["mkdir", "-p", "--", str(out.parent)],
        ["streamfilter", "reintegrate", "/data/lyso run.stream", "-o", f"{o}.stream",
         "--method", "robust", "--int-radius", "3,5,8", "--background", "plane",
         "--data-root", "/frames/a", "--data-root", "/frames/b", "-g", "det.geom", "-j", "8"],
        ["partialator", "-i", f"{o}.stream", "-o", f"{o}.hkl", "-y", "4/mmm", "-j", "8",
         "--model=unity", "--iterations=1", "--polarisation=none", "extra.stream"],
        ["check_hkl", *shells, f"--shell-file={o}_check.dat", f"{o}.hkl"],
        ["compare_hkl", *shells, "--fom=CC", f"--shell-file={o}_CChalf.dat",
         f"{o}.hkl1", f"{o}.hkl2"],
        ["compare_hkl", *shells, "--fom=Rsplit", f"--shell-file={o}_Rsplit.dat",
         f"{o}.hkl1", f"{o}.hkl2"],
    ]  # fmt: skip
    assert not out.parent.exists(), "--dry-run created a directory"


def test_reintegrate_and_merge_defaults(tmp_path: Path) -> None:
    """Only what was asked for is passed; the output directory exists, so no mkdir."""
    o = str(tmp_path / "run")
    cmds = dry_run(
        "reintegrate_and_merge.sh", "-i", "in.stream", "-o", f"{o}.stream", "-y", "mmm",
        "-p", "c.pdb",
    )  # fmt: skip
    assert cmds[:2] == [
        ["streamfilter", "reintegrate", "in.stream", "-o", f"{o}.stream"],
        ["partialator", "-i", f"{o}.stream", "-o", f"{o}.hkl", "-y", "mmm"],
    ]
    assert [c[0] for c in cmds] == ["streamfilter", "partialator"] + ["check_hkl"] + [
        "compare_hkl"
    ] * 2


def test_dry_run_notes_missing_tools_on_stderr_only(tmp_path: Path) -> None:
    env = no_crystfel_env()
    r = run(
        "reintegrate_and_merge.sh", "--dry-run", "-i", "in.stream", "-o", tmp_path / "r",
        "-y", "4/mmm", "-p", "x.cell", env=env,
    )  # fmt: skip
    assert r.returncode == 0
    note = next(line for line in r.stderr.splitlines() if "not found in PATH" in line)
    for tool in ("partialator", "check_hkl", "compare_hkl"):
        assert tool in note
    assert [c[0] for c in commands(r.stdout)][:2] == ["streamfilter", "partialator"]


@pytest.mark.parametrize(
    "name,args,tool",
    [
        ("reintegrate_and_merge.sh", REQUIRED["reintegrate_and_merge.sh"][0], "partialator"),
        ("slurm_reintegrate.sh", REQUIRED["slurm_reintegrate.sh"][0], "sbatch"),
        ("compare_high_low.sh", ["--crystfel", "yes", "-p", "x.cell",
                                 *REQUIRED["compare_high_low.sh"][0]], "compare_hkl"),
    ],
)  # fmt: skip
def test_real_run_stops_naming_missing_tool(
    tmp_path: Path, name: str, args: list[str], tool: str
) -> None:
    r = run(name, *args, env=no_crystfel_env(), cwd=tmp_path)
    assert r.returncode == 127
    assert "not found in PATH" in r.stderr and tool in r.stderr
    assert r.stdout == ""
    assert list(tmp_path.iterdir()) == [], "nothing may run before the tool check"


def test_reintegrate_and_merge_real_run(ref_small: Path, tmp_path: Path, fake_env) -> None:
    """A real run executes exactly the --dry-run commands and writes every output."""
    src = ref_small / "lyso_dev_single_r345.stream"  # 5 frames, one file each
    out = tmp_path / "out" / "single"
    args = ["-i", src, "-o", out, "-y", "4/mmm", "-p", ref_small / "lysozyme.cell",
            "--highres", "2.0", "--", "--model=unity", "--iterations=1"]  # fmt: skip
    expected = dry_run("reintegrate_and_merge.sh", *args, env=fake_env)
    r = run("reintegrate_and_merge.sh", *args, env=fake_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert logged(fake_env) == [c for c in expected if c[0] != "mkdir"]
    assert expected[0] == ["mkdir", "-p", "--", str(out.parent)]
    for suffix in (".stream", ".hkl", ".hkl1", ".hkl2", "_check.dat", "_CChalf.dat",
                   "_Rsplit.dat"):  # fmt: skip
        assert Path(f"{out}{suffix}").is_file(), suffix
    text = Path(f"{out}.stream").read_text()
    assert text.count("----- Begin chunk -----") == 5
    assert text.count("--- Begin crystal") == 5


# --------------------------------------------------------------------------------------------
# compare_high_low.sh
# --------------------------------------------------------------------------------------------


def test_compare_high_low_dry_run_with_crystfel(tmp_path: Path) -> None:
    d = str(tmp_path / "report")
    cmds = dry_run(
        "compare_high_low.sh", "-y", "4/mmm", "-p", "lyso.cell", "--reference", "truth.hkl",
        "-o", d, "--highres=2.0", "--nshells", "8", "--crystfel", "yes", "-j", "2",
        "high.stream", "low.stream", "--", "--model=unity", "--polarisation=none",
    )  # fmt: skip
    sh = ["-y", "4/mmm", "-p", "lyso.cell", "--nshells=8", "--highres=2.0"]
    assert cmds == [
        ["mkdir", "-p", "--", d],
        ["streamfilter", "compare", "high.stream", "low.stream", "-y", "4/mmm", "--shells", "8",
         "-p", "lyso.cell", "--reference", "truth.hkl", "--highres", "2.0",
         "--json", f"{d}/compare.json", "--plots", f"{d}/plots", "|", "tee",
         f"{d}/compare.txt"],
        ["partialator", "-i", "high.stream", "-o", f"{d}/a.hkl", "-y", "4/mmm", "-j", "2",
         "--model=unity", "--polarisation=none"],
        ["partialator", "-i", "low.stream", "-o", f"{d}/b.hkl", "-y", "4/mmm", "-j", "2",
         "--model=unity", "--polarisation=none"],
        ["compare_hkl", *sh, "--fom=CC", f"--shell-file={d}/a_vs_b_CC.dat",
         f"{d}/a.hkl", f"{d}/b.hkl"],
        ["compare_hkl", *sh, "--fom=R1I", f"--shell-file={d}/a_vs_b_R1I.dat",
         f"{d}/a.hkl", f"{d}/b.hkl"],
        ["compare_hkl", *sh, "--fom=CC", f"--shell-file={d}/a_CChalf.dat",
         f"{d}/a.hkl1", f"{d}/a.hkl2"],
        ["compare_hkl", *sh, "--fom=CC", f"--shell-file={d}/b_CChalf.dat",
         f"{d}/b.hkl1", f"{d}/b.hkl2"],
        ["compare_hkl", *sh, "--fom=CC", f"--shell-file={d}/a_vs_reference_CC.dat",
         f"{d}/a.hkl", "truth.hkl"],
        ["compare_hkl", *sh, "--fom=CC", f"--shell-file={d}/b_vs_reference_CC.dat",
         f"{d}/b.hkl", "truth.hkl"],
    ]  # fmt: skip


def test_compare_high_low_auto_follows_path(tmp_path: Path, fake_env: dict) -> None:
    """--crystfel auto merges with CrystFEL only when it is installed and a cell is given."""
    args = ["-y", "4/mmm", "-o", tmp_path, "-p", "c.cell", "a.stream", "b.stream"]
    with_cf = dry_run("compare_high_low.sh", *args, env=fake_env)
    assert [c[0] for c in with_cf] == ["streamfilter"] + ["partialator"] * 2 + ["compare_hkl"] * 4
    r = run("compare_high_low.sh", "--dry-run", *args, env=no_crystfel_env())
    assert [c[0] for c in commands(r.stdout)] == ["streamfilter"]
    assert "skipping the CrystFEL merge" in r.stderr
    no_cell = dry_run("compare_high_low.sh", *args[:4], *args[6:], env=fake_env)
    assert [c[0] for c in no_cell] == ["streamfilter"]


def test_compare_high_low_real_run(ref_small: Path, tmp_path: Path, fake_env) -> None:
    """Real streamfilter compare of r345 vs r234 (+ stand-in CrystFEL) writes the report."""
    d = tmp_path / "report"
    args = ["-y", "4/mmm", "-p", ref_small / "lysozyme.cell", "--reference",
            ref_small / "truth.hkl", "-o", d, ref_small / "lyso_dev_r345.stream",
            ref_small / "lyso_dev_r234.stream"]  # fmt: skip
    expected = dry_run("compare_high_low.sh", *args, env=fake_env)
    r = run("compare_high_low.sh", *args, env=fake_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    tee = expected[1].index("|")
    assert logged(fake_env) == [expected[1][:tee]] + expected[2:]
    assert (d / "compare.txt").read_text() in r.stdout
    report = json.loads((d / "compare.json").read_text())
    # ref-small's README: all 30 frames indexed in both streams with the true orientation,
    # 11102 reflection rows in r345 and 11262 in r234
    obs = report["observations"]
    assert (obs["crystals_matched"], obs["n_a"], obs["n_b"]) == (30, 11102, 11262)
    assert report["inputs"]["point_group"] == "4/mmm"
    plots = sorted(p.name for p in (d / "plots").iterdir())
    assert plots and all(name.endswith(".png") for name in plots)
    for f in ("a.hkl", "b.hkl", "a_vs_b_CC.dat", "a_vs_b_R1I.dat", "a_CChalf.dat",
              "b_CChalf.dat", "a_vs_reference_CC.dat", "b_vs_reference_CC.dat"):  # fmt: skip
        assert (d / f).is_file(), f


# --------------------------------------------------------------------------------------------
# slurm_reintegrate.sh
# --------------------------------------------------------------------------------------------


def _wrap(cmd: list[str]) -> str:
    (w,) = [a[len("--wrap=") :] for a in cmd if a.startswith("--wrap=")]
    return w


def _run_wrap(wrap: str, fake_env: dict, task: int | None = None) -> list[list[str]]:
    """Run a job script as Slurm would (sh) with stand-ins; return the logged commands."""
    env = dict(fake_env)
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(task)
    env["FAKE_STREAMFILTER_LOG_ONLY"] = "1"
    Path(env["FAKE_LOG"]).unlink(missing_ok=True)
    subprocess.run(["sh", "-c", wrap], env=env, check=True, capture_output=True)
    return logged(env)


def test_slurm_dry_run(tmp_path: Path, fake_env: dict) -> None:
    src = tmp_path / "data" / "run.stream"
    out = tmp_path / "reint" / "run"
    wd = f"{out}-shards"
    cmds = dry_run(
        "slurm_reintegrate.sh", "-i", src, "-o", out, "-n", "4", "-y", "4/mmm",
        "--partition", "short", "--time=01:00:00", "--mem", "8G", "--cpus-per-task", "8",
        "--max-running", "2", "--sbatch-arg=--account=p1234", "--sbatch-arg", "--qos=high",
        "--method", "robust", "--int-radius", "3,5,8", "--background", "plane",
        "-g", "/g/det.geom", "--data-root", "/frames/a", "--data-root=rel dir",
        "--allow-failed", "5%",
        "--", "--model=unity", "--iterations=1",
    )  # fmt: skip
    common = ["--cpus-per-task=8", "--partition=short", "--time=01:00:00", "--mem=8G",
              "--account=p1234", "--qos=high"]  # fmt: skip
    assert [c[:2] for c in cmds] == [["mkdir", "-p"], ["mkdir", "-p"],
                                     ["streamfilter", "split"], ["sbatch", "--parsable"],
                                     ["sbatch", "--parsable"]]  # fmt: skip
    assert cmds[0] == ["mkdir", "-p", "--", str(out.parent)]
    assert cmds[1] == ["mkdir", "-p", "--", f"{wd}/logs"]
    assert cmds[2] == ["streamfilter", "split", str(src), "-n", "4", "-o", f"{wd}/shard"]
    array, merge = cmds[3], cmds[4]
    assert array[:-1] == ["sbatch", "--parsable", "--job-name=sf-reint", "--array=0-3%2",
                          *common, f"--output={wd}/logs/reint-%A_%a.log"]  # fmt: skip
    assert merge[:-1] == ["sbatch", "--parsable", "--job-name=sf-merge",
                          "--dependency=afterok:JOBID", *common,
                          f"--output={wd}/logs/merge-%j.log"]  # fmt: skip

    # what each job runs: execute the job scripts with stand-ins
    out.parent.mkdir()
    for task in (0, 3):
        assert _run_wrap(_wrap(array), fake_env, task) == [
            ["streamfilter", "reintegrate", f"{wd}/shard-{task:03d}.stream",
             "-o", f"{wd}/reint-{task:03d}.stream", "--data-root", str(src.parent),
             "--data-root", "/frames/a", "--data-root", f"{Path.cwd()}/rel dir",
             "-j", "8", "--method", "robust", "--int-radius", "3,5,8",
             "--background", "plane", "-g", "/g/det.geom", "--allow-failed", "5%"]
        ]  # fmt: skip
    # outside an array task the task script refuses to run (instead of re-doing shard 000)
    Path(fake_env["FAKE_LOG"]).unlink()
    r = subprocess.run(["sh", "-c", _wrap(array)], capture_output=True, text=True, env=fake_env)
    assert r.returncode != 0 and "not an array task" in r.stderr
    assert logged(fake_env) == []
    assert _run_wrap(_wrap(merge), fake_env) == [
        ["streamfilter", "cat", *(f"{wd}/reint-{k:03d}.stream" for k in range(4)),
         "-o", f"{out}.stream"],
        ["partialator", "-i", f"{out}.stream", "-o", f"{out}.hkl", "-y", "4/mmm", "-j", "8",
         "--model=unity", "--iterations=1"],
    ]  # fmt: skip


def test_slurm_no_merge_and_setup(tmp_path: Path) -> None:
    cmds = dry_run(
        "slurm_reintegrate.sh", "-i", "/d/in.stream", "-o", tmp_path / "o", "-n", "1",
        "--no-merge", "--setup", "module load crystfel/0.12.0", "--workdir", tmp_path / "w",
    )  # fmt: skip
    array, merge = cmds[-2], cmds[-1]
    assert "--array=0-0" in array
    assert "--cpus-per-task=4" in array  # the default
    for job in (array, merge):
        assert _wrap(job).startswith("set -e; module load crystfel/0.12.0; ")
    assert "partialator" not in _wrap(merge)
    assert f"{tmp_path}/w/reint-000.stream" in _wrap(merge)


def test_slurm_real_run_equals_single_reintegrate(
    ref_small: Path, tmp_path: Path, fake_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """split -> array job -> cat gives the bytes of one reintegrate of the whole stream."""
    src = ref_small / "lyso_dev_single_r345.stream"  # 5 frames, one file each
    out = tmp_path / "slurm" / "single"
    r = run(
        "slurm_reintegrate.sh", "-i", src, "-o", out, "-n", "2", "-y", "4/mmm",
        "--cpus-per-task", "1", "--", "--model=unity",
        env=fake_env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "submitted array job 4100 (2 tasks) and merge job 4101" in r.stderr
    calls = logged(fake_env)
    sbatch = [c for c in calls if c[0] == "sbatch"]
    assert len(sbatch) == 2
    assert "--array=0-1" in sbatch[0] and "--dependency=afterok:4100" in sbatch[1]
    reint = [c for c in calls if c[:2] == ["streamfilter", "reintegrate"]]
    assert [c[2] for c in reint] == [f"{out}-shards/shard-{k:03d}.stream" for k in range(2)]
    assert calls[-1] == ["partialator", "-i", f"{out}.stream", "-o", f"{out}.hkl", "-y",
                         "4/mmm", "-j", "1", "--model=unity"]  # fmt: skip

    from streamfilter.cli import main

    direct = tmp_path / "direct.stream"
    monkeypatch.setenv("STREAMFILTER_CACHE", str(tmp_path / "cache"))
    # the tasks' --data-root is in the audit line: give the same one
    assert main(["reintegrate", str(src), "-o", str(direct), "-q",
                 "--data-root", str(src.parent)]) == 0  # fmt: skip
    assert Path(f"{out}.stream").read_bytes() == direct.read_bytes()
    assert Path(f"{out}.hkl").is_file()


def test_slurm_strict_and_allow_failed_options(tmp_path: Path) -> None:
    args = ["-i", "/d/in.stream", "-o", tmp_path / "o", "-n", "1", "--no-merge"]
    (array, _) = dry_run("slurm_reintegrate.sh", *args, "--strict")[-2:]
    assert _wrap(array).endswith(" --strict")
    for bad, message in [
        (["--strict", "--allow-failed", "1"], "contradict"),
        (["--allow-failed", "some"], "--allow-failed needs a count"),
        (["--background", "clip"], "--background must be radial, plane or mean"),
    ]:
        r = run("slurm_reintegrate.sh", "--dry-run", *args, *bad)
        assert r.returncode != 0 and message in r.stderr, r.stderr


@pytest.mark.parametrize("allow", [None, "1"])
def test_slurm_merge_waits_for_every_chunk_reintegrated(
    tmp_path: Path, fake_env: dict, allow: str | None
) -> None:
    """A task with a chunk whose frame is missing exits 3: the array job fails and the
    merge job (afterok) never runs, unless --allow-failed admits it."""
    from streamfilter.synth import SynthConfig, generate

    ds = generate(tmp_path / "data", SynthConfig(seed=5, n_frames=8))
    head, *chunks = ds.stream_path.read_bytes().split(b"----- Begin chunk -----")
    i = next(k for k, c in enumerate(chunks) if b"--- Begin crystal" in c)
    chunks[i] = chunks[i].replace(f"Image filename: {ds.stream_path.stem}.h5".encode(),
                                  b"Image filename: gone.h5")  # fmt: skip
    ds.stream_path.write_bytes(b"----- Begin chunk -----".join([head, *chunks]))
    out = tmp_path / "slurm" / "run"
    extra = [] if allow is None else ["--allow-failed", allow]
    r = run(
        "slurm_reintegrate.sh", "-i", ds.stream_path, "-o", out, "-n", "2", "-y", "4/mmm",
        "--cpus-per-task", "1", *extra, env=fake_env, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr  # submitting worked
    calls = logged(fake_env)
    assert len([c for c in calls if c[:2] == ["streamfilter", "reintegrate"]]) == 2
    merged = [c for c in calls if c[:2] == ["streamfilter", "cat"]]
    failed = Path(f"{out}-shards/reint-000.stream.failed")
    assert failed.is_file() and "gone.h5" in failed.read_text()
    if allow is None:
        assert merged == [] and not Path(f"{out}.stream").exists()
    else:
        assert len(merged) == 1 and Path(f"{out}.stream").is_file()


def test_reintegrate_and_merge_help_lists_the_backgrounds() -> None:
    text = run("reintegrate_and_merge.sh", "--help").stdout
    assert "(radial, plane, mean)" in text and "clip" not in text
