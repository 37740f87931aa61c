"""How the gateway on a cluster learns the step replicas: the endpoints ConfigMap, kept by the backend.

    ready pods (Endpoints of the headless Service) -> ConfigMap `<deployment>-endpoints`
        -> kubelet refreshes the gateway's mounted file -> the gateway re-reads it (new inode) -> membership

The gateway reads `--endpoints FILE` (serving/membership.py); a mounted ConfigMap is such a file,
replaced atomically by the kubelet. The kubelet refreshes mounts on its sync period (up to about a
minute), and at once when the pod changes: the backend touches an annotation of every gateway pod
after each write. It then waits until EVERY ready gateway pod reports the new membership
(`wait_for_every_gateway`), so a replica is only stopped after no gateway routes to it any more.
The gateway pods sit behind one Service: each query opens a new connection, on which kube-proxy
picks a pod, and the answers are told apart by the gateway's `instance` id.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import DeploymentError
from ...serving.membership import Membership, query_membership
from ..spec import PipelineDeployment
from .cluster import Cluster
from .objects import DEPLOYMENT_LABEL, STEP_PORT, selector
from .render import endpoints_configmap

__all__ = ["DELETION_COST", "component_selector", "pod_ready", "ready_addresses", "sync_gateway",
           "wait_for_every_gateway"]

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


def wait_for_every_gateway(query: Callable[[], Membership], *, replicas: Callable[[], int],
                           expected: Mapping[str, list[str]], after: Mapping[str, Membership] | None = None,
                           timeout_s: float, poll_s: float = 0.05, count_every_s: float = 1.0,
                           hint: str = "") -> dict[str, Membership]:
    """Query until `replicas()` distinct gateway instances route to exactly `expected`, each applied after `after`.

    `query` answers for whichever gateway it reaches (through a Service: a pod per connection);
    answers are told apart by `Membership.instance`, and the latest per instance counts. An
    instance is up to date when it matches `expected` and is newer than its entry in `after` (the
    instance id -> membership it reported before the write; one not there counts as new), or when
    that entry already matched `expected` (equal endpoints bump no generation). `replicas` (the
    ready gateway pods, at least 1 counted) is re-read every `count_every_s`. Returns the up-to-date
    instances; raises DeploymentError naming the stale ones on timeout. An instance that answered
    once and then went (a restarted pod) stays among the stale, but is not waited for.
    """
    after = after or {}
    latest: dict[str, Membership] = {}
    error = ""
    deadline = time.monotonic() + timeout_s
    wanted, counted_at = 1, -float("inf")

    def fresh(m: Membership) -> bool:
        before = after.get(m.instance)
        return m.matches(expected) and (m.newer_than(before) or (before is not None and before.matches(expected)))

    while True:
        try:
            seen = query()
            latest[seen.instance] = seen
        except Exception as exc:  # noqa: BLE001 - that pod not reachable (yet): retried until the deadline
            error = f"; the last query failed ({exc})"
        done = {i: m for i, m in latest.items() if fresh(m)}
        if time.monotonic() - counted_at >= count_every_s:
            wanted, counted_at = max(1, replicas()), time.monotonic()
        if len(done) >= wanted:
            return done
        if time.monotonic() > deadline:
            stale = ", ".join(f"{i or '?'} (generation {m.generation}, routes to {m.endpoints})"
                              for i, m in sorted(latest.items()) if not fresh(m)) or "none"
            raise DeploymentError(
                f"{len(done)} of {wanted} ready gateway replicas reported membership {dict(expected)} within "
                f"{timeout_s:g} s: {len(latest)} gateway instances answered, stale or gone: {stale}{error}"
                f"{'; ' + hint if hint else ''}")
        time.sleep(poll_s)


def sync_gateway(cluster: Cluster, spec: PipelineDeployment, namespace: str, endpoints: dict[str, list[str]], *,
                 gateway_address: str, after: Mapping[str, Membership] | None,
                 timeout_s: float) -> dict[str, Membership]:
    """Write `endpoints` for the gateways and wait until every ready gateway pod routes to exactly those replicas.

    `after`: what each gateway instance reported at the previous sync (None or empty: nothing yet).
    Returns instance id -> the membership it applies now (the next sync's `after`).
    """
    configmap = endpoints_configmap(spec, namespace, endpoints)
    cluster.apply([configmap])  # equal data is a no-op: the instances that already match count as they are
    revision = hashlib.sha256(json.dumps(configmap["data"], sort_keys=True).encode()).hexdigest()[:16]
    selector = component_selector(spec.name, "gateway")
    gateway_pods = [p.metadata.name for p in cluster.pods(namespace, selector)]
    cluster.annotate_pods(namespace, gateway_pods, {_REVISION: revision})  # a pod update makes the kubelet remount now
    return wait_for_every_gateway(
        lambda: query_membership(gateway_address), replicas=lambda: sum(map(pod_ready, cluster.pods(namespace, selector))),
        expected=endpoints, after=after, timeout_s=timeout_s,
        hint=f"the kubelet may be slow to refresh ConfigMap '{configmap['metadata']['name']}' (raise "
             f"MILESTONE_K8S_MEMBERSHIP_TIMEOUT_S), `kubectl -n {namespace} logs -l {selector}` shows a stale "
             "gateway's log, or check that this machine reaches the gateway Service (MILESTONE_K8S_GATEWAY_ADDRESS)",
    )
