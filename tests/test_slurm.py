"""``crystfel_scripts/slurm_reintegrate.sh`` on a real (private, single-node) Slurm cluster.

The module starts its own cluster from Debian's ``slurm-wlm`` and ``munge`` packages (see
``tests/slurm_cluster.py``) and skips, saying why, when they are not installed, when the tests
do not run as root (slurmd must) or when the daemons do not come up.  It installs nothing.

Both tests run split -> array job -> dependent cat job on the bundled example
(``stream_files/example.stream``, 20 chunks in one HDF5 file) with two array tasks:

* every chunk re-integrated: the joined stream equals, byte for byte, a local
  ``streamfilter reintegrate`` of the whole input (with the tasks' ``--data-root``);
* one chunk of the second shard names a frame that does not exist: that task exits 3, and the
  dependent job (``afterok``) never starts; Slurm leaves it pending with the reason
  ``DependencyNeverSatisfied`` and no joined stream is written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import slurm_cluster
from tests.slurm_cluster import TERMINAL, Cluster, ClusterError, make_root, tail, unavailable

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "crystfel_scripts" / "slurm_reintegrate.sh"
EXAMPLE = REPO / "stream_files"
JOB_TIMEOUT = 180  # seconds for the jobs of one submission to end

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None, reason="bash not found (the Slurm scripts are bash scripts)"
)

# The jobs run this checkout's streamfilter, whatever is installed on the machine.
STREAMFILTER = """#!{python}
import sys
sys.path.insert(0, {repo!r})
from streamfilter.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    root = make_root()
    c = Cluster(root)
    try:
        try:
            c.start()
        except (ClusterError, subprocess.SubprocessError, OSError) as e:
            pytest.skip(str(e))
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def example_copy(dest: Path) -> Path:
    """The bundled example stream with its frames and geometry, copied into ``dest``."""
    dest.mkdir()
    for name in ("example.stream", "example.h5", "example.geom", "example.cell"):
        shutil.copy(EXAMPLE / name, dest / name)
    return dest / "example.stream"


