"""The deploy / scale sequence of a backend that starts each replica itself (local processes, containers).

`ReplicaBackend` owns the replica bookkeeping (each step's replicas, their indices, the gateway),
the order of a deploy (start every step's replicas, wait until ready, write the endpoints file,
start the gateway, wait until it routes to them; tear down on any failure) and of a scale (new
replicas ready before the gateway routes to them; removed ones out of the gateway's membership
before they stop, so no request is dropped). A subclass supplies what differs per backend:
start one replica or the gateway, wait until some are ready, stop some, and what it reports.
"""

from __future__ import annotations

import tempfile
import threading
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from ..errors import DeploymentError
from ..serving.membership import Membership, wait_for_membership, write_endpoints
from ..settings import ProjectSettings
from . import exit_hooks
from .base import DeploymentBackend, DeploymentState, Endpoints
from .spec import PipelineDeployment, StepDeployment

__all__ = ["Replica", "ReplicaBackend"]


@dataclass(eq=False, kw_only=True)
class Replica:
    """What every backend records of a replica it started (or of the gateway); a backend adds its handle."""

    step: str
    index: int
    cpu: float
    threads: int
    variant: str | None = None
    cores: list[int] | None = None
    """The cores it is pinned to; None where it is not."""

    @property
    def label(self) -> str:
        return "gateway" if self.step == "gateway" else f"{self.step}-{self.index}"

    @property
    def address(self) -> str:
        """host:port of its gRPC endpoint ("" until known)."""
        raise NotImplementedError


R = TypeVar("R", bound=Replica)


