"""KubernetesBackend: how it finds a cluster, what it says without one, how it routes the gateway,
how it reports several gateway pods;
and, where a kubeconfig is present, deploy, scale 1 -> 3 under load and teardown on that cluster.

No cluster can run on the development machines: the cluster tests are skipped there with the
reason in the test summary (`pytest -rs`).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from kubernetes.client import (
    V1ObjectMeta,
    V1Pod,
    V1PodCondition,
    V1PodSpec,
    V1PodStatus,
)

from milestone_lib.deploy import exit_hooks, make_backend, query_gateway_membership
from milestone_lib.deploy.kubernetes import (
    KubernetesBackend,
    KubernetesSettings,
    default_deployment,
    find_kubeconfig,
)
from milestone_lib.deploy.kubernetes.routing import component_selector, ready_addresses
from milestone_lib.errors import DeploymentError
from milestone_lib.net import free_port


@pytest.fixture
def no_cluster_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with no kubeconfig anywhere and not inside a pod."""
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "MILESTONE_K8S_KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_make_backend_builds_it_with_setting_overrides() -> None:
    backend = make_backend("kubernetes", image_repository="registry.example.com/ml", namespace="ml")
    assert isinstance(backend, KubernetesBackend) and backend.name == "kubernetes"
    assert (backend.settings.image_repository, backend.settings.namespace) == ("registry.example.com/ml", "ml")
    with pytest.raises(DeploymentError, match=r"unknown Kubernetes backend options \['replicas'\]; choose from"):
        make_backend("kubernetes", replicas=3)
    with pytest.raises(DeploymentError, match="no deployment is running on this backend; call deploy"):
        backend.status()


def test_without_a_kubeconfig_deploy_says_what_to_do_and_leaves_nothing(no_cluster_env: Path) -> None:
    assert find_kubeconfig() is None
    backend = make_backend("kubernetes", image_repository="milestone")
    with pytest.raises(DeploymentError, match=r"no kubeconfig found .* \(`kind create cluster`, `minikube start`\)"):
        backend.deploy(default_deployment())
    assert backend.spec is None and not any(b is backend for b in exit_hooks.registered())


def test_a_cluster_that_does_not_answer_is_named(no_cluster_env: Path) -> None:
    port = free_port()  # nothing listens there
    config = no_cluster_env / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        f"clusters: [{{name: dead, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: nobody}}]\n"
        "users: [{name: nobody, user: {token: not-a-secret}}]\n")
    settings = KubernetesSettings(kubeconfig=config, image_repository="milestone")
    assert find_kubeconfig(settings) == config
    backend = KubernetesBackend(settings=settings)
    with pytest.raises(DeploymentError, match=rf"the Kubernetes API at https://127.0.0.1:{port} does not answer"):
        backend.deploy(default_deployment())
    assert backend.spec is None and not any(b is backend for b in exit_hooks.registered())


def _pod(name: str, ip: str | None, *, ready: bool = True, deleting: bool = False) -> V1Pod:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return V1Pod(metadata=V1ObjectMeta(name=name, creation_timestamp=now, deletion_timestamp=now if deleting else None),
                 status=V1PodStatus(pod_ip=ip, conditions=[V1PodCondition(type="Ready",
                                                                          status="True" if ready else "False")]))


def test_the_gateway_routes_only_to_ready_pods_that_are_not_leaving() -> None:
    pods = [_pod("d-b", "10.0.0.2"), _pod("d-a", "10.0.0.1"), _pod("d-c", "10.0.0.3", ready=False),
            _pod("d-d", "10.0.0.4", deleting=True), _pod("d-e", None)]
    assert ready_addresses(pods) == ["10.0.0.1:8001", "10.0.0.2:8001"]
    assert ready_addresses(pods, exclude={"d-b"}, port=9000) == ["10.0.0.1:9000"]
    assert component_selector("detect-classify", "detect") == (
        "app.kubernetes.io/instance=detect-classify,app.kubernetes.io/component=detect")
    assert component_selector("detect-classify") == "app.kubernetes.io/instance=detect-classify"


class _Pods:
    """The cluster calls deploy() and status() make, over fixed pods per component (no API server)."""

    host = "https://cluster.example:6443"

    def __init__(self, pods: dict[str, list[V1Pod]]) -> None:
        self.by_component, self.waited, self.deleted = pods, [], []

    def pods(self, namespace: str, selector: str, **_: object) -> list[V1Pod]:
        return self.by_component.get(selector.rpartition("app.kubernetes.io/component=")[2], [])

    def apply(self, manifests: list[dict]) -> None:
        self.applied = manifests

    def delete_by_label(self, namespace: str, selector: str) -> list[str]:
        self.deleted.append(selector)
        return []

    def wait_ready(self, namespace: str, name: str, replicas: int, *, selector: str, timeout_s: float) -> None:
        self.waited.append((name, replicas))

    def service_address(self, namespace: str, name: str) -> None:
        return None  # unreachable: deploy stops there, after waiting for every component


def _placed(pod: V1Pod, node: str) -> V1Pod:
    pod.spec = V1PodSpec(containers=[], node_name=node)
    return pod


