"""KubernetesBackend: the pipeline as Deployments on a cluster, through the official client.

    with make_backend("kubernetes", image_repository="registry.example.com/milestone") as backend:
        backend.deploy(spec)           # render, apply, wait for ready pods, point the gateway at them
        backend.scale("detect", 3)     # patch the replica count, wait until ready, then route to them

The gateway runs `gateway_replicas` pods behind its Service; every routing change waits until each
ready gateway pod applies it. Scaling down picks the newest pods, takes them out of the gateways'
membership first (`routing.py`),
marks them with the lowest pod-deletion cost so the ReplicaSet removes exactly those, then patches
the count: no request is sent to a pod that is stopping, and a stopping server finishes what it has.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...errors import DeploymentError
from ...serving.membership import Membership
from .. import exit_hooks
from ..base import DeploymentBackend, DeploymentState, Endpoints, ReplicaState
from ..spec import PipelineDeployment
from ..variants import resolve_variant_folder
from .cluster import Cluster
from .objects import GATEWAY_PORT, STEP_PORT
from .render import namespace_of, object_name, render_manifests
from .routing import (
    DELETION_COST,
    component_selector,
    pod_ready,
    ready_addresses,
    sync_gateway,
)
from .settings import KubernetesSettings

__all__ = ["KubernetesBackend"]

log = logging.getLogger(__name__)


class KubernetesBackend(DeploymentBackend):
    """Deploy / scale / status / teardown of one pipeline deployment on a Kubernetes cluster.

    Keyword options override `KubernetesSettings` fields (e.g. `image_repository=`, `namespace=`).
    """

    name = "kubernetes"

    def __init__(self, *, settings: KubernetesSettings | None = None, **overrides: Any) -> None:
        base = settings or KubernetesSettings()
        unknown = sorted(set(overrides) - set(KubernetesSettings.model_fields))
        if unknown:
            raise DeploymentError(f"unknown Kubernetes backend options {unknown}; "
                                  f"choose from {sorted(KubernetesSettings.model_fields)}")
        self.settings = KubernetesSettings.model_validate({**base.model_dump(), **overrides})
        self.spec: PipelineDeployment | None = None
        self.namespace: str | None = None
        self._cluster: Cluster | None = None
        self._gateway_address: str | None = None
        self.memberships: dict[str, Membership] = {}
        """Gateway instance id -> what that gateway pod routes to after the last deploy or scale."""
        self.membership: Membership | None = None
        """One of `memberships` (they all route to the same replicas), as the other backends report it."""

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster(self.settings)
        return self._cluster

    # DeploymentBackend --------------------------------------------------------------------------
    def deploy(self, spec: PipelineDeployment) -> DeploymentState:
        if self.spec is not None:
            raise DeploymentError(f"this backend already runs '{self.spec.name}'; teardown() it first")
        settings = self.settings
        manifests = render_manifests(spec, settings=settings)  # bad input fails before the cluster is asked
        if settings.node_cpu is None:  # ... and a replica no node can hold, before anything is created
            settings = settings.model_copy(update={"node_cpu": self.cluster.largest_node_cpu()})
            manifests = render_manifests(spec, settings=settings)
        self.spec, self.namespace = spec.model_copy(deep=True), namespace_of(spec, settings)  # scale() edits it
        spec = self.spec
        exit_hooks.register(self)
        try:
            # a run that died without teardown left objects with this deployment's label: start clean
            self.cluster.delete_by_label(self.namespace, component_selector(spec.name))
            self.cluster.apply(manifests)
            for component, replicas in [*((s.step, s.replicas) for s in spec.steps),
                                        ("gateway", settings.gateway_replicas)]:
                self._wait(component, replicas)
            self._gateway_address = settings.gateway_address or self.cluster.service_address(
                self.namespace, object_name(spec, "gateway"))
            if self._gateway_address is None:
                raise DeploymentError(
                    f"this machine cannot reach the gateway Service '{object_name(spec, 'gateway')}' (type "
                    f"{settings.gateway_service_type}); run `kubectl -n {self.namespace} port-forward svc/"
                    f"{object_name(spec, 'gateway')} {GATEWAY_PORT}` and set MILESTONE_K8S_GATEWAY_ADDRESS="
                    f"127.0.0.1:{GATEWAY_PORT}, or use gateway_service_type NodePort / LoadBalancer")
            self._route({s.step: self._ready(s.step) for s in spec.steps})
        except BaseException:
            try:
                self.teardown()
            except Exception as exc:  # noqa: BLE001 - the deploy's own error is the one to report
                log.warning("teardown after a failed deploy failed too: %s", exc)
            raise
        return self.status()

    def scale(self, step: str, replicas: int) -> DeploymentState:
        spec, namespace = self._running()
        target = spec.step(step)
        if replicas < 1:
            raise DeploymentError(f"cannot scale step '{step}' to {replicas} replicas; keep at least 1 "
                                  "(teardown() stops the whole deployment)")
        name = object_name(spec, step)
        pods = [p for p in self.cluster.pods(namespace, component_selector(spec.name, step)) if pod_ready(p)]
        if replicas < len(pods):
            leaving = {p.metadata.name for p in pods[replicas:]}  # the newest go; pods are sorted oldest first
            self._route({**self._current(), step: ready_addresses(pods, exclude=leaving)})
            self.cluster.annotate_pods(namespace, sorted(leaving), {DELETION_COST: "-1000"})
        self.cluster.scale(namespace, name, replicas)
        self._wait(step, replicas)
        self._route({**self._current(), step: self._ready(step)})
        spec.steps[spec.steps.index(target)] = target.model_copy(update={"replicas": replicas})
        return self.status()

    def status(self) -> DeploymentState:
        spec, namespace = self._running()
        replicas: list[ReplicaState] = []
        gateways: list[ReplicaState] = []
        for component, port in [*((s.step, STEP_PORT) for s in spec.steps), ("gateway", GATEWAY_PORT)]:
            config = spec.gateway if component == "gateway" else spec.step(component)
            pods = self.cluster.pods(namespace, component_selector(spec.name, component))
            for index, pod in enumerate(pods):
                state = ReplicaState(
                    step=component, index=index, address=f"{pod.status.pod_ip or '?'}:{port}", cpu=config.cpu,
                    threads=config.thread_count, alive=pod_ready(pod),
                    variant="pipeline" if component == "gateway" else config.variant,  # type: ignore[union-attr]
                    placement={"pod": pod.metadata.name, "node": pod.spec.node_name, "namespace": namespace})
                (gateways if component == "gateway" else replicas).append(state)
        if not gateways:
            raise DeploymentError(f"the gateway pods of '{spec.name}' are gone; `kubectl -n {namespace} get pods` "
                                  "shows why, then teardown() and deploy again")
        # one gateway entry (the first ready pod, at the Service's address); every gateway pod in placement
        first = next((g for g in gateways if g.alive), gateways[0])
        gateway = first.model_copy(update={"address": self._gateway_address or first.address})
        down = [r.label for r in replicas if not r.alive]
        warnings = [f"replicas not ready: {', '.join(down)}"] if down else []
        not_ready = [g.placement["pod"] for g in gateways if not g.alive]
        if len(gateways) - len(not_ready) < self.settings.gateway_replicas:
            warnings.append(f"{len(gateways) - len(not_ready)} of {self.settings.gateway_replicas} gateway pods ready"
                            + (f" (not ready: {', '.join(not_ready)})" if not_ready else ""))
        return DeploymentState(name=spec.name, backend=self.name, gateway=gateway, replicas=replicas,
                               placement={"namespace": namespace, "cluster": self.cluster.host,
                                          "gateway_pods": [g.placement["pod"] for g in gateways]},
                               warnings=warnings)

    def endpoints(self) -> Endpoints:
        state = self.status()
        return Endpoints(gateway=state.gateway.address, steps={
            s.step: [r.address for r in state.replicas if r.step == s.step and r.alive] for s in self._running()[0].steps})

    def variant_folder(self, step: str) -> Path:
        spec, _ = self._running()
        return resolve_variant_folder(spec.step(step))

    def logs(self, step: str, index: int = 0, *, lines: int = 50) -> str:
        """The last `lines` of a replica's log (`gateway` for the gateway)."""
        spec, namespace = self._running()
        pods = self.cluster.pods(namespace, component_selector(spec.name, step))
        if not 0 <= index < len(pods):
            raise DeploymentError(f"step '{step}' has {len(pods)} pods; there is no replica {index}")
        return self.cluster.pod_log(namespace, pods[index].metadata.name, lines=lines)

    def teardown(self) -> None:
        try:
            if self.spec is not None and self.namespace is not None and self._cluster is not None:
                self._cluster.delete_by_label(self.namespace, component_selector(self.spec.name))
        finally:  # a cluster that went away must not keep this backend registered for ever
            self.spec, self.namespace, self._gateway_address = None, None, None
            self.memberships, self.membership = {}, None
            exit_hooks.unregister(self)

    # internals ----------------------------------------------------------------------------------
    def _running(self) -> tuple[PipelineDeployment, str]:
        if self.spec is None or self.namespace is None:
            raise DeploymentError("no deployment is running on this backend; call deploy(spec) first")
        return self.spec, self.namespace

    def _wait(self, component: str, replicas: int) -> None:
        spec, namespace = self._running()
        self.cluster.wait_ready(namespace, object_name(spec, component), replicas,
                                selector=component_selector(spec.name, component),
                                timeout_s=self.settings.ready_timeout_s)

    def _ready(self, step: str) -> list[str]:
        spec, namespace = self._running()
        return ready_addresses(self.cluster.pods(namespace, component_selector(spec.name, step)))

    def _current(self) -> dict[str, list[str]]:
        return {s.step: self._ready(s.step) for s in self._running()[0].steps}

    def _route(self, endpoints: dict[str, list[str]]) -> None:
        spec, namespace = self._running()
        assert self._gateway_address is not None
        self.memberships = sync_gateway(self.cluster, spec, namespace, endpoints, gateway_address=self._gateway_address,
                                        after=self.memberships, timeout_s=self.settings.membership_timeout_s)
        self.membership = next(iter(self.memberships.values()))
