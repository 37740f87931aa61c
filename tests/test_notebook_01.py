from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.settings import ProjectSettings

pytestmark = pytest.mark.slow


def _last_output(executed: Path) -> object:
    cells = json.loads(executed.read_text())["cells"]
    last = [c for c in cells if c["cell_type"] == "code"][-1]
    return ast.literal_eval("".join(last["outputs"][-1]["data"]["text/plain"]))


def test_notebook_01_runs_in_smoke_mode(smoke_build, smoke_settings: ProjectSettings, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture already built the smoke variants here, so the notebook reuses them.
    monkeypatch.setenv("MILESTONE_ARTIFACTS_DIR", str(smoke_settings.artifacts_dir))
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))
    executed = run_notebook(NOTEBOOKS_DIR / "01_build_variants.ipynb", parameters={"smoke": True},
                            output_dir=tmp_path)
    summary = _last_output(executed)
    assert summary["variants_built"] == 8
    assert summary["best_pipeline"]["mAP50"] > 0.2
    for name in ("variants.csv", "variants.md", "variants_accuracy_latency.png", "pipeline_accuracy.csv",
                 "build_stages.md"):
        assert (tmp_path / "reports" / name).stat().st_size > 0


def test_notebooks_hold_no_function_or_class_definitions() -> None:
    for notebook in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                assert not any(line.lstrip().startswith(("def ", "class ", "async def ")) for line in source.splitlines()), notebook
