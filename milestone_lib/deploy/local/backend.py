"""The local-process backend: every step replica and the gateway are server processes on 127.0.0.1.

Each process gets its spec's `cpu` as pinned cores and a cgroup CPU quota where this machine allows
(`placement.py`; the state's warnings say where it does not) and runs `threads` compute threads.
The gateway finds the replicas through the endpoints file (`serving/membership.py`); scaling
rewrites it and waits until the gateway reports a newer membership generation with exactly those
replicas before it stops a removed one, so no request is dropped.

A replica process that dies is replaced by a new one (`supervisor.py`); the gateway routes around it
meanwhile. A gateway that dies is started again on the same address, so clients (which retry
UNAVAILABLE within their deadline, `loadgen/client.py`) reconnect to it. Nothing is left running: `teardown()` runs on `with` exit, on an exception, at interpreter exit
and on SIGTERM to this process (`exit_hooks.py`); it also deletes the deployment's cgroups.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ...errors import DeploymentError
from ...net import LOOPBACK
from ...settings import ProjectSettings
from ..base import DeploymentState, ReplicaState
from ..replicas import ReplicaBackend
from ..spec import PipelineDeployment, StepDeployment
from ..variants import resolve_variant_folder
from .cgroups import CpuCgroup
from .cores import available_cores
from .placement import Placer
from .processes import LocalProcess, spawn, stop_processes, wait_ready
from .supervisor import Supervisor

__all__ = ["LocalBackend"]


class LocalBackend(ReplicaBackend[LocalProcess]):
    """Runs a `PipelineDeployment` as local processes on 127.0.0.1.

    Args:
        workdir: where the endpoints file and the process logs go (default: a new folder under
            `<cache_dir>/deploy/`).
        pin: pin processes to cores (CPU affinity) where whole cores are free.
        cpu_quota: hold each process to its `cpu` with a cgroup CPU quota where this process may.
        startup_timeout_s: how long a process may take to print READY.
        stop_timeout_s: how long a process may take to drain after SIGTERM before it is killed.
        membership_timeout_s: how long the gateway may take to pick up a changed endpoints file.
        registry: a `ModelRegistry` for steps that name one (default: built from the environment).
        cores: the cores the deployment may use (default: this process's CPU affinity).
        restart_replicas: replace a replica process or the gateway when it dies (`supervisor.py`); False:
            only report it.
    """

    name = "local"

    def __init__(self, *, workdir: Path | None = None, pin: bool = True, cpu_quota: bool = True,
                 startup_timeout_s: float = 180.0, stop_timeout_s: float = 15.0, membership_timeout_s: float = 15.0,
                 settings: ProjectSettings | None = None, registry: object | None = None,
                 cores: list[int] | None = None, restart_replicas: bool = True) -> None:
        super().__init__(wait_ready=wait_ready, stop=stop_processes, workdir=workdir, settings=settings,
                         registry=registry, startup_timeout_s=startup_timeout_s,
                         stop_timeout_s=stop_timeout_s, membership_timeout_s=membership_timeout_s)
        self.pin, self.cpu_quota = pin, cpu_quota
        self._cores = sorted(cores) if cores else available_cores()
        self._folders: dict[str, Path] = {}
        self._placer = Placer(self._cores, name="unused", pin=pin, cpu_quota=cpu_quota)
        self.restart_replicas = restart_replicas
        self.supervisor: Supervisor | None = None
        """Replaces a replica process or the gateway that died (`supervisor.restarts` lists them)."""
        self._gateway_port = 0  # 0 until the first gateway bound one; a restarted gateway takes the same

    # ---------------------------------------------------------------- the interface

    def status(self) -> DeploymentState:
        with self._lock:
            spec = self._require_spec()
            assert self._gateway is not None
            processes = self._members(with_gateway=True)
            states = [self._state(p) for p in processes]
            quotas = self._placer.quotas
            placement = {"cores": self._cores, "cgroup": str(quotas.parent) if quotas and not quotas.problem else None}
            warnings = self._placer.warnings(processes)
            warnings += [f"{s.label} (pid {s.placement['pid']}) is not running; see its log in {self.workdir}"
                         for s in states if not s.alive]
            return DeploymentState(name=spec.name, backend=self.name, gateway=states[0], replicas=states[1:],
                                   capacity_cpu=self._placer.capacity, placement=placement, warnings=warnings)

    def variant_folder(self, step: str) -> Path:
        """The local folder the step's replicas serve (a registry pull lands in the cache)."""
        with self._lock:
            self._require_spec()
            return self._folders[step]

    # ---------------------------------------------------------------- local extras

    def pids(self) -> list[int]:
        """Process ids of every process this backend started and has not stopped."""
        with self._lock:
            return [p.pid for p in self._members(with_gateway=True)]

    def cgroups(self) -> dict[str, CpuCgroup]:
        """`<step>-<index>` / `gateway` -> its `CpuCgroup` (quota files and the kernel's CPU accounting)."""
        with self._lock:
            return {p.label: p.cgroup for p in self._members(with_gateway=True) if p.cgroup is not None}

    # ---------------------------------------------------------------- ReplicaBackend

    def _prepare(self, spec: PipelineDeployment) -> None:
        self.workdir = self._make_workdir(f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-")
        self._placer = Placer(self._cores, name=f"milestone-{os.getpid()}-{self.workdir.name}", pin=self.pin,
                              cpu_quota=self.cpu_quota)
        self._folders = {
            s.step: resolve_variant_folder(s, settings=self.settings, registry=self.registry) for s in spec.steps
        }

    def _launch(self, step: StepDeployment, index: int) -> LocalProcess:
        assert self.workdir is not None
        b = step.batching
        args = [sys.executable, "-m", "milestone_lib.serving.server", "--variant", str(self._folders[step.step]),
                "--host", LOOPBACK, "--port", "0", "--threads", str(step.thread_count),
                "--max-batch-size", str(b.max_batch_size), "--max-queue-delay-ms", str(b.max_queue_delay_ms),
                "--max-queue-size", str(b.max_queue_size)]
        return spawn(args, step=step.step, index=index, workdir=self.workdir, cpu=step.cpu,
                     threads=step.thread_count, variant=step.variant, env=step.local.env)

    def _placed(self, replica: LocalProcess, step: StepDeployment) -> None:
        self._placer.place(replica, step.local)

    def _start_gateway(self) -> LocalProcess:
        assert self.workdir is not None and self.spec is not None
        gateway = self.spec.gateway
        args = [sys.executable, "-m", "milestone_lib.serving.gateway", "--endpoints", str(self._endpoints_path),
                "--host", LOOPBACK, "--port", str(self._gateway_port), "--policy", gateway.policy]
        proc = spawn(args, step="gateway", index=0, workdir=self.workdir, cpu=gateway.cpu,
                     threads=gateway.thread_count, variant="pipeline", env=gateway.local.env)
        self._placer.place(proc, gateway.local)
        return proc

    def _release(self, replica: LocalProcess) -> None:
        self._placer.release(replica)

    def _deployed(self) -> None:
        assert self._gateway is not None
        self._gateway_port = int(self._gateway.address.rsplit(":", 1)[1])
        if self.restart_replicas:
            self.supervisor = Supervisor(lambda: self._members(with_gateway=True), self._revive)
            self.supervisor.start()

    def _stop_watching(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None

    def _clean_up(self) -> None:
        self._placer.remove()
        self._gateway_port = 0

    def _check_gateway(self) -> None:
        gateway = self._gateway
        if gateway is not None and not gateway.alive():
            raise DeploymentError(
                f"the gateway exited (code {gateway.popen.returncode}); its log ({gateway.err_path}) "
                f"ends with:\n{gateway.log_tail()}"
            )

    def _gateway_hint(self) -> str:
        assert self._gateway is not None
        return f"read {self._gateway.err_path}"

    # ---------------------------------------------------------------- internals

    @staticmethod
    def _state(proc: LocalProcess) -> ReplicaState:
        return ReplicaState(step=proc.step, index=proc.index, variant=proc.variant, address=proc.address,
                            cpu=proc.cpu, threads=proc.threads, alive=proc.alive(), placement=proc.placement())

    def _revive(self, dead: LocalProcess) -> None:
        """Replace a replica that died: a new one of its step, ready, then swapped into the membership."""
        if dead.step == "gateway":
            self._revive_gateway(dead)
            return
        with self._lock:
            if self.spec is None or dead not in self._replicas.get(dead.step, []):
                return  # torn down or retired meanwhile
            self._start_ready(self.spec.step(dead.step), 1)
            self._retire([dead])
            self._publish()

    def _revive_gateway(self, dead: LocalProcess) -> None:
        """Start the gateway again on the address it had; it reads the endpoints file in force."""
        with self._lock:
            if self.spec is None or dead is not self._gateway:
                return
            stop_processes([dead], 0.0)  # what its process group left behind; closes its log files
            self._placer.release(dead)
            restarts = len(list(dead.err_path.parent.glob("gateway.*.err")))
            for path in (dead.out_path, dead.err_path):  # keep the dead one's log beside the new one's
                path.rename(path.with_name(f"gateway.{restarts}{path.suffix}"))
            self._gateway = self._start_gateway()
            self._wait_ready([self._gateway])
            self._wait_membership()  # a new gateway instance: any generation of it that routes to ours
