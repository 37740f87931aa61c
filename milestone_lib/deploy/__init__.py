"""Deploying the pipeline: a `PipelineDeployment` (data, loadable from YAML) run by a backend.

    spec.py        PipelineDeployment / StepDeployment / GatewayDeployment, load_deployment
    options.py     Batching, RegistryRef, per-backend option sections (local, docker, kubernetes)
    base.py        DeploymentBackend (the interface), DeploymentState, ReplicaState, Endpoints
    replicas.py    ReplicaBackend: the deploy / scale sequence of the backends that start each replica
    readiness.py   wait_until_ready: the poll loop over freshly started replicas
    variants.py    resolve_variant_folder: a step's folder, or a registry pull
    exit_hooks.py  teardown at interpreter exit and on SIGTERM
    factory.py     make_backend("local" | "docker" | "kubernetes", **options)
    local/         LocalBackend: processes, cores, cgroup CPU quotas

The gateway membership contract the backends write and query is `milestone_lib.serving.membership`.
"""

from __future__ import annotations

from ..serving.membership import query_gateway_membership
from .base import DeploymentBackend, DeploymentState, Endpoints, ReplicaState
from .factory import BACKENDS, make_backend
from .local import LocalBackend
from .options import (
    Batching,
    DockerOptions,
    KubernetesOptions,
    LocalOptions,
    RegistryRef,
)
from .spec import GatewayDeployment, PipelineDeployment, StepDeployment, load_deployment
from .variants import resolve_variant_folder

__all__ = [
    "BACKENDS",
    "Batching",
    "DeploymentBackend",
    "DeploymentState",
    "DockerOptions",
    "Endpoints",
    "GatewayDeployment",
    "KubernetesOptions",
    "LocalBackend",
    "LocalOptions",
    "PipelineDeployment",
    "RegistryRef",
    "ReplicaState",
    "StepDeployment",
    "load_deployment",
    "make_backend",
    "query_gateway_membership",
    "resolve_variant_folder",
]
