"""PipelineDeployment -> Kubernetes manifests (plain dicts), with no cluster and no I/O.

Per step: a Deployment (one pod per replica, CPU/memory requests = limits, gRPC probes, locked-down
security context) and a headless Service (its DNS name resolves to every ready pod); optionally a
HorizontalPodAutoscaler. The gateway: a ConfigMap holding its endpoints file, a Deployment that
mounts it (`gateway_replicas` pods, spread over nodes where possible), a Service over them, and,
with more than one, a PodDisruptionBudget keeping one up through voluntary evictions. The ConfigMap starts with each step's headless Service name, so the
manifests alone run the pipeline (`kubectl apply -k k8s/`); the backend then rewrites it with the
ready pods' addresses (`membership.py`) and the gateway, which re-reads the file when it changes,
balances over each replica.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import DeploymentError
from ..spec import PipelineDeployment, StepDeployment
from .objects import (
    GATEWAY_PORT,
    METRICS_PORT,
    STEP_PORT,
    check_name,
    container_security,
    grpc_probes,
    labels,
    millicores,
    pod_security,
    resources,
    selector,
    spread_over_nodes,
)
from .settings import KubernetesSettings

__all__ = ["ENDPOINTS_FILE", "endpoints_configmap", "image_for", "namespace_of", "object_name", "render_manifests"]

ENDPOINTS_FILE = "endpoints.json"
_ENDPOINTS_DIR = "/etc/milestone"
_GRACE_S = 5  # the servers' --grace-s; the pod's termination grace period leaves room beyond it


def object_name(spec: PipelineDeployment, component: str) -> str:
    """`<deployment>-<component>`: the Deployment and Service of a step (or `gateway`, `endpoints`)."""
    return check_name(f"{spec.name}-{component}", what="object name")


def namespace_of(spec: PipelineDeployment, settings: KubernetesSettings) -> str:
    """The steps' and gateway's `kubernetes.namespace` (they must agree), else the settings' namespace."""
    named = {p.kubernetes.namespace for p in [*spec.steps, spec.gateway] if p.kubernetes is not None}
    if len(named) > 1:
        raise DeploymentError(f"the steps of '{spec.name}' name different namespaces {sorted(named)}; "
                              "a deployment lives in one namespace: set the same `kubernetes.namespace` everywhere")
    return check_name(named.pop() if named else settings.namespace, what="namespace")


def image_for(component: StepDeployment | None, explicit: str | None, settings: KubernetesSettings) -> str:
    """The image of a step (`<repo>/milestone-<variant>:<tag>`) or of the gateway (`<repo>/milestone-runtime:<tag>`).

    The names are those `milestone_lib.containers` builds locally, under the cluster's repository.
    """
    if explicit:
        return explicit
    if not settings.image_repository:
        what = f"step '{component.step}'" if component is not None else "the gateway"
        raise DeploymentError(
            f"{what} has no `image` and MILESTONE_K8S_IMAGE_REPOSITORY is not set, so no image can be named; "
            "set it to where the cluster pulls from (`docker push` there), or to `milestone` after "
            "`kind load docker-image` (see k8s/README.md)"
        )
    name = f"milestone-{component.variant.lower()}" if component is not None else "milestone-runtime"
    return f"{settings.image_repository.rstrip('/')}/{name}:{settings.image_tag}"


def endpoints_configmap(spec: PipelineDeployment, namespace: str, endpoints: dict[str, list[str]]) -> dict[str, Any]:
    """The ConfigMap the gateway mounts as its `--endpoints` file."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": object_name(spec, "endpoints"), "namespace": namespace,
                     "labels": labels(spec.name, "gateway")},
        "data": {ENDPOINTS_FILE: json.dumps({step: sorted(a) for step, a in endpoints.items()}, sort_keys=True)},
    }


def _container(name: str, image: str, args: list[str], *, cpu: str, memory: str, port: int, threads: int,
               env: dict[str, str], pull: str) -> dict[str, Any]:
    base_env = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "MILESTONE_PORT": str(port),
                "HOME": "/tmp", "MILESTONE_CACHE_DIR": "/tmp/milestone-cache"}  # the root filesystem is read-only
    return {
        "name": name, "image": image, "imagePullPolicy": pull,
        "command": ["python", "-m", f"milestone_lib.serving.{'gateway' if name == 'gateway' else 'server'}"],
        "args": [*args, "--host", "0.0.0.0", "--port", str(port), "--metrics-port", str(METRICS_PORT),  # the pod's IP
                 "--grace-s", str(_GRACE_S)],
        "env": [{"name": k, "value": v} for k, v in {**base_env, **env}.items()],
        "ports": [{"name": "grpc", "containerPort": port}, {"name": "metrics", "containerPort": METRICS_PORT}],
        "resources": resources(cpu, memory),
        **grpc_probes(port),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(spec: PipelineDeployment, namespace: str, component: str, replicas: int, container: dict[str, Any],
                *, options: Any, annotations: dict[str, str], volumes: list[dict[str, Any]],
                spread: bool = False) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the servers never call the API
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": _GRACE_S + 10,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, *volumes],
    }
    if options is not None and options.node_selector:
        pod["nodeSelector"] = dict(options.node_selector)
    if options is not None and options.service_account:
        pod["serviceAccountName"] = options.service_account
    if spread:
        pod["affinity"] = spread_over_nodes(selector(spec.name, component))
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": object_name(spec, component), "namespace": namespace,
                     "labels": labels(spec.name, component), "annotations": dict(annotations)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(spec.name, component)},
            # a new pod is ready before an old one goes: a rollout never lowers the step's capacity
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels(spec.name, component), "annotations": dict(annotations)},
                         "spec": pod},
        },
    }


def _service(spec: PipelineDeployment, namespace: str, component: str, port: int, *, headless: bool,
             service_type: str = "ClusterIP") -> dict[str, Any]:
    body: dict[str, Any] = {"selector": selector(spec.name, component),
                            "ports": [{"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP"}]}
    if headless:
        body["clusterIP"] = "None"  # DNS answers every ready pod's IP: the replicas, not a virtual IP
    else:
        body["type"] = service_type
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": object_name(spec, component), "namespace": namespace,
                         "labels": labels(spec.name, component)},
            "spec": body}


def _autoscaler(spec: PipelineDeployment, namespace: str, step: StepDeployment,
                settings: KubernetesSettings) -> dict[str, Any]:
    assert settings.autoscale_max_replicas is not None
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": object_name(spec, step.step), "namespace": namespace,
                     "labels": labels(spec.name, step.step)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name(spec, step.step)},
            "minReplicas": step.replicas,
            "maxReplicas": max(step.replicas, settings.autoscale_max_replicas),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": settings.autoscale_cpu_percent}}}],
        },
    }


def _disruption_budget(spec: PipelineDeployment, namespace: str, component: str) -> dict[str, Any]:
    """Voluntary evictions (a node drain) leave at least one pod of `component` running."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": object_name(spec, component), "namespace": namespace,
                         "labels": labels(spec.name, component)},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(spec.name, component)}}}


