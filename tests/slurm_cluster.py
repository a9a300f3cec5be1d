"""A private single-node Slurm cluster for tests, started from Debian's ``slurm-wlm`` and
``munge`` packages (``apt-get install slurm-wlm munge``) when they are installed.

Everything lives in one temporary directory: a generated ``slurm.conf`` (controller and
node at 127.0.0.1 on free ports; state, spool, pid and log files inside the directory), a
fresh munge key and a munged on its own socket.  Clients find the cluster through
``SLURM_CONF`` in :attr:`Cluster.env`.  Slurm has no setting for the address its daemons
listen on, so their two ports are open on every interface while they run; every message is
authenticated with the private munge key.  The daemons run as root (slurmd must);
:func:`unavailable` says why a cluster cannot be started (packages missing, not root).
Nothing is installed here and no system service is touched: :meth:`Cluster.stop` cancels the
cluster's jobs and stops exactly the processes it started (by pid), also after a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("mungekey", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
INSTALL_HINT = "slurm-wlm not installed: apt-get install slurm-wlm munge"
TERMINAL = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "PREEMPTED",
}  # fmt: skip


class ClusterError(RuntimeError):
    """The cluster could not be started (the message says why, with the log's tail)."""


def which(name: str) -> str | None:
    """``name`` on PATH, or in the sbin directories a non-login PATH may lack."""
    extra = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"])
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + extra)


def unavailable() -> str | None:
    """Why a private cluster cannot be started here, or None if it can."""
    missing = [t for t in (*DAEMONS, *CLIENTS) if which(t) is None]
    if missing:
        return f"{INSTALL_HINT} (missing: {', '.join(missing)})"
    if os.geteuid() != 0:
        return "not root: slurmd must run as root to start jobs"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name} is empty)"


def session_pids(sid: int) -> list[int]:
    """Every process in session ``sid`` (a daemon started with its own session, and what it
    forked, e.g. slurmstepd and the job scripts)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == sid:  # state ppid pgrp session
            pids.append(int(entry.name))
    return pids


class Cluster:
    """A one-node cluster (node ``localhost``, partition ``debug``) in ``root``."""

    def __init__(self, root: Path, cpus: int | None = None) -> None:
        self.root = root
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ)
        self.env["SLURM_CONF"] = str(self.conf)
        for var in [v for v in self.env if v.startswith(("SLURM_", "SBATCH_", "SQUEUE_"))]:
            if var != "SLURM_CONF":
                del self.env[var]  # e.g. when the tests themselves run inside a Slurm job

    # -- commands -------------------------------------------------------------------------
    def run(self, *args: str, timeout: float = 20, check: bool = True) -> str:
        """Run a Slurm client command against this cluster; its stdout."""
        r = subprocess.run(
            [which(args[0]) or args[0], *args[1:]],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def job_states(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job`` of a job (one record per array task) as key=value dicts."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        records = []
        for line in out.splitlines():
            record = {}
            for word in line.split():
                key, _, value = word.partition("=")
                record.setdefault(key, value)
            records.append(record)
        return records

    def wait_until(self, done, timeout: float, what: str, poll: float = 0.5):
        """Poll ``done()`` until it returns something true; raise after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = done()
            if result:
                return result
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)

    # -- start / stop ---------------------------------------------------------------------
    def _write_config(self) -> None:
        for d in ("munge", "state", "spool", "log"):
            (self.root / d).mkdir(mode=0o755)
        r = self.root
        self.conf.write_text(
            f"""\
ClusterName=sftest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
SwitchType=switch/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=600
MailProg=/bin/true
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
        )

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # the daemon keeps its own copy
        self.procs[name] = subprocess.Popen(
            [which(name), *args], env=self.env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

    def _await(self, name: str, log: Path, ready, timeout: float) -> None:
        """Wait until ``ready()``; a ClusterError with the log's tail if the daemon exits
        or the time runs out."""

        def up() -> bool:
            status = self.procs[name].poll()
            if status is not None:
                raise ClusterError(f"{name} did not come up (exit status {status}): {tail(log)}")
            return ready()

        try:
            self.wait_until(up, timeout, name)
        except ClusterError as e:
            if str(e).startswith(f"{name} did not come up"):
                raise
            raise ClusterError(f"{name} did not come up ({e}): {tail(log)}") from None

    def start(self, timeout: float = 60) -> None:
        """Start munged, slurmctld and slurmd; return once the node is idle."""
        self.root.chmod(0o755)  # munged wants its socket's directories searchable by all
        self._write_config()
        m = self.root / "munge"
        key = m / "munge.key"
        subprocess.run([which("mungekey"), "-c", "-k", str(key)], check=True, timeout=20,
                       capture_output=True)  # fmt: skip
        key.chmod(0o600)
        self._spawn("munged", "-F", f"--socket={self.munge_socket}", f"--key-file={key}",
                    f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed",
                    f"--log-file={m}/munged.log")  # fmt: skip
        self._await("munged", self.root / "log" / "munged.out", self.munge_socket.exists,
                    timeout)  # fmt: skip

        self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._await(
            "slurmctld", self.root / "log" / "slurmctld.log",
            lambda: "is UP" in self.run("scontrol", "ping", check=False), timeout,
        )  # fmt: skip

        self._spawn("slurmd", "-D", "-N", "localhost", "-f", str(self.conf))
        self._await(
            "slurmd", self.root / "log" / "slurmd.log",
            lambda: self.run("sinfo", "-h", "-N", "-o", "%t", check=False).strip() == "idle",
            timeout,
        )  # fmt: skip

    def stop(self) -> None:
        """Cancel every job, then stop the daemons and whatever they left running (by pid)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                jobs = self.run("squeue", "-h", "-o", "%A", check=False, timeout=10).split()
                if jobs:
                    self.run("scancel", *jobs, check=False, timeout=10)
                    self.wait_until(
                        lambda: not self.run("squeue", "-h", "-o", "%A", check=False).strip(),
                        15, "the jobs to be cancelled",
                    )  # fmt: skip
            except (ClusterError, subprocess.SubprocessError, OSError):
                pass  # the daemons are stopped below all the same
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            # its session holds what it forked and left behind (e.g. slurmctld's slurmscriptd)
            for pid in session_pids(proc.pid):
                kill(pid)
        # job steps (slurmstepd starts a session of its own) and job scripts still alive
        for pid in pids_using(self.root, self.conf):
            kill(pid)
        self.procs.clear()


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def pids_using(root: Path, conf: Path) -> list[int]:
    """Processes with their working directory or an open file inside ``root``, or
    ``SLURM_CONF=conf`` in their environment: what a cluster in ``root`` started."""
    prefix = str(root) + os.sep
    marker = f"SLURM_CONF={conf}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            links = [entry / "cwd", *(entry / "fd").iterdir()]
        except OSError:
            continue  # gone, or a zombie
        links = [_readlink(p) for p in links]
        if any(link.startswith(prefix) for link in links) or marker in environ:
            found.append(int(entry.name))
    return found


def make_root() -> Path:
    """A fresh directory for a cluster (short path: munge's socket path must stay short)."""
    return Path(tempfile.mkdtemp(prefix="sf-slurm-"))
