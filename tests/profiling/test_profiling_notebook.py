"""Notebook 04 in smoke mode on the smoke build: its tables, plots and recorded figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.profiling import load_sweep
from milestone_lib.report import load_figures


@pytest.mark.slow
def test_notebook_04_runs_in_smoke_mode(smoke_variants: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MILESTONE_REGISTRY_ENDPOINT", "http://127.0.0.1:9")  # nothing answers: the push is skipped
    executed = run_notebook(NOTEBOOKS_DIR / "04_scaling_sweep.ipynb", output_dir=tmp_path,
                            parameters={"smoke": True, "variants_dir": str(next(iter(smoke_variants.values())).parent)})
    reports = tmp_path / "reports" / "smoke"
    figures = load_figures("04_scaling_sweep", reports_dir=reports)
    assert figures["best_detect"] is not None and len(figures["best"]) == 2
    assert figures["measured_rows"] >= 4 and figures["rows"] >= figures["measured_rows"]
    for name in ("accuracy_vs_latency", "accuracy_vs_throughput", "throughput_vs_replicas", "cost_vs_p99",
                 "latency_distribution"):
        assert (reports / f"04_{name}.png").stat().st_size > 0 and (reports / f"04_{name}.svg").stat().st_size > 0
    detect = pd.read_csv(reports / "04_detect_table.csv")
    assert {"Variant", "Scale", "CPU per replica", "Cost", "p99 ms", "Accuracy", "Source", "Trace"} <= set(detect)
    sweep = load_sweep(reports)  # what notebook 05 reads
    assert len(sweep.candidates) == figures["rows"] and (sweep.sla.latency_ms, sweep.sla.rate_rps) == (150, 40)
    assert figures["binding_constraint"].startswith("At p99 <= 150 ms and 40 requests/s the SLA")
    swept = pd.read_csv(reports / "04_swept_variants.csv")
    left_out = pd.read_csv(reports / "04_left_out_variants.csv")
    assert len(swept) == 2 and set(swept.step) == {"detect", "classify"}  # smoke: the fastest of each step
    assert left_out.reason.notna().all() and not set(swept.variant) & set(left_out.variant)
    text = json.dumps(json.loads(executed.read_text()))
    assert "registry push skipped" in text
