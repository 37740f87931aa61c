"""Rendered Kubernetes manifests: schema-valid (kubernetes-validate --strict, offline schemas),
requests = limits, gRPC probes, locked-down security, labels, several gateway pods spread over
nodes with a disruption budget; k8s/ is what the renderer writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from milestone_lib.deploy import KubernetesOptions, PipelineDeployment, load_deployment
from milestone_lib.deploy.kubernetes import (
    KubernetesSettings,
    default_deployment,
    default_settings,
    manifest_files,
    render_manifests,
    write_manifests,
)
from milestone_lib.errors import DeploymentError
from milestone_lib.settings import PROJECT_ROOT

VERSIONS = ["1.31.0", "1.37.0"]
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
LABEL_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component",
              "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"}


def _settings(**update: object) -> KubernetesSettings:
    return default_settings().model_copy(update={"image_repository": "registry.example.com/milestone", **update})


def _fractional() -> PipelineDeployment:
    return load_deployment(PROJECT_ROOT / "deploy" / "examples" / "fractional-cpu.yaml")


def _by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def _validate(folder: Path, version: str) -> subprocess.CompletedProcess:
    files = sorted(str(p) for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    return subprocess.run([str(VALIDATE), "--strict", "--kubernetes-version", version, *files],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_passes_strict_validation(tmp_path: Path, version: str) -> None:
    assert (SCHEMAS / f"v{version}-local-strict").is_dir(), sorted(p.name for p in SCHEMAS.iterdir())
    cases = {"default": (default_deployment(), default_settings()),
             "fractional-hpa": (_fractional(), _settings(autoscale_max_replicas=4, gateway_service_type="ClusterIP")),
             "one-gateway": (default_deployment(), _settings(gateway_replicas=1))}
    for case, (spec, settings) in cases.items():
        manifests = render_manifests(spec, settings=settings)
        folder = tmp_path / case
        folder.mkdir()
        for name, text in manifest_files(manifests).items():
            (folder / name).write_text(text)
        result = _validate(folder, version)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("passed for resource") == len(manifests), result.stdout


def test_strict_validation_refuses_an_unknown_field(tmp_path: Path) -> None:
    manifests = render_manifests(default_deployment(), settings=default_settings())
    _by_kind(manifests, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["cpus"] = 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump_all(manifests))
    result = _validate(tmp_path, VERSIONS[-1])
    assert result.returncode != 0 and "cpus" in result.stdout + result.stderr


def test_deployments_have_probes_requests_equal_limits_security_and_labels() -> None:
    spec = _fractional()  # detect 2 x 0.5 CPU, classify 0.5, gateway 0.5
    settings = _settings(memory={"detect": "768Mi", "classify": "512Mi", "gateway": "256Mi"})
    manifests = render_manifests(spec, settings=settings)
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in _by_kind(manifests, "Deployment")}
    assert sorted(deployments) == ["classify", "detect", "gateway"]
    assert deployments["detect"]["spec"]["replicas"] == 2 and deployments["gateway"]["spec"]["replicas"] == 2
    for component, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["requests"] == container["resources"]["limits"] == {
            "cpu": "500m", "memory": settings.memory[component]}
        port = container["ports"][0]["containerPort"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": port}
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"] == {
            "runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
        assert pod["automountServiceAccountToken"] is False
        for labels in (deployment["metadata"]["labels"], deployment["spec"]["template"]["metadata"]["labels"]):
            assert set(labels) == LABEL_KEYS and labels["app.kubernetes.io/instance"] == spec.name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
            "labels"].items()
    detect_args = deployments["detect"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert detect_args[:4] == ["--variant", "/models/yolov8n-onnx-fp32", "--threads", "1"]
    assert detect_args[detect_args.index("--max-batch-size") + 1] == "4"  # the spec's batching, not a default
    assert all(m["metadata"]["namespace"] == "milestone" for m in manifests if m["kind"] != "Namespace")


def test_each_step_has_a_headless_service_and_the_gateway_reads_them_from_its_configmap() -> None:
    spec = default_deployment()
    manifests = render_manifests(spec, settings=_settings(namespace="ml"))
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in _by_kind(manifests, "Service")}
    assert services["detect"]["spec"]["clusterIP"] == services["classify"]["spec"]["clusterIP"] == "None"
    assert services["gateway"]["spec"]["type"] == "NodePort" and "clusterIP" not in services["gateway"]["spec"]
    (configmap,) = _by_kind(manifests, "ConfigMap")
    assert json.loads(configmap["data"]["endpoints.json"]) == {
        "detect": ["detect-classify-detect.ml.svc:8001"], "classify": ["detect-classify-classify.ml.svc:8001"]}
    gateway = next(d for d in _by_kind(manifests, "Deployment") if d["metadata"]["name"] == "detect-classify-gateway")
    pod = gateway["spec"]["template"]["spec"]
    assert {"name": "endpoints", "configMap": {"name": configmap["metadata"]["name"]}} in pod["volumes"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--endpoints") + 1] == "/etc/milestone/endpoints.json"
    assert [c["image"] for d in _by_kind(manifests, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]] \
        == ["registry.example.com/milestone/milestone-yolov8n-onnx-fp32:latest",
            "registry.example.com/milestone/milestone-resnet-tiny-onnx-fp32:latest",
            "registry.example.com/milestone/milestone-runtime:latest"]
    assert _by_kind(manifests, "HorizontalPodAutoscaler") == []


def test_the_gateway_runs_several_pods_spread_over_nodes_with_a_disruption_budget() -> None:
    spec = default_deployment()
    manifests = render_manifests(spec, settings=_settings())
    deployments = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in _by_kind(manifests, "Deployment")}
    gateway = deployments["gateway"]["spec"]
    assert gateway["replicas"] == KubernetesSettings.model_fields["gateway_replicas"].default == 2
    assert gateway["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    pod = gateway["template"]["spec"]
    assert pod["affinity"] == {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": gateway["selector"]["matchLabels"]},
                                           "topologyKey": "kubernetes.io/hostname"}}]}}
    assert gateway["selector"]["matchLabels"].items() <= gateway["template"]["metadata"]["labels"].items()
    assert "affinity" not in deployments["detect"]["spec"]["template"]["spec"]  # only the gateway spreads
    (container,) = pod["containers"]
    assert container["readinessProbe"]["grpc"] == container["livenessProbe"]["grpc"] == {"port": 8000}
    (budget,) = _by_kind(manifests, "PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1" and budget["metadata"]["name"] == "detect-classify-gateway"
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": gateway["selector"]["matchLabels"]}}
    assert set(budget["metadata"]["labels"]) == LABEL_KEYS
    assert "kind: PodDisruptionBudget" in manifest_files(manifests)["gateway.yaml"]

    for replicas in (1, 4):
        rendered = render_manifests(spec, settings=_settings(gateway_replicas=replicas))
        (deployment,) = [d for d in _by_kind(rendered, "Deployment") if d["metadata"]["name"].endswith("-gateway")]
        assert deployment["spec"]["replicas"] == replicas
        # one pod: no budget (minAvailable 1 of 1 would block every node drain)
        assert len(_by_kind(rendered, "PodDisruptionBudget")) == (replicas > 1)


def test_an_autoscaler_per_step_when_asked() -> None:
    manifests = render_manifests(_fractional(), settings=_settings(autoscale_max_replicas=3))
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in _by_kind(manifests, "HorizontalPodAutoscaler")}
    assert {name: (h["minReplicas"], h["maxReplicas"]) for name, h in hpas.items()} == {
        "detect-classify-fractional-detect": (2, 3), "detect-classify-fractional-classify": (1, 3)}


def test_committed_k8s_folder_is_what_the_renderer_writes(tmp_path: Path) -> None:
    committed = PROJECT_ROOT / "k8s"
    rendered = manifest_files(render_manifests(default_deployment(), settings=default_settings()))
    assert sorted(p.name for p in committed.glob("*.yaml")) == sorted(rendered), "run `make k8s`"
    for name, text in rendered.items():
        assert (committed / name).read_text() == text, f"k8s/{name} is stale; run `make k8s`"
    (tmp_path / "old.yaml").write_text("kind: Stale\n")
    written = write_manifests(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written) == sorted(rendered)


@pytest.mark.parametrize(("change", "message"), [
    ({"cpu": 0.0}, r"step 'detect': cpu 0.0 is below Kubernetes' smallest CPU amount \(1m = 0.001 CPU\)"),
    ({"cpu": 0.0004}, r"cpu 0.0004 is below Kubernetes' smallest CPU amount"),
    ({"cpu": 0.5005}, r"cpu 0.5005 is not a whole number of millicores"),
    ({"cpu": 6.0}, r"step 'detect': cpu 6.0 is more than the largest node offers \(4 allocatable CPUs\)"),
])
def test_cpu_that_kubernetes_cannot_give_is_refused(change: dict, message: str) -> None:
    spec = default_deployment()
    spec.steps[0] = spec.steps[0].model_copy(update=change)
    with pytest.raises(DeploymentError, match=message):
        render_manifests(spec, settings=_settings(node_cpu=4.0))


def test_cpu_zero_is_refused_when_the_spec_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text("steps:\n  - {step: detect, variant: d, cpu: 0}\n  - {step: classify, variant: c}\n")
    with pytest.raises(DeploymentError, match=r"(?s)zero.yaml' is not valid.*steps.0.cpu.*greater than 0"):
        load_deployment(path)


def test_bad_names_namespaces_and_missing_repository_are_refused() -> None:
    spec = default_deployment()
    with pytest.raises(DeploymentError, match=r"step 'detect' has no `image` and MILESTONE_K8S_IMAGE_REPOSITORY is not "
                                              r"set.*kind load docker-image"):
        render_manifests(spec, settings=KubernetesSettings.model_construct())
    explicit = spec.model_copy(deep=True)
    for step in explicit.steps:
        step.image = f"example.org/{step.step}:1"
    explicit.gateway.image = "example.org/gateway:1"  # explicit images need no repository
    images = {c["image"] for d in _by_kind(render_manifests(explicit, settings=KubernetesSettings.model_construct()),
                                           "Deployment") for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"example.org/detect:1", "example.org/classify:1", "example.org/gateway:1"}
    with pytest.raises(DeploymentError, match=r"object name 'Detect_Classify-detect' is not a valid Kubernetes name"):
        render_manifests(spec.model_copy(update={"name": "Detect_Classify"}), settings=_settings())
    spaced = spec.model_copy(deep=True)
    spaced.steps[0].kubernetes = KubernetesOptions(namespace="a")
    spaced.steps[1].kubernetes = KubernetesOptions(namespace="b")
    with pytest.raises(DeploymentError, match=r"different namespaces \['a', 'b'\]"):
        render_manifests(spaced, settings=_settings())
    with pytest.raises(DeploymentError, match=r"MILESTONE_K8S_MEMORY has no entry for 'gateway'"):
        render_manifests(spec, settings=_settings(memory={"detect": "1Gi", "classify": "1Gi"}))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed: `kubectl kustomize k8s/` not run")
def test_kubectl_kustomize_builds_the_committed_folder() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(PROJECT_ROOT / "k8s")], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    built = {(m["kind"], m["metadata"]["name"]) for m in yaml.safe_load_all(result.stdout)}
    rendered = render_manifests(default_deployment(), settings=default_settings())
    assert built == {(m["kind"], m["metadata"]["name"]) for m in rendered} and len(built) == len(rendered) == 9
