"""Notebook 01 in smoke mode, and the shape every notebook keeps (parameters, no defs, one way to save)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.report import load_figures
from milestone_lib.settings import ProjectSettings
from milestone_lib.variants.build import BuildResult

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _code_cells(notebook: Path) -> list[dict]:
    return [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]


def _last_output(executed: Path) -> object:
    last = _code_cells(executed)[-1]
    return ast.literal_eval("".join(last["outputs"][-1]["data"]["text/plain"]))


@pytest.mark.slow
def test_notebook_01_runs_in_smoke_mode(smoke_build: BuildResult, smoke_settings: ProjectSettings, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture already built the smoke variants there, so the notebook's smoke run reuses them.
    monkeypatch.setenv("MILESTONE_SMOKE_ARTIFACTS_DIR", str(smoke_settings.artifacts_dir))
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))
    executed = run_notebook(NOTEBOOKS_DIR / "01_build_variants.ipynb", parameters={"smoke": True},
                            output_dir=tmp_path)
    smoke_reports = tmp_path / "reports" / "smoke"
    summary = _last_output(executed)
    assert summary == load_figures("01_build_variants", reports_dir=smoke_reports)
    assert summary["variants_built"] == len(smoke_build.variants)
    assert summary["best_pipeline"]["mAP50"] > 0.2
    for name in ("variants.csv", "variants.md", "variants_accuracy_latency.png", "pipeline_accuracy.csv",
                 "build_stages.md", "fanout.csv"):
        assert (smoke_reports / name).stat().st_size > 0
    assert (smoke_reports / "variants.md").read_text().startswith("# Variants: accuracy and latency (smoke run)")
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["smoke"]  # nothing where a full run writes


def test_notebooks_hold_no_function_or_class_definitions() -> None:
    for notebook in NOTEBOOKS:
        for cell in _code_cells(notebook):
            tree = ast.parse("".join(cell["source"]))
            defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                                   ast.Lambda))]
            assert not defined, notebook.name


def test_every_notebook_has_parameters_and_saves_and_records_one_way() -> None:
    for notebook in NOTEBOOKS:
        cells = _code_cells(notebook)
        parameters = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assert len(parameters) == 1 and "smoke = False" in "".join(parameters[0]["source"]), notebook.name
        source = "\n".join("".join(c["source"]) for c in cells)
        assert f'open_run("{notebook.stem}", smoke=smoke)' in source, notebook.name
        assert "".join(cells[-1]["source"]).startswith("run.record("), notebook.name
        for by_hand in (".to_csv(", ".savefig(", "write_text(", "open(", "json.dumps(", "print(json"):
            assert by_hand not in source, (notebook.name, by_hand)


def test_notebook_03_deploys_inside_a_with_block() -> None:
    for cell in _code_cells(NOTEBOOKS_DIR / "03_per_step_latency.ipynb"):
        tree = ast.parse("".join(cell["source"]))
        in_with = {id(item.context_expr) for node in ast.walk(tree) if isinstance(node, ast.With) for item in node.items}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "LocalBackend":
                assert id(node) in in_with, "LocalBackend() outside a with block: an error would leave processes"
            assert not (isinstance(node, ast.Attribute) and node.attr == "teardown"), "teardown is the with block's"
