"""Building blocks of the rendered manifests: names, labels, ports, resources, probes, security.

Pure functions over plain values; `render.py` assembles them into Deployments and Services.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import DeploymentError

__all__ = [
    "DEPLOYMENT_LABEL",
    "GATEWAY_PORT",
    "METRICS_PORT",
    "RUN_AS_USER",
    "STEP_PORT",
    "check_name",
    "container_security",
    "grpc_probes",
    "labels",
    "millicores",
    "pod_security",
    "resources",
    "selector",
    "spread_over_nodes",
]

STEP_PORT = 8001
GATEWAY_PORT = 8000
METRICS_PORT = 9100
RUN_AS_USER = 10001
"""A numeric uid: `runAsNonRoot` can only be verified by the kubelet against a number."""
DEPLOYMENT_LABEL = "app.kubernetes.io/instance"
"""The label naming the pipeline deployment; teardown deletes by it."""

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def check_name(name: str, *, what: str) -> str:
    """A Kubernetes object name (DNS-1035 label: Services need it), or a DeploymentError."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise DeploymentError(
            f"{what} '{name}' is not a valid Kubernetes name (lowercase letters, digits and '-', starting with a "
            "letter, at most 63 characters); rename the deployment (`name:` in its spec)"
        )
    return name


def selector(deployment: str, component: str) -> dict[str, str]:
    """The labels that pick one component's pods (a step, or the gateway) of one deployment."""
    return {DEPLOYMENT_LABEL: deployment, "app.kubernetes.io/component": component}


def labels(deployment: str, component: str) -> dict[str, str]:
    """Recommended labels (app.kubernetes.io/*) of every object of a deployment."""
    return {
        "app.kubernetes.io/name": "milestone-gateway" if component == "gateway" else "milestone-step-server",
        "app.kubernetes.io/part-of": "milestone",
        "app.kubernetes.io/managed-by": "milestone_lib",
        **selector(deployment, component),
    }


def spread_over_nodes(match_labels: dict[str, str]) -> dict[str, Any]:
    """A pod affinity that prefers one node per pod matching `match_labels` (scheduled anyway when nodes run out)."""
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100,
        "podAffinityTerm": {"labelSelector": {"matchLabels": dict(match_labels)},
                            "topologyKey": "kubernetes.io/hostname"}}]}}


def millicores(cpu: float, *, component: str, node_cpu: float | None = None) -> str:
    """`cpu` CPUs as a millicore quantity ("500m"), checked against the largest node."""
    milli = round(cpu * 1000)
    if cpu <= 0 or milli < 1:
        raise DeploymentError(f"{component}: cpu {cpu} is below Kubernetes' smallest CPU amount (1m = 0.001 CPU); "
                              "give each replica at least 0.001 CPU, e.g. 0.5")
    if abs(milli - cpu * 1000) > 1e-6:
        raise DeploymentError(f"{component}: cpu {cpu} is not a whole number of millicores (Kubernetes' CPU unit); "
                              "give cpu as a multiple of 0.001, e.g. 0.5")
    if node_cpu is not None and cpu > node_cpu + 1e-9:
        raise DeploymentError(
            f"{component}: cpu {cpu} is more than the largest node offers ({node_cpu:g} allocatable CPUs), so its pods "
            "could never be scheduled; lower `cpu` and add replicas instead"
        )
    return f"{milli}m"


def resources(cpu: str, memory: str) -> dict[str, Any]:
    """Requests = limits: the pod gets the Guaranteed QoS class (no CPU borrowing, measurements hold)."""
    amounts = {"cpu": cpu, "memory": memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def grpc_probes(port: int) -> dict[str, Any]:
    """Startup, readiness and liveness through the standard grpc.health.v1 service of our servers.

    The startup probe gives a replica up to two minutes to load its model before liveness counts.
    """
    def probe(period: int, failures: int, timeout: int) -> dict[str, Any]:
        return {"grpc": {"port": port}, "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": timeout}

    return {"startupProbe": probe(2, 60, 2), "readinessProbe": probe(2, 2, 2), "livenessProbe": probe(10, 3, 5)}


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
