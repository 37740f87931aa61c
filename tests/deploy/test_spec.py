"""The deployment spec: YAML in (old and new fields), validation messages, variant folder resolution,
the core allocator, the backend factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from milestone_lib.deploy import (
    LocalBackend,
    PipelineDeployment,
    StepDeployment,
    load_deployment,
    make_backend,
    resolve_variant_folder,
)
from milestone_lib.deploy.local import CoreAllocator
from milestone_lib.errors import DeploymentError
from milestone_lib.settings import PROJECT_ROOT, ProjectSettings

EXAMPLES = sorted((PROJECT_ROOT / "deploy" / "examples").glob("*.yaml"))
EXAMPLE = PROJECT_ROOT / "deploy" / "examples" / "local-2x-detect.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_unchanged_and_round_trips(path: Path, tmp_path: Path) -> None:
    spec = load_deployment(path)
    copy = tmp_path / "copy.yaml"
    copy.write_text(spec.to_yaml())
    assert load_deployment(copy) == spec


def test_old_cores_field_means_one_cpu_each_and_threads_follow_cpu(tmp_path: Path) -> None:
    spec = load_deployment(EXAMPLE)  # written with `cores: 1` before `cpu` existed
    assert [(s.cpu, s.thread_count) for s in spec.steps] == [(1.0, 1), (1.0, 1)]
    assert spec.gateway.cpu == 1.0 and "cores" not in spec.to_yaml()
    (tmp_path / "new.yaml").write_text(
        "steps:\n"
        "  - {step: detect, variant: d, cpu: 0.5, image: 'milestone/step:1', docker: {run_args: [--rm]}}\n"
        "  - {step: classify, variant: c, cpu: 2.5, threads: 2, kubernetes: {namespace: ml},"
        " local: {pin: false, env: {X: '1'}}}\n")
    new = load_deployment(tmp_path / "new.yaml")
    detect, classify = new.step("detect"), new.step("classify")
    assert (detect.cpu, detect.thread_count, detect.image) == (0.5, 1, "milestone/step:1")
    assert detect.docker is not None and detect.docker.run_args == ["--rm"] and detect.local.pin
    assert (classify.cpu, classify.thread_count) == (2.5, 2)  # explicit threads win over ceil(cpu) = 3
    assert classify.kubernetes is not None and classify.kubernetes.namespace == "ml"
    assert not classify.local.pin and classify.local.env == {"X": "1"}
    assert StepDeployment(step="detect", variant="d", cpu=2.2).thread_count == 3
    old = PipelineDeployment.for_variants("d", "c", cores={"detect": 2})
    assert old == PipelineDeployment.for_variants("d", "c", cpu={"detect": 2})
    assert old.step("detect").cpu == 2.0 and old.step("classify").cpu == 1.0


def test_example_yaml_loads_and_round_trips(tmp_path: Path) -> None:
    spec = load_deployment(EXAMPLE)
    assert spec.step("detect").replicas == 2 and spec.step("classify").batching.max_batch_size == 16
    copy = tmp_path / "copy.yaml"
    copy.write_text(spec.to_yaml())
    assert load_deployment(copy) == spec


def test_relative_folder_is_resolved_against_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(
        "steps:\n  - {step: detect, variant: d, folder: v/d}\n  - {step: classify, variant: c}\n")
    spec = load_deployment(tmp_path / "spec.yaml")
    assert spec.step("detect").folder == (tmp_path / "v" / "d").resolve()
    assert spec.step("classify").folder is None


@pytest.mark.parametrize(("text", "message"), [
    ("steps:\n  - {step: detect, variant: d}\n", "exactly one entry per step"),
    ("steps:\n  - {step: detect, variant: d, replicas: 0}\n  - {step: classify, variant: c}\n", "replicas"),
    ("steps:\n  - {step: detect, variant: d, folder: x, registry: {}}\n  - {step: classify, variant: c}\n",
     "sets both `folder` and `registry`"),
    ("steps:\n  - {step: detect, variant: d, gpus: 1}\n  - {step: classify, variant: c}\n", "gpus"),
    ("steps:\n  - {step: detect, variant: d, cores: 1, cpu: 2}\n  - {step: classify, variant: c}\n",
     "sets both `cores` (the old name) and `cpu`"),
    ("steps:\n  - {step: detect, variant: d, cpu: 0}\n  - {step: classify, variant: c}\n", "cpu"),
    ("steps:\n  - {step: detect, variant: d, local: {pinned: true}}\n  - {step: classify, variant: c}\n",
     "pinned"),
])
def test_invalid_yaml_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(DeploymentError, match="is not valid") as info:
        load_deployment(tmp_path / "bad.yaml")
    assert message in str(info.value)


def test_missing_file_and_unknown_step() -> None:
    with pytest.raises(DeploymentError, match="does not exist; see deploy/examples/"):
        load_deployment("nope.yaml")
    with pytest.raises(DeploymentError, match="unknown step 'resize'"):
        PipelineDeployment.for_variants("d", "c").step("resize")


def test_missing_variant_names_the_notebook_that_builds_it(tmp_path: Path) -> None:
    step = StepDeployment(step="detect", variant="yolov8n-onnx-fp32")
    settings = ProjectSettings(artifacts_dir=tmp_path)
    with pytest.raises(DeploymentError, match=r"variant 'yolov8n-onnx-fp32' for step 'detect' is missing.*"
                                              r"notebooks/01_build_variants\.ipynb"):
        resolve_variant_folder(step, settings=settings)
    (tmp_path / "variants" / "yolov8n-onnx-fp32").mkdir(parents=True)
    (tmp_path / "variants" / "yolov8n-onnx-fp32" / "manifest.json").write_text("{}")
    assert resolve_variant_folder(step, settings=settings) == (tmp_path / "variants" / "yolov8n-onnx-fp32").resolve()


def test_core_allocator_gives_whole_free_cores_and_packs_fractions() -> None:
    cores = CoreAllocator([0, 1, 2, 3])
    assert [cores.take(1), cores.take(2), cores.take(0.5), cores.take(0.5)] == [[0], [1, 2], [3], [3]]
    assert cores.take(0.5) is None  # no core has room: the process is not pinned rather than squeezed in
    cores.release([1, 2], 2)
    assert cores.take(1.5) == [1, 2] and cores.load[1] == cores.load[2] == 0.75
    assert CoreAllocator([5, 7]).take(4) is None  # never more cores than exist
    assert CoreAllocator([5, 7]).capacity == 2.0
    with pytest.raises(DeploymentError, match="no CPU core"):
        CoreAllocator([])


def test_make_backend_local_and_the_backends_of_later_issues(tmp_path: Path) -> None:
    backend = make_backend("local", workdir=tmp_path, pin=False)
    assert isinstance(backend, LocalBackend) and backend.workdir is None and not backend.pin
    # "docker": tests/deploy/test_docker_backend.py; "kubernetes": tests/deploy/test_kubernetes_backend.py
    with pytest.raises(DeploymentError, match="unknown deployment backend 'podman'; choose one of local, docker"):
        make_backend("podman")


def test_public_surface() -> None:
    from milestone_lib import deploy

    assert sorted(deploy.__all__) == sorted(n for n in deploy.__all__ if hasattr(deploy, n))
    assert {"DeploymentBackend", "LocalBackend", "PipelineDeployment", "load_deployment", "make_backend",
            "query_gateway_membership"} <= set(deploy.__all__)
    abstract = deploy.DeploymentBackend.__abstractmethods__
    assert abstract == {"deploy", "scale", "status", "endpoints", "variant_folder", "teardown"}
    shared = set(deploy.ReplicaState.model_fields) | set(deploy.DeploymentState.model_fields)
    assert not shared & {"pid", "cores", "available_cores"}  # local details live in `placement`


def test_unset_batching_takes_each_steps_serving_defaults() -> None:
    from milestone_lib.serving.defaults import step_defaults

    spec = PipelineDeployment.for_variants(detect="yolov8n-onnx-fp32", classify="resnet-tiny-onnx-fp32")
    for step in ("detect", "classify"):
        assert spec.step(step).batching.max_batch_size == step_defaults(step).max_batch_size
    assert spec.step("detect").batching.max_batch_size != spec.step("classify").batching.max_batch_size
    partial = PipelineDeployment.model_validate({"steps": [
        {"step": "detect", "variant": "a", "batching": {"max_batch_size": 3}},
        {"step": "classify", "variant": "b"}]}).step("detect").batching
    assert (partial.max_batch_size, partial.max_queue_delay_ms) == (3, step_defaults("detect").max_queue_delay_ms)
