"""One cluster through the official `kubernetes` client: connect, apply, scale, wait, pods, delete by label.

Objects are created and updated with server-side apply (field manager `milestone`), so applying
the same manifests twice is a no-op and a changed spec updates what exists.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ...errors import DeploymentError
from .settings import KubernetesSettings

__all__ = ["Cluster", "find_kubeconfig"]

FIELD_MANAGER = "milestone"
# Kinds a deployment creates, deleted in this order on teardown (the autoscaler first: it would scale back up).
_OWNED_KINDS = [("autoscaling/v2", "HorizontalPodAutoscaler"), ("apps/v1", "Deployment"), ("v1", "Service"),
                ("v1", "ConfigMap"), ("policy/v1", "PodDisruptionBudget")]
# Waiting reasons of a container that will not become ready by itself.
_STUCK = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError",
          "CreateContainerError", "RunContainerError"}


def find_kubeconfig(settings: KubernetesSettings | None = None) -> Path | None:
    """The kubeconfig in use: the setting, else the first existing `KUBECONFIG` entry, else `~/.kube/config`."""
    settings = settings or KubernetesSettings()
    if settings.kubeconfig is not None:
        return settings.kubeconfig if settings.kubeconfig.is_file() else None
    candidates = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(Path.home() / ".kube" / "config")
    return next((p for p in candidates if p.is_file()), None)


def _reason(exc: Exception) -> str:
    return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')} {getattr(exc, 'body', '') or exc}".strip()


class Cluster:
    """A connected API client; every method raises DeploymentError naming the object and the next step."""

    def __init__(self, settings: KubernetesSettings) -> None:
        # imported on use: rendering manifests needs no client
        from kubernetes import client, config

        path = find_kubeconfig(settings)
        if path is not None:
            self.api = config.new_client_from_config(config_file=str(path), context=settings.context)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            self.api = client.ApiClient()
        else:
            raise DeploymentError(
                "no kubeconfig found (MILESTONE_K8S_KUBECONFIG, KUBECONFIG and ~/.kube/config are unset or missing) "
                "and this is not a pod; create a cluster (`kind create cluster`, `minikube start`) or point KUBECONFIG "
                "at one, or deploy with make_backend(\"local\")"
            )
        self.host = self.api.configuration.host
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        try:
            client.VersionApi(self.api).get_code(_request_timeout=10)
        except Exception as exc:  # any failure means the same to the user: no cluster there
            raise DeploymentError(
                f"the Kubernetes API at {self.host} does not answer ({type(exc).__name__}: {exc}); start the cluster "
                "or select a running one (`kubectl config use-context ...`), then retry"
            ) from exc
        self._dynamic: Any = None

    def _resource(self, api_version: str, kind: str) -> Any:
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            self._dynamic = DynamicClient(self.api)
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    # objects ------------------------------------------------------------------------------------
    def apply(self, manifests: list[dict[str, Any]]) -> None:
        """Server-side apply each manifest, in order."""
        for manifest in manifests:
            what = f"{manifest['kind']} '{manifest['metadata']['name']}'"
            try:
                resource = self._resource(manifest["apiVersion"], manifest["kind"])
                self._dynamic.server_side_apply(resource, body=manifest, field_manager=FIELD_MANAGER,
                                                force_conflicts=True)
            except Exception as exc:  # the API's refusal, reported with the object it concerns
                raise DeploymentError(f"the cluster refused {what}: {_reason(exc)}; check the cluster's "
                                      "permissions and `kubectl describe` the object") from exc

    def delete_by_label(self, namespace: str, selector: str, *, timeout_s: float = 120.0) -> list[str]:
        """Delete every owned object matching `selector`, then wait until their pods are gone."""
        deleted = []
        for api_version, kind in _OWNED_KINDS:
            resource = self._resource(api_version, kind)
            for item in resource.get(namespace=namespace, label_selector=selector).items:
                try:
                    resource.delete(name=item.metadata.name, namespace=namespace,
                                    body={"propagationPolicy": "Background"})
                    deleted.append(f"{kind}/{item.metadata.name}")
                except Exception as exc:  # already gone (404) is fine
                    if getattr(exc, "status", None) != 404:
                        raise DeploymentError(f"could not delete {kind} '{item.metadata.name}': {_reason(exc)}") from exc
        deadline = time.monotonic() + timeout_s
        while self.pods(namespace, selector, include_terminating=True):
            if time.monotonic() > deadline:
                raise DeploymentError(f"pods matching {selector} in '{namespace}' are still there after {timeout_s:.0f} s;"
                                      f" `kubectl -n {namespace} get pods -l {selector}` shows why")
            time.sleep(1.0)
        return deleted

    # pods and replicas -------------------------------------------------------------------------
    def pods(self, namespace: str, selector: str, *, include_terminating: bool = False) -> list[Any]:
        """Pods matching `selector`, oldest first; terminating ones only when asked."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        if not include_terminating:
            pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        return sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Patch a Deployment's replica count (its scale subresource)."""
        self.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": replicas}})

    def annotate_pods(self, namespace: str, names: list[str], annotations: dict[str, str]) -> None:
        for name in names:
            self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations}})

    def wait_ready(self, namespace: str, name: str, replicas: int, *, selector: str, timeout_s: float) -> None:
        """Wait until the Deployment has exactly `replicas` pods, all ready; fail early on a stuck pod."""
        deadline = time.monotonic() + timeout_s
        while True:
            deployment = self.apps.read_namespaced_deployment(name, namespace)
            pods = self.pods(namespace, selector, include_terminating=True)
            ready = (deployment.status.observed_generation or 0) >= (deployment.metadata.generation or 0) and (
                deployment.status.ready_replicas or 0) == replicas and len(pods) == replicas
            if ready:
                return
            self._raise_if_stuck(namespace, name, pods)
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"Deployment '{name}' has {deployment.status.ready_replicas or 0} of {replicas} replicas ready "
                    f"({len(pods)} pods) after {timeout_s:.0f} s; `kubectl -n {namespace} describe deployment {name}` "
                    "shows why (too little CPU or memory free on the nodes, an image still pulling)"
                )
            time.sleep(1.0)

    def _raise_if_stuck(self, namespace: str, name: str, pods: list[Any]) -> None:
        for pod in pods:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in _STUCK:
                    hint = ("push the image to MILESTONE_K8S_IMAGE_REPOSITORY (`docker push`) or `kind load "
                            "docker-image` it into a kind cluster" if "Image" in waiting.reason else
                            f"`kubectl -n {namespace} logs {pod.metadata.name}` shows why it stops")
                    raise DeploymentError(f"Deployment '{name}': pod {pod.metadata.name} is stuck in {waiting.reason} "
                                          f"(image '{status.image}': {waiting.message or 'no message'}); {hint}")

    def pod_log(self, namespace: str, pod: str, *, lines: int = 50) -> str:
        return self.core.read_namespaced_pod_log(pod, namespace, tail_lines=lines)

    # capacity and addresses --------------------------------------------------------------------
    def largest_node_cpu(self) -> float | None:
        """The most allocatable CPU of any schedulable node; None when the nodes cannot be listed."""
        from kubernetes.utils import parse_quantity

        try:
            nodes = self.core.list_node().items
        except Exception:  # noqa: BLE001 - listing nodes is cluster-scoped; a namespaced user may not
            return None
        cpus = [float(parse_quantity(n.status.allocatable["cpu"])) for n in nodes if not n.spec.unschedulable]
        return max(cpus) if cpus else None

    def service_address(self, namespace: str, name: str) -> str | None:
        """Where this machine reaches a Service: its load balancer, else a node's InternalIP and node port."""
        service = self.core.read_namespaced_service(name, namespace)
        port = service.spec.ports[0]
        for ingress in (service.status.load_balancer.ingress or []) if service.status.load_balancer else []:
            return f"{ingress.ip or ingress.hostname}:{port.port}"
        if port.node_port:
            for node in self.core.list_node().items:
                for address in node.status.addresses or []:
                    if address.type == "InternalIP":
                        return f"{address.address}:{port.node_port}"
        return None
