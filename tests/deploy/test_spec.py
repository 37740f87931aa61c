"""The deployment spec: YAML in, validation messages, variant folder resolution; the core allocator."""

from __future__ import annotations

from pathlib import Path

import pytest

from milestone_lib.deploy import (
    PipelineDeployment,
    StepDeployment,
    load_deployment,
    resolve_variant_folder,
)
from milestone_lib.deploy.local import CoreAllocator
from milestone_lib.errors import DeploymentError
from milestone_lib.settings import PROJECT_ROOT, ProjectSettings

EXAMPLE = PROJECT_ROOT / "deploy" / "examples" / "local-2x-detect.yaml"


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


def test_core_allocator_shares_only_when_it_must() -> None:
    cores = CoreAllocator([0, 1, 2, 3])
    assert [cores.take(1), cores.take(2), cores.take(1)] == [[0], [1, 2], [3]]
    assert not cores.shared
    assert cores.take(1) == [0] and cores.shared
    cores.release([0])
    assert not cores.shared
    assert CoreAllocator([5, 7]).take(4) == [5, 7]  # never more cores than exist
    with pytest.raises(DeploymentError, match="no CPU core"):
        CoreAllocator([])


def test_public_surface() -> None:
    from milestone_lib import deploy

    assert sorted(deploy.__all__) == sorted(n for n in deploy.__all__ if hasattr(deploy, n))
    assert {"DeploymentBackend", "LocalBackend", "PipelineDeployment", "load_deployment"} <= set(deploy.__all__)
    abstract = deploy.DeploymentBackend.__abstractmethods__
    assert abstract == {"deploy", "scale", "status", "endpoints", "teardown"}
