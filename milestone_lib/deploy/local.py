"""The local-process backend: every step replica and the gateway are server processes on 127.0.0.1.

Each process runs in its own process group (session), is pinned to its own cores when the machine
has enough (and shares them, with a warning in the result, when it has not), and writes its
stdout/stderr to `<workdir>/<step>-<index>.{out,err}`. The gateway finds the replicas through an
endpoints file that it re-reads on change; scaling rewrites that file and waits until the gateway
reports the new membership before starting to use (or stopping) a replica.

Nothing is left running: `teardown()` runs on `with` exit, on an exception, at interpreter exit
(atexit) and on SIGTERM to this process; it sends SIGTERM (graceful drain) and SIGKILLs the whole
process group of anything still alive after `stop_timeout_s`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..errors import DeploymentError
from ..settings import ProjectSettings
from .base import DeploymentBackend, DeploymentState, Endpoints, ReplicaState
from .spec import PipelineDeployment, StepDeployment

__all__ = ["CoreAllocator", "LocalBackend", "query_gateway_membership", "resolve_variant_folder"]

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- cores


class CoreAllocator:
    """Hands out cores least-used first, so processes share a core only when there is no free one."""

    def __init__(self, available: list[int]) -> None:
        if not available:
            raise DeploymentError("no CPU core is available to this process; check its CPU affinity")
        self.available = sorted(available)
        self.usage = {core: 0 for core in self.available}

    def take(self, count: int) -> list[int]:
        count = min(count, len(self.available))
        chosen = sorted(self.available, key=lambda c: (self.usage[c], c))[:count]
        for core in chosen:
            self.usage[core] += 1
        return sorted(chosen)

    def release(self, cores: list[int] | None) -> None:
        for core in cores or []:
            if core in self.usage and self.usage[core] > 0:
                self.usage[core] -= 1

    @property
    def shared(self) -> bool:
        return any(n > 1 for n in self.usage.values())


def available_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- variants


def resolve_variant_folder(step: StepDeployment, *, settings: ProjectSettings | None = None,
                           registry: object | None = None) -> Path:
    """The local folder a step serves from: its `folder`, `<variants_dir>/<variant>`, or a registry pull.

    The registry is contacted only when the step names one (`registry:` in the spec). "latest" is
    resolved to a version first, so the deployment keeps serving that version when it scales.
    """
    settings = settings or ProjectSettings()
    if step.registry is None:
        return step.check_local_folder(settings.variants_dir).resolve()
    if registry is None:
        from ..registry import (
            ModelRegistry,  # imported here: only registry deployments need it
        )

        registry = ModelRegistry()
    ref = registry.resolve(step.variant, step.registry.version, step=step.step)  # type: ignore[attr-defined]
    target = settings.cache_dir / "pulled" / step.variant / ref.version
    pulled = registry.pull_variant(step.variant, target, version=ref.version, step=step.step)  # type: ignore[attr-defined]
    folder = Path(pulled.folder)
    return step.model_copy(update={"folder": folder, "registry": None}).check_local_folder(folder).resolve()


# --------------------------------------------------------------------------- processes


@dataclass
class _Process:
    step: str
    index: int
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    cores: list[int] | None
    threads: int
    variant: str | None = None
    address: str = ""
    files: list[object] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.step}-{self.index}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def state(self) -> ReplicaState:
        return ReplicaState(step=self.step, index=self.index, variant=self.variant, address=self.address,
                            pid=self.popen.pid, cores=self.cores, threads=self.threads, alive=self.alive())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.err_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _pin(pid: int, cores: list[int]) -> None:
    # Affinity is per thread on Linux: pin every thread that already exists; later ones inherit it.
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


def _spawn(args: list[str], *, step: str, index: int, workdir: Path, cores: list[int] | None,
           threads: int, variant: str | None) -> _Process:
    out_path, err_path = workdir / f"{step}-{index}.out", workdir / f"{step}-{index}.err"
    out, err = open(out_path, "wb"), open(err_path, "wb")  # noqa: SIM115 - the process owns them; closed on stop
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads))
    popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                             start_new_session=True)  # own process group: killpg reaches its children
    if cores is not None:
        _pin(popen.pid, cores)
    return _Process(step=step, index=index, popen=popen, out_path=out_path, err_path=err_path, cores=cores,
                    threads=threads, variant=variant, files=[out, err])


def _wait_ready(processes: list[_Process], timeout_s: float) -> None:
    """Wait until each process printed `READY host:port`; raise naming the first that did not."""
    deadline = time.monotonic() + timeout_s
    pending = [p for p in processes if not p.address]
    while pending:
        for proc in list(pending):
            try:
                text = proc.out_path.read_text(errors="replace")
            except OSError:
                text = ""
            for line in text.splitlines():
                if line.startswith("READY "):
                    proc.address = line.split(None, 1)[1].strip()
                    pending.remove(proc)
                    break
            else:
                if not proc.alive():
                    raise DeploymentError(
                        f"{proc.label} exited with code {proc.popen.returncode} before it was ready; "
                        f"its log ({proc.err_path}) ends with:\n{proc.log_tail()}"
                    )
        if pending and time.monotonic() > deadline:
            labels = ", ".join(p.label for p in pending)
            raise DeploymentError(
                f"{labels} did not print READY within {timeout_s:.0f} s; raise `startup_timeout_s` on a "
                f"loaded machine, or read {pending[0].err_path}:\n{pending[0].log_tail()}"
            )
        if pending:
            time.sleep(0.05)


def _stop(processes: list[_Process], timeout_s: float) -> None:
    """SIGTERM (graceful drain), then SIGKILL whatever of each process group is still there."""
    for proc in processes:
        if proc.alive():
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)
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
            os.killpg(proc.popen.pid, signal.SIGKILL)  # the leader, or children it left behind
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for handle in proc.files:
            handle.close()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- gateway membership


def query_gateway_membership(address: str, *, timeout_s: float = 2.0) -> dict[str, list[str]]:
    """The replicas the gateway routes to now, per step: `ModelConfig("pipeline")`'s `endpoints` parameter."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelConfig(service_pb2.ModelConfigRequest(name="pipeline"), timeout=timeout_s)
    membership = json.loads(response.config.parameters["endpoints"].string_value or "{}")
    return {step: sorted(addrs) for step, addrs in membership.items()}


