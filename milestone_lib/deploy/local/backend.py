"""The local-process backend: every step replica and the gateway are server processes on 127.0.0.1.

Each process gets its spec's `cpu` as pinned cores and a cgroup CPU quota where this machine allows
(`placement.py`; the state's warnings say where it does not) and runs `threads` compute threads.
The gateway finds the replicas through the endpoints file (`serving/membership.py`); scaling
rewrites it and waits until the gateway reports a newer membership generation with exactly those
replicas before it stops a removed one, so no request is dropped.

A replica process that dies is replaced by a new one (`supervisor.py`); the gateway routes around it
meanwhile. Nothing is left running: `teardown()` runs on `with` exit, on an exception, at interpreter exit
and on SIGTERM to this process (`exit_hooks.py`); it also deletes the deployment's cgroups.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from ...errors import DeploymentError
from ...net import LOOPBACK
from ...serving.membership import Membership, wait_for_membership, write_endpoints
from ...settings import ProjectSettings
from .. import exit_hooks
from ..base import DeploymentBackend, DeploymentState, Endpoints, ReplicaState
from ..spec import PipelineDeployment, StepDeployment
from ..variants import resolve_variant_folder
from .cgroups import CpuCgroup
from .cores import available_cores
from .placement import Placer
from .processes import LocalProcess, spawn, stop_processes, wait_ready
from .supervisor import Supervisor

__all__ = ["LocalBackend"]


class LocalBackend(DeploymentBackend):
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
        restart_replicas: replace a replica process that dies (`supervisor.py`); False: only report it.
    """

    name = "local"

    def __init__(self, *, workdir: Path | None = None, pin: bool = True, cpu_quota: bool = True,
                 startup_timeout_s: float = 180.0, stop_timeout_s: float = 15.0, membership_timeout_s: float = 15.0,
                 settings: ProjectSettings | None = None, registry: object | None = None,
                 cores: list[int] | None = None, restart_replicas: bool = True) -> None:
        self.settings = settings or ProjectSettings()
        self._workdir_arg = workdir
        self.pin, self.cpu_quota = pin, cpu_quota
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.membership_timeout_s = membership_timeout_s
        self.registry = registry
        self._cores = sorted(cores) if cores else available_cores()
        self._lock = threading.RLock()
        self.spec: PipelineDeployment | None = None
        self.workdir: Path | None = None
        self._folders: dict[str, Path] = {}
        self._replicas: dict[str, list[LocalProcess]] = {}
        self._gateway: LocalProcess | None = None
        self._placer = Placer(self._cores, name="unused", pin=pin, cpu_quota=cpu_quota)
        self._next_index: dict[str, int] = {}
        self.membership = Membership(0)
        """What the gateway last reported (its generation counts applied endpoint changes)."""
        self.restart_replicas = restart_replicas
        self.supervisor: Supervisor | None = None
        """Replaces a replica process that died (`supervisor.restarts` lists them)."""

    # ---------------------------------------------------------------- the interface

    def deploy(self, spec: PipelineDeployment) -> DeploymentState:
        with self._lock:
            if self.spec is not None:
                raise DeploymentError(
                    f"this backend already runs deployment '{self.spec.name}'; call teardown() first "
                    "or use another LocalBackend"
                )
            exit_hooks.register(self)
            self.spec = spec.model_copy(deep=True)  # scale() updates this copy, not the caller's spec
            try:
                self.workdir = self._make_workdir(spec.name)
                self._placer = Placer(self._cores, name=f"milestone-{os.getpid()}-{self.workdir.name}", pin=self.pin,
                                      cpu_quota=self.cpu_quota)
                self._folders = {
                    s.step: resolve_variant_folder(s, settings=self.settings, registry=self.registry)
                    for s in spec.steps
                }
                started: list[LocalProcess] = []
                for step in spec.steps:
                    self._replicas[step.step], self._next_index[step.step] = [], 0
                    started += [self._start_replica(step) for _ in range(step.replicas)]
                wait_ready(started, self.startup_timeout_s)
                write_endpoints(self._endpoints_path, self._expected())
                self._gateway = self._start_gateway()
                wait_ready([self._gateway], self.startup_timeout_s)
                self._wait_membership()
                if self.restart_replicas:
                    self.supervisor = Supervisor(lambda: self._processes(with_gateway=False), self._revive)
                    self.supervisor.start()
            except BaseException:
                self.teardown()
                raise
            return self.status()

    def scale(self, step: str, replicas: int) -> DeploymentState:
        with self._lock:
            step_spec = self._require_spec().step(step)
            if replicas < 1:
                raise DeploymentError(
                    f"cannot scale step '{step}' to {replicas} replicas; a running pipeline needs at least 1 "
                    "(call teardown() to stop it)"
                )
            current = self._replicas[step]
            if replicas > len(current):
                new = [self._start_replica(step_spec) for _ in range(replicas - len(current))]
                try:
                    wait_ready(new, self.startup_timeout_s)
                except BaseException:
                    self._retire(new)
                    raise
                write_endpoints(self._endpoints_path, self._expected())
                self._wait_membership()
            elif replicas < len(current):
                leaving = current[replicas:]
                self._replicas[step] = current[:replicas]
                write_endpoints(self._endpoints_path, self._expected())
                self._wait_membership()  # no new request reaches `leaving` from here on
                self._retire(leaving)  # SIGTERM: the servers finish their in-flight requests
            step_spec.replicas = replicas
            return self.status()

    def status(self) -> DeploymentState:
        with self._lock:
            spec = self._require_spec()
            assert self._gateway is not None
            processes = [self._gateway, *self._processes(with_gateway=False)]
            states = [self._state(p) for p in processes]
            quotas = self._placer.quotas
            placement = {"cores": self._cores, "cgroup": str(quotas.parent) if quotas and not quotas.problem else None}
            warnings = self._placer.warnings(processes)
            warnings += [f"{s.label} (pid {s.placement['pid']}) is not running; see its log in {self.workdir}"
                         for s in states if not s.alive]
            return DeploymentState(name=spec.name, backend=self.name, gateway=states[0], replicas=states[1:],
                                   capacity_cpu=self._placer.capacity, placement=placement, warnings=warnings)

    def endpoints(self) -> Endpoints:
        with self._lock:
            self._require_spec()
            assert self._gateway is not None
            return Endpoints(gateway=self._gateway.address,
                             steps={step: [p.address for p in procs] for step, procs in self._replicas.items()})

    def variant_folder(self, step: str) -> Path:
        """The local folder the step's replicas serve (a registry pull lands in the cache)."""
        with self._lock:
            self._require_spec()
            return self._folders[step]

    def teardown(self) -> None:
        if self.supervisor is not None:  # outside the lock: a restart in progress holds it
            self.supervisor.stop()
            self.supervisor = None
        with self._lock:
            processes = self._processes(with_gateway=False)
            if self._gateway is not None:
                processes.insert(0, self._gateway)  # gateway first: no new request reaches a stopping replica
            stop_processes(processes, self.stop_timeout_s)
            self._placer.remove()
            self._replicas, self._gateway, self.spec = {}, None, None
            self.membership = Membership(0)
            exit_hooks.unregister(self)

    # ---------------------------------------------------------------- local extras

    def pids(self) -> list[int]:
        """Process ids of every process this backend started and has not stopped."""
        with self._lock:
            return [p.pid for p in self._processes(with_gateway=True)]

    def cgroups(self) -> dict[str, CpuCgroup]:
        """`<step>-<index>` / `gateway` -> its `CpuCgroup` (quota files and the kernel's CPU accounting)."""
        with self._lock:
            return {p.label: p.cgroup for p in self._processes(with_gateway=True) if p.cgroup is not None}

    # ---------------------------------------------------------------- internals

    def _processes(self, *, with_gateway: bool) -> list[LocalProcess]:
        procs = [p for ps in self._replicas.values() for p in ps]
        return ([self._gateway] if with_gateway and self._gateway else []) + procs

    @staticmethod
    def _state(proc: LocalProcess) -> ReplicaState:
        return ReplicaState(step=proc.step, index=proc.index, variant=proc.variant, address=proc.address,
                            cpu=proc.cpu, threads=proc.threads, alive=proc.alive(), placement=proc.placement())

    def _require_spec(self) -> PipelineDeployment:
        if self.spec is None:
            raise DeploymentError("nothing is deployed; call deploy(spec) first")
        return self.spec

    def _make_workdir(self, name: str) -> Path:
        if self._workdir_arg is not None:
            path = Path(self._workdir_arg)
            path.mkdir(parents=True, exist_ok=True)
            return path
        root = self.settings.cache_dir / "deploy"
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-", dir=root))

    def _start_replica(self, step: StepDeployment) -> LocalProcess:
        assert self.workdir is not None
        index = self._next_index[step.step]
        self._next_index[step.step] = index + 1
        b = step.batching
        args = [sys.executable, "-m", "milestone_lib.serving.server", "--variant", str(self._folders[step.step]),
                "--host", LOOPBACK, "--port", "0", "--threads", str(step.thread_count),
                "--max-batch-size", str(b.max_batch_size), "--max-queue-delay-ms", str(b.max_queue_delay_ms),
                "--max-queue-size", str(b.max_queue_size)]
        proc = spawn(args, step=step.step, index=index, workdir=self.workdir, cpu=step.cpu,
                     threads=step.thread_count, variant=step.variant, env=step.local.env)
        self._replicas[step.step].append(proc)
        self._placer.place(proc, step.local)
        return proc

    def _start_gateway(self) -> LocalProcess:
        assert self.workdir is not None and self.spec is not None
        gateway = self.spec.gateway
        args = [sys.executable, "-m", "milestone_lib.serving.gateway", "--endpoints", str(self._endpoints_path),
                "--host", LOOPBACK, "--port", "0", "--policy", gateway.policy]
        proc = spawn(args, step="gateway", index=0, workdir=self.workdir, cpu=gateway.cpu,
                     threads=gateway.thread_count, variant="pipeline", env=gateway.local.env)
        self._placer.place(proc, gateway.local)
        return proc

    def _revive(self, dead: LocalProcess) -> None:
        """Replace a replica that died: a new one of its step, ready, then swapped into the membership."""
        with self._lock:
            if self.spec is None or dead not in self._replicas.get(dead.step, []):
                return  # torn down or retired meanwhile
            new = self._start_replica(self.spec.step(dead.step))
            try:
                wait_ready([new], self.startup_timeout_s)
            except BaseException:
                self._retire([new])
                raise
            self._retire([dead])
            write_endpoints(self._endpoints_path, self._expected())
            self._wait_membership()

    def _retire(self, processes: list[LocalProcess]) -> None:
        for proc in processes:
            if proc in self._replicas.get(proc.step, []):
                self._replicas[proc.step].remove(proc)
        stop_processes(processes, self.stop_timeout_s)
        for proc in processes:
            self._placer.release(proc)

    @property
    def _endpoints_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "endpoints.json"

    def _expected(self) -> dict[str, list[str]]:
        return {step: sorted(p.address for p in procs) for step, procs in self._replicas.items()}

    def _check_gateway(self) -> None:
        gateway = self._gateway
        if gateway is not None and not gateway.alive():
            raise DeploymentError(
                f"the gateway exited (code {gateway.popen.returncode}); its log ({gateway.err_path}) "
                f"ends with:\n{gateway.log_tail()}"
            )

    def _wait_membership(self) -> None:
        """Wait for a generation newer than the last one seen, routing to exactly our replicas."""
        assert self._gateway is not None
        self.membership = wait_for_membership(
            self._gateway.address, expected=self._expected(), after_generation=self.membership.generation,
            timeout_s=self.membership_timeout_s, check=self._check_gateway, hint=f"read {self._gateway.err_path}",
        )
