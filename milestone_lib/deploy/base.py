"""The interface every deployment backend implements (local processes now; Docker and Kubernetes next).

A backend object holds at most one running pipeline deployment:

    with LocalBackend() as backend:          # teardown on exit, also on an exception
        state = backend.deploy(spec)         # PipelineDeployment -> DeploymentState
        backend.scale("detect", 3)           # no request is dropped
        backend.endpoints().gateway          # "127.0.0.1:PORT"
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

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
    pid: int | None = None
    """Process id (local backend); None where the backend has no process ids."""
    cores: list[int] | None = None
    """CPU cores it is pinned to; None when not pinned."""
    threads: int = 1
    alive: bool = True


class Endpoints(BaseModel):
    """Where to send requests: the gateway, and each step's replicas."""

    gateway: str
    steps: dict[str, list[str]]


class DeploymentState(BaseModel):
    """What a deploy or scale produced: every process, its cores, and any warning about sharing."""

    name: str
    backend: str
    gateway: ReplicaState
    replicas: list[ReplicaState]
    available_cores: list[int]
    """Cores this machine lets the deployment use."""
    oversubscribed: bool = False
    """True when replicas (or the gateway) must share cores."""
    warnings: list[str] = Field(default_factory=list)

    @property
    def core_assignment(self) -> dict[str, list[int] | None]:
        """`<step>-<index>` (and `gateway`) -> the cores it is pinned to."""
        out: dict[str, list[int] | None] = {"gateway": self.gateway.cores}
        out.update({f"{r.step}-{r.index}": r.cores for r in self.replicas})
        return out

    def replica_count(self, step: str) -> int:
        return sum(1 for r in self.replicas if r.step == step)

    def to_frame(self) -> pd.DataFrame:
        """One row per process: step, index, variant, address, pid, cores, threads, alive."""
        rows = [r.model_dump() for r in [self.gateway, *self.replicas]]
        frame = pd.DataFrame(rows)
        frame["cores"] = frame["cores"].map(lambda c: ",".join(map(str, c)) if c else "-")
        return frame


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
        """The current state, with each process's liveness."""

    @abstractmethod
    def endpoints(self) -> Endpoints:
        """The gateway address and every step replica's address."""

    @abstractmethod
    def teardown(self) -> None:
        """Stop everything; idempotent; leaves no process behind."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()
