"""Every public name the README and the notebooks use still works.

The names are read from the README (its `from milestone_lib... import ...` lines and its
`python -m milestone_lib...` commands) and from the notebooks' import statements, so this test
follows them as they change; `USED` adds the methods and fields they call on those objects.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Attributes the README's and the notebooks' code reach through objects ("module:Class.attribute").
USED = [
    "milestone_lib.variants.build:BuildConfig.smoke",
    "milestone_lib.variants.build:BuildResult.variants",
    "milestone_lib.registry:ModelRegistry.describe",
    "milestone_lib.registry:ModelRegistry.push_variant",
    "milestone_lib.registry:ModelRegistry.push_variants",
    "milestone_lib.registry:ModelRegistry.list_variants",
    "milestone_lib.registry:ModelRegistry.pull_variant",
    "milestone_lib.registry:PulledVariant.summary",
    "milestone_lib.registry:PulledVariant.files_table",
    "milestone_lib.registry:PulledVariant.files_verified",
    "milestone_lib.deploy:PipelineDeployment.for_variants",
    "milestone_lib.deploy:PipelineDeployment.to_yaml",
    "milestone_lib.deploy:LocalBackend.__enter__",
    "milestone_lib.deploy:LocalBackend.__exit__",
    "milestone_lib.deploy:LocalBackend.deploy",
    "milestone_lib.deploy:LocalBackend.scale",
    "milestone_lib.deploy:LocalBackend.endpoints",
    "milestone_lib.deploy:LocalBackend.variant_folder",
    "milestone_lib.deploy:DeploymentBackend",
    "milestone_lib.deploy:DeploymentState.to_frame",
    "milestone_lib.deploy:DeploymentState.replica_count",
    "milestone_lib.deploy:DeploymentState.warnings",
    "milestone_lib.deploy:DeploymentState.oversubscribed",
    "milestone_lib.deploy:Endpoints.gateway",
    "milestone_lib.loadgen:PoissonRate",
    "milestone_lib.loadgen:TraceRate.from_csv",
    "milestone_lib.loadgen:sweep_concurrency",
    "milestone_lib.loadgen:LoadResult.requests",
    "milestone_lib.loadgen:LoadResult.summary",
    "milestone_lib.report:MilestoneRun.write_table",
    "milestone_lib.report:MilestoneRun.save_figure",
    "milestone_lib.report:MilestoneRun.record",
    "milestone_lib.report:MilestoneRun.title",
    "milestone_lib.report:MilestoneRun.load_plan",
    "milestone_lib.report:MilestoneRun.variants_dir",
    "milestone_lib.report:MilestoneRun.artifacts_dir",
    "milestone_lib.report:MilestoneRun.settings",
    "milestone_lib.report:ScalingVerdict.sentence",
    "milestone_lib.report:ScalingVerdict.shown",
    "milestone_lib.report:ScalingVerdict.figures",
    "milestone_lib.report:DeckCheck.summary",
    "milestone_lib.report:DeckCheck.problems",
    "milestone_lib.notebooks:run_notebook",
    "milestone_lib.notebooks:run_milestone",
    "milestone_lib.cli:main",
    "milestone_lib.settings:ProjectSettings",
    "milestone_lib.settings:RegistrySettings",
]


def _imports(source: str) -> set[str]:
    """`module:name` for each name a piece of Python imports from milestone_lib."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("milestone_lib"):
            found |= {f"{node.module}:{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {f"{alias.name}:" for alias in node.names if alias.name.startswith("milestone_lib")}
    return found


def _readme_names() -> set[str]:
    text = README.read_text()
    found = set()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        found |= _imports(block)
    # Inline code in the prose, e.g. `from milestone_lib.registry import open_registry; reg = ...`
    for module, names in re.findall(r"from (milestone_lib[\w.]*) import ([\w, ]+)", text):
        found |= {f"{module}:{name.strip()}" for name in names.split(",") if name.strip()}
    return found


def _notebook_names() -> set[str]:
    found = set()
    for notebook in NOTEBOOKS:
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                found |= _imports("".join(cell["source"]))
    return found


def _resolve(reference: str) -> object:
    module_name, _, path = reference.partition(":")
    value: object = importlib.import_module(module_name)
    for part in filter(None, path.split(".")):
        fields = getattr(value, "model_fields", None) or {}
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            fields = {f.name: f for f in dataclasses.fields(value)}
        value = fields[part] if part in fields and not hasattr(value, part) else getattr(value, part)
    return value


def test_the_readme_and_every_notebook_name_what_they_use() -> None:
    # Guards the parsing: if a refactor of the README or the notebooks hides their imports, say so.
    assert {"milestone_lib.deploy:make_backend", "milestone_lib.loadgen:run_open_loop",
            "milestone_lib.variants.build:build_variants"} <= _readme_names()
    for notebook in NOTEBOOKS:
        assert any(name.startswith("milestone_lib.report:open_run") for name in _notebook_names()), notebook


@pytest.mark.parametrize("reference", sorted(_readme_names() | _notebook_names() | set(USED)))
def test_public_name_resolves(reference: str) -> None:
    assert _resolve(reference) is not None, reference


@pytest.mark.parametrize("module", sorted(set(re.findall(r"python -m (milestone_lib[\w.]*)", README.read_text()))))
def test_every_module_the_readme_runs_exists(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, f"README runs `python -m {module}`, which is gone"


def test_packages_export_what_they_list() -> None:
    for package in ("milestone_lib.report", "milestone_lib.registry", "milestone_lib.deploy", "milestone_lib.loadgen"):
        module = importlib.import_module(package)
        assert all(hasattr(module, name) for name in module.__all__), package
