"""How the gateway on a cluster learns the step replicas: the endpoints ConfigMap, kept by the backend.

    ready pods (Endpoints of the headless Service) -> ConfigMap `<deployment>-endpoints`
        -> kubelet refreshes the gateway's mounted file -> the gateway re-reads it (new inode) -> membership

The gateway reads `--endpoints FILE` (serving/membership.py); a mounted ConfigMap is such a file,
replaced atomically by the kubelet. The kubelet refreshes mounts on its sync period (up to about a
minute), and at once when the pod changes: the backend touches an annotation of the gateway pod
after each write. It then waits until the gateway reports the new membership, so a replica is
only stopped after the gateway stopped routing to it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...serving.membership import Membership, query_membership, wait_for_membership
from ..spec import PipelineDeployment
from .cluster import Cluster
from .objects import DEPLOYMENT_LABEL, STEP_PORT, selector
from .render import endpoints_configmap

__all__ = ["DELETION_COST", "component_selector", "pod_ready", "ready_addresses", "sync_gateway"]

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
"""Pods with the lowest cost go first when a Deployment scales down: how the backend picks which."""
_REVISION = "milestone/endpoints-revision"


def component_selector(deployment: str, component: str | None = None) -> str:
    """A label selector string for one component of a deployment, or all of it."""
    labels = selector(deployment, component) if component else {DEPLOYMENT_LABEL: deployment}
    return ",".join(f"{k}={v}" for k, v in labels.items())


def pod_ready(pod: Any) -> bool:
    """Running, not being deleted, its Ready condition true, and an IP to reach it at."""
    if pod.metadata.deletion_timestamp is not None or not pod.status.pod_ip:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_addresses(pods: list[Any], *, port: int = STEP_PORT, exclude: set[str] | None = None) -> list[str]:
    """`podIP:port` of every ready pod whose name is not in `exclude`, sorted."""
    exclude = exclude or set()
    return sorted(f"{p.status.pod_ip}:{port}" for p in pods if pod_ready(p) and p.metadata.name not in exclude)


def sync_gateway(cluster: Cluster, spec: PipelineDeployment, namespace: str, endpoints: dict[str, list[str]], *,
                 gateway_address: str, after_generation: int, timeout_s: float) -> Membership:
    """Write `endpoints` for the gateway and wait until it routes to exactly those replicas."""
    try:
        current = query_membership(gateway_address)
        if current.generation > after_generation and current.matches(endpoints):
            return current  # nothing to change: a rewrite would not bump the gateway's generation
    except Exception:  # noqa: BLE001, S110 - not reachable yet: write, then wait below until it is
        pass
    configmap = endpoints_configmap(spec, namespace, endpoints)
    cluster.apply([configmap])
    revision = hashlib.sha256(json.dumps(configmap["data"], sort_keys=True).encode()).hexdigest()[:16]
    gateway_pods = [p.metadata.name for p in cluster.pods(namespace, component_selector(spec.name, "gateway"))]
    cluster.annotate_pods(namespace, gateway_pods, {_REVISION: revision})  # a pod update makes the kubelet remount now
    return wait_for_membership(
        gateway_address, expected=endpoints, after_generation=after_generation, timeout_s=timeout_s,
        hint=f"the kubelet may be slow to refresh ConfigMap '{configmap['metadata']['name']}'; raise "
             "MILESTONE_K8S_MEMBERSHIP_TIMEOUT_S, or check that this machine reaches the gateway "
             "(MILESTONE_K8S_GATEWAY_ADDRESS)",
    )