def _memory(settings: KubernetesSettings, component: str) -> str:
    if component not in settings.memory:
        raise DeploymentError(f"MILESTONE_K8S_MEMORY has no entry for '{component}' (it has "
                              f"{sorted(settings.memory)}); give one per step and the gateway, e.g. \"1Gi\"")
    return settings.memory[component]


def _step_objects(spec: PipelineDeployment, namespace: str, step: StepDeployment,
                  settings: KubernetesSettings) -> list[dict[str, Any]]:
    b = step.batching
    args = ["--variant", settings.variant_dir.format(variant=step.variant), "--threads", str(step.thread_count),
            "--max-batch-size", str(b.max_batch_size), "--max-queue-delay-ms", f"{b.max_queue_delay_ms:g}",
            "--max-queue-size", str(b.max_queue_size)]
    cpu = millicores(step.cpu, component=f"step '{step.step}'", node_cpu=settings.node_cpu)
    options = step.kubernetes
    container = _container(step.step, image_for(step, step.image, settings), args, cpu=cpu,
                           memory=_memory(settings, step.step), port=STEP_PORT, threads=step.thread_count,
                           env=options.env if options else {}, pull=settings.image_pull_policy)
    objects = [_deployment(spec, namespace, step.step, step.replicas, container, options=options,
                           annotations={"milestone/variant": step.variant}, volumes=[]),
               _service(spec, namespace, step.step, STEP_PORT, headless=True)]
    if settings.autoscale_max_replicas is not None:
        objects.append(_autoscaler(spec, namespace, step, settings))
    return objects


def _gateway_objects(spec: PipelineDeployment, namespace: str, settings: KubernetesSettings) -> list[dict[str, Any]]:
    gateway = spec.gateway
    initial = {s.step: [f"{object_name(spec, s.step)}.{namespace}.svc:{STEP_PORT}"] for s in spec.steps}
    args = ["--endpoints", f"{_ENDPOINTS_DIR}/{ENDPOINTS_FILE}", "--policy", gateway.policy]
    cpu = millicores(gateway.cpu, component="the gateway", node_cpu=settings.node_cpu)
    options = gateway.kubernetes
    container = _container("gateway", image_for(None, gateway.image, settings), args, cpu=cpu,
                           memory=_memory(settings, "gateway"), port=GATEWAY_PORT, threads=gateway.thread_count,
                           env=options.env if options else {}, pull=settings.image_pull_policy)
    container["volumeMounts"].append({"name": "endpoints", "mountPath": _ENDPOINTS_DIR, "readOnly": True})
    volume = {"name": "endpoints", "configMap": {"name": object_name(spec, "endpoints")}}
    objects = [endpoints_configmap(spec, namespace, initial),
               _deployment(spec, namespace, "gateway", settings.gateway_replicas, container, options=options,
                           annotations={"milestone/variant": "pipeline"}, volumes=[volume], spread=True),
               _service(spec, namespace, "gateway", GATEWAY_PORT, headless=False,
                        service_type=settings.gateway_service_type)]
    if settings.gateway_replicas > 1:  # with one pod, minAvailable 1 would block every node drain
        objects.append(_disruption_budget(spec, namespace, "gateway"))
    return objects


def render_manifests(spec: PipelineDeployment, *, settings: KubernetesSettings | None = None) -> list[dict[str, Any]]:
    """Every object of the deployment, Namespace first, then each step's, then the gateway's."""
    settings = settings or KubernetesSettings()
    namespace = namespace_of(spec, settings)
    objects: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": namespace, "labels": {"app.kubernetes.io/part-of": "milestone"}}}]
    for step in spec.steps:
        objects += _step_objects(spec, namespace, step, settings)
    return objects + _gateway_objects(spec, namespace, settings)
