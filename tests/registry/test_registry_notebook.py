"""Notebook 02 runs top to bottom against a real registry and records its figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from milestone_lib.contracts import MANIFEST_NAME
from milestone_lib.registry import VERSION_RE, ModelRegistry
from milestone_lib.report import load_figures
from milestone_lib.settings import ProjectSettings, registry_run_settings, run_settings

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import make_variant, registry_env, secrets_of

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("smoke", [True, False], ids=["smoke", "defaults"])
def test_notebook_02_runs_top_to_bottom(registry: ModelRegistry, tmp_path: Path, smoke: bool) -> None:
    papermill = pytest.importorskip("papermill")
    project = ProjectSettings(artifacts_dir=tmp_path / "artifacts", reports_dir=tmp_path / "reports")
    run = run_settings(smoke=smoke, settings=project)  # where notebook 02 of this run reads and writes
    for name, step in [("yolov8n-onnx-fp32", "detect"), ("resnet-tiny-onnx-fp32", "classify"),
                       ("yolov8n-onnx-int8-static", "detect")]:
        make_variant(run.variants_dir / name, name=name, step=step, files={"model.onnx": os.urandom(20_000)})
    env = {**registry_env(registry.settings), "MILESTONE_ARTIFACTS_DIR": str(project.artifacts_dir),
           "MILESTONE_REPORTS_DIR": str(project.reports_dir)}
    output = tmp_path / "02_model_registry.ipynb"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    try:
        papermill.execute_notebook(str(REPO / "notebooks" / "02_model_registry.ipynb"), str(output),
                                   parameters={"smoke": smoke}, cwd=str(tmp_path), kernel_name="python3",
                                   progress_bar=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    figures = load_figures("02_model_registry", reports_dir=run.reports_dir)
    expected = 2 if smoke else 3  # smoke: the 2 smallest
    assert figures["variants_pushed"] == figures["versions_in_registry"] == figures["variants_in_registry"] == expected
    assert figures["pulled_files_verified"] == 1
    assert VERSION_RE.match(figures["pulled_version"])
    published = ModelRegistry(registry_run_settings(smoke=smoke, settings=registry.settings))
    assert published.settings.pipeline.endswith("-smoke") == smoke  # smoke models never under the real name
    assert {v.version for v in published.list_versions(figures["pulled_variant"])} == {figures["pulled_version"]}
    assert (run.reports_dir / "registry_variants.csv").is_file()
    assert (run.artifacts_dir / "pulled" / figures["pulled_variant"] / MANIFEST_NAME).is_file()
    executed = output.read_text()
    for value in secrets_of(registry.settings):
        assert value not in executed
