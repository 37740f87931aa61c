"""The interface every deployment backend implements, and the backend-neutral state it reports.

A backend object holds at most one running pipeline deployment:

    with make_backend("local") as backend:   # teardown on exit, also on an exception
        state = backend.deploy(spec)         # PipelineDeployment -> DeploymentState
        backend.scale("detect", 3)           # no request is dropped
        backend.endpoints().gateway          # "127.0.0.1:PORT"

Where a replica runs is backend-specific and stays in `ReplicaState.placement` (local: pid, cores,
cgroup; Docker: container id; Kubernetes: pod and node); everything else is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pandas as pd
from pydantic import BaseModel, Field

from .spec import PipelineDeployment

__all__ = ["DeploymentBackend", "DeploymentState", "Endpoints", "ReplicaState"]


class ReplicaState(BaseModel):
    """One step server replica (or the gateway, with step `gateway`)."""

    step: str
    index: int
    variant: str | None = None
    address: str
    """host:port of its Open Inference Protocol gRPC endpoint."""
    cpu: float = 1.0
    """CPUs allocated to it."""
    threads: int = 1
    """Compute threads it runs."""
    alive: bool = True
    placement: dict[str, Any] = Field(default_factory=dict)
    """Where it runs, backend-specific: local {pid, cores, cgroup}, docker {container}, kubernetes {pod, node}."""

    @property
    def label(self) -> str:
        return "gateway" if self.step == "gateway" else f"{self.step}-{self.index}"


class Endpoints(BaseModel):
    """Where to send requests: the gateway, and each step's replicas."""

    gateway: str
    steps: dict[str, list[str]]


class DeploymentState(BaseModel):
    """What a deploy or scale produced: every replica, its CPU, where it runs, and any warning."""

    name: str
    backend: str
    gateway: ReplicaState
    replicas: list[ReplicaState]
    capacity_cpu: float | None = None
    """CPUs the backend offers the deployment; None where unknown (a cluster)."""
    placement: dict[str, Any] = Field(default_factory=dict)
    """Backend-wide facts, e.g. the local cores available."""
    warnings: list[str] = Field(default_factory=list)
    """Allocations that are not enforced, processes that share CPUs, replicas that are down."""

    @property
    def requested_cpu(self) -> float:
        return sum(r.cpu for r in [self.gateway, *self.replicas])

    @property
    def oversubscribed(self) -> bool:
        """True when the deployment asks for more CPU than the backend offers."""
        return self.capacity_cpu is not None and self.requested_cpu > self.capacity_cpu + 1e-9

    @property
    def placements(self) -> dict[str, dict[str, Any]]:
        """`<step>-<index>` (and `gateway`) -> where it runs."""
        return {r.label: r.placement for r in [self.gateway, *self.replicas]}

    def replica_count(self, step: str) -> int:
        return sum(1 for r in self.replicas if r.step == step)

    def to_frame(self) -> pd.DataFrame:
        """One row per process: step, index, variant, address, cpu, threads, alive, then its placement."""
        rows = []
        for replica in [self.gateway, *self.replicas]:
            row = replica.model_dump(exclude={"placement"})
            for key, value in replica.placement.items():
                row[key] = ",".join(map(str, value)) if isinstance(value, list) else value
            rows.append(row)
        return pd.DataFrame(rows)


class DeploymentBackend(ABC):
    """Deploy / scale / status / endpoints / teardown of one pipeline deployment."""

    name: str = "abstract"

    @abstractmethod
    def deploy(self, spec: PipelineDeployment) -> DeploymentState:
        """Start every replica and the gateway; return once the gateway serves them all."""

    @abstractmethod
    def scale(self, step: str, replicas: int) -> DeploymentState:
        """Change a step's replica count without dropping a request."""

    @abstractmethod
    def status(self) -> DeploymentState:
        """The current state, with each replica's liveness."""

    @abstractmethod
    def endpoints(self) -> Endpoints:
        """The gateway address and every step replica's address."""

    @abstractmethod
    def variant_folder(self, step: str) -> Path:
        """The local folder holding the step's variant (to read its manifest or sample images)."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop everything; idempotent; leaves nothing running."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()