class ReplicaBackend(DeploymentBackend, Generic[R]):
    """Deploy / scale / endpoints / teardown over replica handles of type `R`; see the module docstring."""

    def __init__(self, *, wait_ready: Callable[[list[R], float], None], stop: Callable[[list[R], float], None],
                 workdir: Path | None, startup_timeout_s: float, stop_timeout_s: float, membership_timeout_s: float,
                 settings: ProjectSettings | None, registry: object | None) -> None:
        self._wait_ready_within = wait_ready
        self._stop_within = stop
        self.settings = settings or ProjectSettings()
        self._workdir_arg = workdir
        self.startup_timeout_s, self.stop_timeout_s = startup_timeout_s, stop_timeout_s
        self.membership_timeout_s = membership_timeout_s
        self.registry = registry
        self._lock = threading.RLock()
        self.spec: PipelineDeployment | None = None
        self.workdir: Path | None = None
        self._replicas: dict[str, list[R]] = {}
        self._gateway: R | None = None
        self._next_index: dict[str, int] = {}
        self.membership = Membership(0)
        """What the gateway last reported (its generation counts applied endpoint changes)."""

    # ---------------------------------------------------------------- the interface

    def deploy(self, spec: PipelineDeployment) -> DeploymentState:
        with self._lock:
            if self.spec is not None:
                raise DeploymentError(f"this backend already runs deployment '{self.spec.name}'; call teardown() "
                                      f"first or use another {type(self).__name__}")
            self._before_deploy(spec)
            exit_hooks.register(self)
            self.spec = spec.model_copy(deep=True)  # scale() updates this copy, not the caller's spec
            try:
                self._prepare(self.spec)
                started: list[R] = []
                for step in self.spec.steps:
                    self._replicas[step.step], self._next_index[step.step] = [], 0
                    started += [self._start_replica(step) for _ in range(step.replicas)]
                self._wait_ready(started)
                self._write_endpoints()
                self._gateway = self._start_gateway()
                self._wait_ready([self._gateway])
                self._wait_membership()
                self._deployed()
            except BaseException:
                self.teardown()
                raise
            return self.status()

    def scale(self, step: str, replicas: int) -> DeploymentState:
        with self._lock:
            step_spec = self._require_spec().step(step)
            if replicas < 1:
                raise DeploymentError(f"cannot scale step '{step}' to {replicas} replicas; a running pipeline needs "
                                      "at least 1 (call teardown() to stop it)")
            current = self._replicas[step]
            if replicas > len(current):
                self._before_scale_up(step_spec)
                self._start_ready(step_spec, replicas - len(current))
                self._publish()
            elif replicas < len(current):
                leaving = current[replicas:]
                self._replicas[step] = current[:replicas]
                self._publish()  # no new request reaches `leaving` from here on
                self._retire(leaving)  # SIGTERM: the servers finish their in-flight requests
            step_spec.replicas = replicas
            return self.status()

    def endpoints(self) -> Endpoints:
        with self._lock:
            self._require_spec()
            assert self._gateway is not None
            return Endpoints(gateway=self._gateway.address,
                             steps={step: [r.address for r in reps] for step, reps in self._replicas.items()})

    def teardown(self) -> None:
        self._stop_watching()  # outside the lock: a restart in progress holds it
        with self._lock:
            self._stop(self._members(with_gateway=True))  # gateway first: no new request reaches a stopping replica
            self._clean_up()
            self._replicas, self._gateway, self.spec = {}, None, None
            self.membership = Membership(0)
            exit_hooks.unregister(self)

    # ---------------------------------------------------------------- what each backend supplies

    def _before_deploy(self, spec: PipelineDeployment) -> None:
        """Checks and lookups before anything starts; a failure here leaves nothing to tear down."""

    @abstractmethod
    def _prepare(self, spec: PipelineDeployment) -> None:
        """Set up for `spec` before any replica starts (workdir, placement); a failure tears down."""

    @abstractmethod
    def _launch(self, step: StepDeployment, index: int) -> R:
        """Start replica `index` of `step` (not waiting until it is ready)."""

    def _placed(self, replica: R, step: StepDeployment) -> None:
        """Called once a started replica is in the bookkeeping (so a teardown stops it)."""

    @abstractmethod
    def _start_gateway(self) -> R:
        """Start the gateway, reading the endpoints file."""

    def _deployed(self) -> None:
        """Called once the gateway routes to every replica of a deploy."""

    def _before_scale_up(self, step: StepDeployment) -> None:
        """Called before a scale starts new replicas of `step`."""

    def _release(self, replica: R) -> None:
        """Give back what a stopped replica held."""

    def _stop_watching(self) -> None:
        """Teardown, before taking the lock: stop anything that restarts replicas."""

    def _clean_up(self) -> None:
        """Teardown, after every replica stopped: remove what the deployment left."""

    @abstractmethod
    def _check_gateway(self) -> None:
        """Raise `DeploymentError` with its log when the gateway exited (ends a membership wait early)."""

    @abstractmethod
    def _gateway_hint(self) -> str:
        """Where to read why the gateway did not pick up a membership change."""

    # ---------------------------------------------------------------- shared internals

    def _require_spec(self) -> PipelineDeployment:
        if self.spec is None:
            raise DeploymentError("nothing is deployed; call deploy(spec) first")
        return self.spec

    def _members(self, *, with_gateway: bool) -> list[R]:
        """Every replica (the gateway first where asked)."""
        replicas = [r for reps in self._replicas.values() for r in reps]
        return ([self._gateway] if with_gateway and self._gateway is not None else []) + replicas

    def _wait_ready(self, replicas: list[R]) -> None:
        self._wait_ready_within(replicas, self.startup_timeout_s)

    def _stop(self, replicas: list[R]) -> None:
        self._stop_within(replicas, self.stop_timeout_s)

    def _start_replica(self, step: StepDeployment) -> R:
        index = self._next_index[step.step]
        self._next_index[step.step] = index + 1
        replica = self._launch(step, index)
        self._replicas[step.step].append(replica)
        self._placed(replica, step)
        return replica

    def _start_ready(self, step: StepDeployment, count: int) -> list[R]:
        """`count` new replicas of `step`, ready (stopped again if any is not), not yet routed to."""
        new = [self._start_replica(step) for _ in range(count)]
        try:
            self._wait_ready(new)
        except BaseException:
            self._retire(new)
            raise
        return new

    def _retire(self, replicas: list[R]) -> None:
        for replica in replicas:
            if replica in self._replicas.get(replica.step, []):
                self._replicas[replica.step].remove(replica)
        self._stop(replicas)
        for replica in replicas:
            self._release(replica)

    def _make_workdir(self, prefix: str) -> Path:
        """The `workdir` argument, else a new folder named `prefix...` under `<cache_dir>/deploy/`."""
        if self._workdir_arg is not None:
            path = Path(self._workdir_arg)
            path.mkdir(parents=True, exist_ok=True)
            return path
        root = self.settings.cache_dir / "deploy"
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))

    @property
    def _endpoints_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "endpoints.json"

    def _expected(self) -> dict[str, list[str]]:
        return {step: sorted(r.address for r in reps) for step, reps in self._replicas.items()}

    def _write_endpoints(self) -> Path:
        return write_endpoints(self._endpoints_path, self._expected())

    def _publish(self) -> None:
        """Point the gateway at exactly the current replicas and wait until it says so."""
        self._write_endpoints()
        self._wait_membership()

    def _wait_membership(self) -> None:
        """Wait for a generation newer than the last one seen, routing to exactly our replicas."""
        assert self._gateway is not None
        self.membership = wait_for_membership(
            self._gateway.address, expected=self._expected(), after=self.membership,
            timeout_s=self.membership_timeout_s, check=self._check_gateway, hint=self._gateway_hint(),
        )