def test_deploy_waits_for_every_gateway_replica_and_the_budget_is_applied() -> None:
    backend = KubernetesBackend(image_repository="milestone", node_cpu=4.0, gateway_replicas=3)
    backend._cluster = cluster = _Pods({})  # type: ignore[assignment]
    with pytest.raises(DeploymentError, match="this machine cannot reach the gateway Service"):
        backend.deploy(default_deployment())
    assert cluster.waited == [("detect-classify-detect", 1), ("detect-classify-classify", 1),
                              ("detect-classify-gateway", 3)]
    assert ("PodDisruptionBudget", "detect-classify-gateway") in {
        (m["kind"], m["metadata"]["name"]) for m in cluster.applied}
    assert cluster.deleted == ["app.kubernetes.io/instance=detect-classify"] * 2  # before, and the teardown after
    assert backend.spec is None and backend.memberships == {} and backend.membership is None


def test_status_reports_the_first_ready_gateway_pod_and_lists_every_gateway_pod() -> None:
    backend = KubernetesBackend(image_repository="milestone")
    backend.spec, backend.namespace, backend._gateway_address = default_deployment(), "milestone", "172.18.0.2:30080"
    backend._cluster = _Pods({  # type: ignore[assignment]
        "detect": [_placed(_pod("d-a", "10.0.0.1"), "n1")], "classify": [_placed(_pod("c-a", "10.0.0.2"), "n2")],
        "gateway": [_placed(_pod("g-a", "10.0.0.3", ready=False), "n1"), _placed(_pod("g-b", "10.0.0.4"), "n2")]})
    state = backend.status()
    assert (state.gateway.step, state.gateway.address, state.gateway.alive) == ("gateway", "172.18.0.2:30080", True)
    assert state.gateway.placement == {"pod": "g-b", "node": "n2", "namespace": "milestone"}
    assert state.placement["gateway_pods"] == ["g-a", "g-b"]
    assert state.warnings == ["1 of 2 gateway pods ready (not ready: g-a)"]
    assert [r.label for r in state.replicas] == ["detect-0", "classify-0"] and len(state.to_frame()) == 3
    assert backend.endpoints().gateway == "172.18.0.2:30080"
    backend._cluster.by_component["gateway"][0] = _placed(_pod("g-a", "10.0.0.3"), "n1")  # type: ignore[attr-defined]
    state = backend.status()
    assert state.gateway.placement["pod"] == "g-a" and state.warnings == []


# --- on a real cluster ----------------------------------------------------------------------------
_NO_CLUSTER = ("no kubeconfig (MILESTONE_K8S_KUBECONFIG, KUBECONFIG or ~/.kube/config): deploy / scale 1->3 / teardown "
               "on a cluster not run (no cluster can run on this machine; see k8s/README.md)")
_NO_IMAGES = ("MILESTONE_K8S_IMAGE_REPOSITORY is not set: the cluster tests need the runtime and variant images "
              "pushed there (or `kind load docker-image`; see k8s/README.md)")
_SKIP = _NO_CLUSTER if find_kubeconfig() is None else None if os.environ.get("MILESTONE_K8S_IMAGE_REPOSITORY") else _NO_IMAGES
on_a_cluster = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")


@pytest.fixture
def k8s_backend() -> KubernetesBackend:
    backend = KubernetesBackend(namespace=f"milestone-test-{os.getpid()}")
    yield backend
    backend.teardown()


@pytest.mark.slow
@on_a_cluster
def test_deploy_scale_1_to_3_under_load_and_teardown_on_the_cluster(k8s_backend: KubernetesBackend) -> None:
    from deploy_helpers import Stream

    state = k8s_backend.deploy(default_deployment())
    assert state.replica_count("detect") == state.replica_count("classify") == 1 and all(r.alive for r in state.replicas)
    gateway = k8s_backend.endpoints().gateway
    assert query_gateway_membership(gateway) == k8s_backend.endpoints().steps  # pod IPs, not the Service names
    image = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    with Stream(gateway, [image], concurrency=3) as stream:
        stream.wait_for(8)
        state = k8s_backend.scale("detect", 3)
        stream.phase = 1
        stream.wait_for(stream.completed + 24)
    rows = stream.stop()
    assert len(rows) == stream.sent and [r for r in rows if r["status"] != "OK"] == []
    assert state.replica_count("detect") == 3 and all(r.alive for r in state.replicas)
    detect = k8s_backend.endpoints().steps["detect"]
    assert sorted(query_gateway_membership(gateway)["detect"]) == sorted(detect) and len(detect) == 3
    assert {r["detect_replica"] for r in rows if r["phase"] == 1} <= set(detect)
    k8s_backend.scale("detect", 1)
    assert k8s_backend.status().replica_count("detect") == 1
    namespace, spec = k8s_backend.namespace, k8s_backend.spec
    assert namespace is not None and spec is not None
    k8s_backend.teardown()
    assert k8s_backend.cluster.pods(namespace, component_selector(spec.name), include_terminating=True) == []