def job_env(cluster: Cluster, tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "streamfilter"
    wrapper.write_text(STREAMFILTER.format(python=sys.executable, repo=str(REPO)))
    wrapper.chmod(0o755)
    env = dict(cluster.env)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env["STREAMFILTER_CACHE"] = str(tmp_path / "cache")
    return env


def submit(cluster: Cluster, tmp_path: Path, src: Path, out: Path) -> tuple[str, str]:
    """Run the script (2 array tasks of 1 CPU); the ids of the array job and the merge job."""
    merge = ["-y", "4/mmm", "--", "--model=unity"] if shutil.which("partialator") else [
        "--no-merge"]  # fmt: skip
    r = subprocess.run(
        ["bash", str(SCRIPT), "-i", str(src), "-o", str(out), "-n", "2",
         "--cpus-per-task", "1", "--time", "00:10:00", *merge],
        env=job_env(cluster, tmp_path), cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = re.search(r"submitted array job (\d+) \(2 tasks\) and merge job (\d+)", r.stderr)
    assert m, r.stderr
    return m.group(1), m.group(2)


def wait_for_jobs(cluster: Cluster, array: str, merge: str) -> tuple[dict, dict]:
    """Wait until both array tasks ended and the merge job ended or can never start; the
    array tasks' records by task id and the merge job's record (``scontrol show job``)."""

    def ended():
        tasks = {r.get("ArrayTaskId"): r for r in cluster.job_states(array)}
        (job,) = cluster.job_states(merge)
        if set(tasks) != {"0", "1"} or any(r["JobState"] not in TERMINAL for r in tasks.values()):
            return None
        if job["JobState"] in TERMINAL or job["Reason"] == "DependencyNeverSatisfied":
            return tasks, job
        return None

    try:
        return cluster.wait_until(ended, JOB_TIMEOUT, f"jobs {array} and {merge}")
    except ClusterError as e:
        logs = "\n".join(
            f"{name}: {tail(cluster.root / 'log' / name)}"
            for name in ("slurmctld.log", "slurmd.log")
        )  # fmt: skip
        states = cluster.run("scontrol", "-o", "show", "job", check=False)
        raise AssertionError(f"{e}\n{states}\n{logs}") from None


def ended_as(record: dict) -> tuple[str, str]:
    return record["JobState"], record["ExitCode"]


def job_logs(workdir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(workdir.glob("logs/*")))


def test_split_array_cat_equals_one_reintegrate(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = example_copy(tmp_path / "data")
    out = tmp_path / "out" / "example"
    array, merge = submit(cluster, tmp_path, src, out)
    tasks, job = wait_for_jobs(cluster, array, merge)
    workdir = Path(f"{out}-shards")
    for record in (*tasks.values(), job):
        assert ended_as(record) == ("COMPLETED", "0:0"), job_logs(workdir)
    assert job["Dependency"] == "(null)"  # satisfied, hence cleared
    assert not list(workdir.glob("*.failed"))

    from streamfilter.cli import main

    direct = tmp_path / "direct.stream"
    monkeypatch.setenv("STREAMFILTER_CACHE", str(tmp_path / "cache"))
    # the tasks' --data-root (the input's directory) is in the audit line: give the same one
    assert main(["reintegrate", str(src), "-o", str(direct), "-q",
                 "--data-root", str(src.parent)]) == 0  # fmt: skip
    assert Path(f"{out}.stream").read_bytes() == direct.read_bytes()
    if shutil.which("partialator"):
        assert Path(f"{out}.hkl").is_file()


def test_merge_job_never_runs_when_a_task_left_chunks_unreintegrated(
    cluster: Cluster, tmp_path: Path
) -> None:
    src = example_copy(tmp_path / "data")
    # the last chunk with a crystal (in the last shard: split keeps the order) loses its frame
    head, *chunks = src.read_bytes().split(b"----- Begin chunk -----")
    i = max(k for k, c in enumerate(chunks) if b"--- Begin crystal" in c)
    assert b"Image filename: example.h5" in chunks[i]
    chunks[i] = chunks[i].replace(b"Image filename: example.h5", b"Image filename: gone.h5")
    src.write_bytes(b"----- Begin chunk -----".join([head, *chunks]))
    out = tmp_path / "out" / "example"
    array, merge = submit(cluster, tmp_path, src, out)
    tasks, job = wait_for_jobs(cluster, array, merge)
    workdir = Path(f"{out}-shards")
    assert ended_as(tasks["0"]) == ("COMPLETED", "0:0"), job_logs(workdir)
    assert ended_as(tasks["1"]) == ("FAILED", "3:0"), job_logs(workdir)  # status 3
    assert "gone.h5" in (workdir / "reint-001.stream.failed").read_text()
    # afterok: the merge job is held for good and never started
    assert (job["JobState"], job["Reason"]) == ("PENDING", "DependencyNeverSatisfied")
    assert job["StartTime"] == "Unknown" and job["RunTime"] == "00:00:00"
    assert not Path(f"{out}.stream").exists()
    assert not list(workdir.glob("logs/merge-*"))
    cluster.run("scancel", merge)
    (job,) = cluster.wait_until(
        lambda: [r for r in cluster.job_states(merge) if r["JobState"] == "CANCELLED"],
        30, "the merge job to be cancelled",
    )  # fmt: skip
    assert not Path(f"{out}.stream").exists()


def test_skip_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the cluster tests say when they cannot run (checked everywhere)."""
    monkeypatch.setattr(slurm_cluster, "which", lambda name: None)
    reason = unavailable()
    assert reason and reason.startswith("slurm-wlm not installed: apt-get install slurm-wlm munge")
    assert "slurmctld" in reason
    monkeypatch.setattr(slurm_cluster, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)
    assert (unavailable() or "").startswith("not root")