# --------------------------------------------------------------------------- backend


# Strong references: a deployment whose backend object was dropped (a notebook variable reassigned)
# is still stopped at exit.
_LIVE: set[LocalBackend] = set()
_HOOKS_INSTALLED = False


def _teardown_all() -> None:
    for backend in list(_LIVE):
        backend.teardown()


def _on_sigterm(previous: object) -> object:
    def handler(signum: int, frame: object) -> None:
        _teardown_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    return handler


def _install_exit_hooks() -> None:
    global _HOOKS_INSTALLED
    if _HOOKS_INSTALLED:
        return
    atexit.register(_teardown_all)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm(signal.getsignal(signal.SIGTERM)))  # type: ignore[arg-type]
    _HOOKS_INSTALLED = True


class LocalBackend(DeploymentBackend):
    """Runs a `PipelineDeployment` as local processes on 127.0.0.1.

    Args:
        workdir: where the endpoints file and the process logs go (default: a new folder under
            `<cache_dir>/deploy/`).
        pin: pin processes to cores (CPU affinity).
        startup_timeout_s: how long a process may take to print READY.
        stop_timeout_s: how long a process may take to drain after SIGTERM before it is killed.
        membership_timeout_s: how long the gateway may take to pick up a changed endpoints file.
        registry: a `ModelRegistry` for steps that name one (default: built from the environment).
    """

    name = "local"

    def __init__(self, *, workdir: Path | None = None, pin: bool = True, startup_timeout_s: float = 180.0,
                 stop_timeout_s: float = 15.0, membership_timeout_s: float = 15.0,
                 settings: ProjectSettings | None = None, registry: object | None = None,
                 cores: list[int] | None = None) -> None:
        self.settings = settings or ProjectSettings()
        self._workdir_arg = workdir
        self.pin = pin
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.membership_timeout_s = membership_timeout_s
        self.registry = registry
        self._cores = sorted(cores) if cores else available_cores()
        self._lock = threading.RLock()
        self.spec: PipelineDeployment | None = None
        self.workdir: Path | None = None
        self._folders: dict[str, Path] = {}
        self._replicas: dict[str, list[_Process]] = {}
        self._gateway: _Process | None = None
        self._allocator = CoreAllocator(self._cores)
        self._next_index: dict[str, int] = {}

    # ---------------------------------------------------------------- public

    def deploy(self, spec: PipelineDeployment) -> DeploymentState:
        with self._lock:
            if self.spec is not None:
                raise DeploymentError(
                    f"this backend already runs deployment '{self.spec.name}'; call teardown() first "
                    "or use another LocalBackend"
                )
            _install_exit_hooks()
            _LIVE.add(self)
            self.spec = spec.model_copy(deep=True)  # scale() updates this copy, not the caller's spec
            try:
                self.workdir = self._make_workdir(spec.name)
                self._folders = {
                    s.step: resolve_variant_folder(s, settings=self.settings, registry=self.registry)
                    for s in spec.steps
                }
                gateway_cores = self._take_cores(spec.gateway.cores)
                started: list[_Process] = []
                for step in spec.steps:
                    self._replicas[step.step] = []
                    self._next_index[step.step] = 0
                    for _ in range(step.replicas):
                        started.append(self._start_replica(step))
                _wait_ready(started, self.startup_timeout_s)
                self._write_endpoints()
                self._gateway = self._start_gateway(gateway_cores)
                _wait_ready([self._gateway], self.startup_timeout_s)
                self._wait_membership()
            except BaseException:
                self.teardown()
                raise
            return self.status()

    def scale(self, step: str, replicas: int) -> DeploymentState:
        with self._lock:
            spec = self._require_spec()
            step_spec = spec.step(step)
            if replicas < 1:
                raise DeploymentError(
                    f"cannot scale step '{step}' to {replicas} replicas; a running pipeline needs at least 1 "
                    "(call teardown() to stop it)"
                )
            current = self._replicas[step]
            if replicas > len(current):
                new = [self._start_replica(step_spec) for _ in range(replicas - len(current))]
                try:
                    _wait_ready(new, self.startup_timeout_s)
                except BaseException:
                    self._retire(new)
                    raise
                self._write_endpoints()
                self._wait_membership()
            elif replicas < len(current):
                leaving = current[replicas:]
                self._replicas[step] = current[:replicas]
                self._write_endpoints()
                self._wait_membership()  # no new request reaches `leaving` from here on
                self._retire(leaving)  # SIGTERM: the servers finish their in-flight requests
            step_spec.replicas = replicas
            return self.status()

    def status(self) -> DeploymentState:
        with self._lock:
            spec = self._require_spec()
            assert self._gateway is not None
            replicas = [p.state() for s in spec.steps for p in self._replicas.get(s.step, [])]
            state = DeploymentState(name=spec.name, backend=self.name, gateway=self._gateway.state(),
                                    replicas=replicas, available_cores=self._cores)
            state.oversubscribed, state.warnings = self._core_warnings(state)
            dead = [r for r in [state.gateway, *state.replicas] if not r.alive]
            for r in dead:
                state.warnings.append(f"{r.step}-{r.index} (pid {r.pid}) is not running; see its log in {self.workdir}")
            return state

    def endpoints(self) -> Endpoints:
        with self._lock:
            self._require_spec()
            assert self._gateway is not None
            return Endpoints(gateway=self._gateway.address,
                             steps={step: [p.address for p in procs] for step, procs in self._replicas.items()})

    def teardown(self) -> None:
        with self._lock:
            processes = [p for procs in self._replicas.values() for p in procs]
            if self._gateway is not None:
                processes.insert(0, self._gateway)  # gateway first: no new request reaches a stopping replica
            _stop(processes, self.stop_timeout_s)
            self._replicas, self._gateway, self.spec = {}, None, None
            self._allocator = CoreAllocator(self._cores)
            _LIVE.discard(self)

    def variant_folder(self, step: str) -> Path:
        """The local folder the step's replicas serve (a registry pull lands in the cache)."""
        with self._lock:
            self._require_spec()
            return self._folders[step]

    def pids(self) -> list[int]:
        """Process ids of every process this backend started and has not stopped."""
        with self._lock:
            procs = [p for ps in self._replicas.values() for p in ps] + ([self._gateway] if self._gateway else [])
            return [p.popen.pid for p in procs]

    # ---------------------------------------------------------------- internals

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

    def _take_cores(self, count: int) -> list[int] | None:
        return self._allocator.take(count) if self.pin else None

    def _start_replica(self, step: StepDeployment) -> _Process:
        assert self.workdir is not None
        index = self._next_index[step.step]
        self._next_index[step.step] = index + 1
        b = step.batching
        args = [sys.executable, "-m", "milestone_lib.serving.server", "--variant", str(self._folders[step.step]),
                "--host", HOST, "--port", "0", "--threads", str(step.cores),
                "--max-batch-size", str(b.max_batch_size), "--max-queue-delay-ms", str(b.max_queue_delay_ms),
                "--max-queue-size", str(b.max_queue_size)]
        proc = _spawn(args, step=step.step, index=index, workdir=self.workdir, cores=self._take_cores(step.cores),
                      threads=step.cores, variant=step.variant)
        self._replicas[step.step].append(proc)
        return proc

    def _start_gateway(self, cores: list[int] | None) -> _Process:
        assert self.workdir is not None and self.spec is not None
        args = [sys.executable, "-m", "milestone_lib.serving.gateway", "--endpoints", str(self._endpoints_path),
                "--host", HOST, "--port", "0", "--policy", self.spec.gateway.policy]
        return _spawn(args, step="gateway", index=0, workdir=self.workdir, cores=cores,
                      threads=self.spec.gateway.cores, variant="pipeline")

    def _retire(self, processes: list[_Process]) -> None:
        for proc in processes:
            if proc in self._replicas.get(proc.step, []):
                self._replicas[proc.step].remove(proc)
        _stop(processes, self.stop_timeout_s)
        for proc in processes:
            self._allocator.release(proc.cores)

    @property
    def _endpoints_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "endpoints.json"

    def _membership(self) -> dict[str, list[str]]:
        return {step: sorted(p.address for p in procs) for step, procs in self._replicas.items()}

    def _write_endpoints(self) -> None:
        path = self._endpoints_path
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._membership(), indent=2))
        os.replace(tmp, path)  # atomic: the gateway never reads half a file
        now = time.time_ns()
        os.utime(path, ns=(now, now))  # a fresh mtime even within the filesystem's timestamp granularity

    def _wait_membership(self) -> None:
        assert self._gateway is not None
        expected = self._membership()
        deadline = time.monotonic() + self.membership_timeout_s
        seen: dict[str, list[str]] | str = "nothing"
        while time.monotonic() < deadline:
            if not self._gateway.alive():
                raise DeploymentError(
                    f"the gateway exited (code {self._gateway.popen.returncode}); its log "
                    f"({self._gateway.err_path}) ends with:\n{self._gateway.log_tail()}"
                )
            try:
                seen = query_gateway_membership(self._gateway.address)
            except Exception as exc:  # noqa: BLE001 - not reachable yet; retried until the deadline
                seen = f"an error ({exc})"
            if isinstance(seen, dict) and all(seen.get(k, []) == v for k, v in expected.items()):
                return
            time.sleep(0.05)
        raise DeploymentError(
            f"the gateway did not pick up the replicas {expected} within {self.membership_timeout_s:.0f} s "
            f"(it reports {seen}); read {self._gateway.err_path}"
        )

    def _core_warnings(self, state: DeploymentState) -> tuple[bool, list[str]]:
        if not self.pin:
            return False, ["processes are not pinned to cores (pin=False); the OS schedules them freely"]
        spec = self._require_spec()
        wanted = spec.gateway.cores + sum(s.cores * len(self._replicas.get(s.step, [])) for s in spec.steps)
        sharing: dict[int, list[str]] = {}
        for label, cores in state.core_assignment.items():
            for core in cores or []:
                sharing.setdefault(core, []).append(label)
        shared = {core: labels for core, labels in sharing.items() if len(labels) > 1}
        too_wide = [s.step for s in spec.steps if s.cores > len(self._cores)]
        warnings = []
        if shared:
            detail = "; ".join(f"core {c}: {', '.join(labels)}" for c, labels in sorted(shared.items()))
            warnings.append(
                f"oversubscribed: the deployment asks for {wanted} cores (gateway included) but this machine "
                f"offers {len(self._cores)} ({','.join(map(str, self._cores))}), so processes share cores "
                f"[{detail}]; latencies include CPU contention and scaling cannot add compute here"
            )
        for step in too_wide:
            warnings.append(f"step '{step}' asks for {spec.step(step).cores} cores per replica but only "
                            f"{len(self._cores)} exist; its replicas run on {len(self._cores)}")
        return bool(shared), warnings
