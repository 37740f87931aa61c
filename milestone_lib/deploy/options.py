"""The parts of a step's spec that are not its variant: batching, registry source, backend options.

Each backend reads only its own section (`local:`, `docker:`, `kubernetes:`); the others are kept
so one YAML can describe the same pipeline for every backend.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Batching", "DockerOptions", "KubernetesOptions", "LocalOptions", "RegistryRef"]


class Batching(BaseModel):
    """Dynamic batching of one step server; a field left None takes the step's serving default
    (`milestone_lib.serving.defaults`), filled in by `StepDeployment`."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1)
    """Largest batch the server forms from queued requests."""
    max_queue_delay_ms: float | None = Field(default=None, ge=0)
    """How long the first queued request waits for others to join its batch."""
    max_queue_size: int | None = Field(default=None, ge=1)
    """Requests queued beyond this are refused with RESOURCE_EXHAUSTED."""


class RegistryRef(BaseModel):
    """Pull the variant from the model registry (`milestone_lib.registry.ModelRegistry`)."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    """Version to pull; None means the latest."""


class LocalOptions(BaseModel):
    """Local-process backend: how a replica's `cpu` is enforced on this machine."""

    model_config = ConfigDict(extra="forbid")

    pin: bool = True
    """Pin the process to whole cores (CPU affinity), sharing cores only when none is free."""
    cpu_quota: bool = True
    """Limit the process to `cpu` CPUs with a cgroup CPU quota, where this process may create cgroups."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables of the process."""


class DockerOptions(BaseModel):
    """Docker backend (not in this version; kept so specs can already carry it)."""

    model_config = ConfigDict(extra="forbid")

    network: str | None = None
    """Docker network the containers join."""
    env: dict[str, str] = Field(default_factory=dict)
    run_args: list[str] = Field(default_factory=list)
    """Extra `docker run` arguments."""


class KubernetesOptions(BaseModel):
    """Kubernetes backend (not in this version; kept so specs can already carry it)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = "default"
    node_selector: dict[str, str] = Field(default_factory=dict)
    service_account: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
