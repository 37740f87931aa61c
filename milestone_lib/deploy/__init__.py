"""Deploying the pipeline: a `PipelineDeployment` (data, loadable from YAML) run by a backend.

`LocalBackend` runs local processes; Docker and Kubernetes backends implement the same
`DeploymentBackend` interface (deploy / scale / status / endpoints / teardown).
"""

from __future__ import annotations

from .base import DeploymentBackend, DeploymentState, Endpoints, ReplicaState
from .local import LocalBackend, query_gateway_membership, resolve_variant_folder
from .spec import (
    Batching,
    GatewayDeployment,
    PipelineDeployment,
    RegistryRef,
    StepDeployment,
    load_deployment,
)

__all__ = [
    "Batching",
    "DeploymentBackend",
    "DeploymentState",
    "Endpoints",
    "GatewayDeployment",
    "LocalBackend",
    "PipelineDeployment",
    "RegistryRef",
    "ReplicaState",
    "StepDeployment",
    "load_deployment",
    "query_gateway_membership",
    "resolve_variant_folder",
]
