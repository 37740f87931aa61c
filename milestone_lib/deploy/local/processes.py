"""Local server processes: start one (own process group, logs to files), wait for READY, stop.

Each process writes stdout/stderr to `<workdir>/<label>.{out,err}`; it is ready once its stdout
holds the READY line (`milestone_lib.net`). Stopping sends SIGTERM (graceful drain), then SIGKILLs
whatever is left of the process group after the timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from ...net import parse_ready_line
from ..readiness import wait_until_ready
from ..replicas import Replica
from .cgroups import CpuCgroup

__all__ = ["LocalProcess", "pin", "spawn", "stop_processes", "wait_ready"]


@dataclass(eq=False, kw_only=True)
class LocalProcess(Replica):
    """One server process and what it was given."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    cgroup: CpuCgroup | None = None
    address: str = ""
    files: list[IO[bytes]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def placement(self) -> dict[str, Any]:
        """pid, pinned cores, cgroup (the local backend's `ReplicaState.placement`)."""
        return {"pid": self.pid, "cores": self.cores, "cgroup": str(self.cgroup.path) if self.cgroup else None}

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.err_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def pin(pid: int, cores: list[int]) -> None:
    """Set the CPU affinity of every thread of `pid` (affinity is per thread; later ones inherit it)."""
    try:
        process = psutil.Process(pid)
        process.cpu_affinity(cores)
        for thread in process.threads():
            try:
                os.sched_setaffinity(thread.id, cores)
            except OSError:
                pass
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass  # it died at start; waiting for READY reports why


def spawn(args: list[str], *, step: str, index: int, workdir: Path, cpu: float, threads: int,
          variant: str | None, env: dict[str, str] | None = None) -> LocalProcess:
    """Start `args` in its own session with its thread count in the environment."""
    label = "gateway" if step == "gateway" else f"{step}-{index}"
    out_path, err_path = workdir / f"{label}.out", workdir / f"{label}.err"
    out, err = open(out_path, "wb"), open(err_path, "wb")  # noqa: SIM115 - the process owns them; closed on stop
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), **(env or {}))
    popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env,
                             start_new_session=True)  # own process group: killpg reaches its children
    return LocalProcess(step=step, index=index, popen=popen, out_path=out_path, err_path=err_path, cpu=cpu,
                        threads=threads, variant=variant, files=[out, err])


def _ready_address(proc: LocalProcess) -> str | None:
    try:
        text = proc.out_path.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        parsed = parse_ready_line(line)
        if parsed is not None:
            return f"{parsed[0]}:{parsed[1]}"
    return None


def wait_ready(processes: list[LocalProcess], timeout_s: float) -> None:
    """Wait until each process printed its READY line; raise naming the first that did not."""

    def ready(proc: LocalProcess) -> bool:
        proc.address = _ready_address(proc) or ""
        return bool(proc.address)

    def exited(proc: LocalProcess) -> str | None:
        if proc.alive():
            return None
        return (f"{proc.label} exited with code {proc.popen.returncode} before it was ready; "
                f"its log ({proc.err_path}) ends with:\n{proc.log_tail()}")

    def timed_out(pending: list[LocalProcess]) -> str:
        return (f"{', '.join(p.label for p in pending)} did not print READY within {timeout_s:.0f} s; raise "
                f"`startup_timeout_s` on a loaded machine, or read {pending[0].err_path}:\n{pending[0].log_tail()}")

    wait_until_ready([p for p in processes if not p.address], timeout_s, ready=ready, exited=exited,
                     timed_out=timed_out, poll_s=0.05)


def stop_processes(processes: list[LocalProcess], timeout_s: float) -> None:
    """SIGTERM (graceful drain), then SIGKILL whatever of each process group is still there."""
    for proc in processes:
        if proc.alive():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for proc in processes:
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in processes:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader, or children it left behind
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for handle in proc.files:
            handle.close()
