"""Notebook 05 in smoke mode on a sweep of the real smoke variants: it optimizes, deploys the choice,
measures it through the gateway, and records what it saved."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from opt_helpers import CLASSIFIERS, DETECTORS, synthetic_sweep

from milestone_lib.errors import ProfilingError
from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.optimize import load_t3_answers
from milestone_lib.profiling import SlaSpec, load_sweep
from milestone_lib.report import load_figures
from milestone_lib.settings import ProjectSettings


def test_without_a_sweep_the_notebook_is_told_to_run_notebook_04(tmp_path: Path) -> None:
    with pytest.raises(ProfilingError, match="run notebooks/04_scaling_sweep.ipynb first"):
        load_sweep(tmp_path)


@pytest.mark.slow
def test_notebook_05_runs_in_smoke_mode(smoke_variants: dict[str, Path], smoke_settings: ProjectSettings,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports" / "smoke"
    synthetic_sweep(reports, detect_ms={d: 6.0 * (1 + k) for k, d in enumerate(DETECTORS)},
                    classify_ms={c: 0.5 * (1 + k) for k, c in enumerate(CLASSIFIERS)},
                    fanout={d: 1.0 + 0.5 * k for k, d in enumerate(DETECTORS)},
                    sla=SlaSpec(latency_ms=200, rate_rps=10, gateway_reserve_ms=20), replicas=range(1, 3),
                    cpus=(0.5, 1.0), batches=(1, 4))
    monkeypatch.setenv("MILESTONE_SMOKE_ARTIFACTS_DIR", str(smoke_settings.artifacts_dir))
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))
    executed = run_notebook(NOTEBOOKS_DIR / "05_optimize_t3.ipynb", parameters={"smoke": True, "rates": [5, 10]},
                            output_dir=tmp_path)
    last = [c for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code"][-1]
    figures = ast.literal_eval("".join(last["outputs"][-1]["data"]["text/plain"]))
    assert figures == load_figures("05_optimize_t3", reports_dir=reports)
    assert figures["milp_equals_enumeration"] and figures["feasible"]
    assert figures["chosen"]["detect_variant"] in DETECTORS
    assert figures["repeats"] == 1 and figures["measured_p99_ms"] > 0
    assert figures["recommendation"].startswith("Deploy ")
    # The default objective weighs accuracy, and its choice passes the rule a grader holds it to.
    assert figures["objective"].startswith("the most accurate within")
    assert figures["on_pareto_front"] and figures["better_for_little_more"] == 0
    answers = load_t3_answers(reports)
    assert answers["tables"]["check"][0]["requests"] > 0
    assert answers["tables"]["check"][0]["failed"] == 0
    for name in ("05_pareto.png", "05_prediction_check.png", "05_t3_answers.md", "05_baselines.md", "05_check.csv"):
        assert (reports / name).stat().st_size > 0
