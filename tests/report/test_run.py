"""Where full and smoke runs write: a smoke run never overwrites a full run, and says it is one."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.errors import MilestoneError
from milestone_lib.notebooks import NOTEBOOKS_DIR, executed_dir
from milestone_lib.report import (
    SMOKE_LOAD,
    load_figures,
    open_run,
    plot_step_breakdown,
    read_reports,
    scaled_replicas,
)
from milestone_lib.settings import ProjectSettings, run_settings


def _settings(root: Path) -> ProjectSettings:
    return ProjectSettings(artifacts_dir=root / "artifacts", reports_dir=root / "reports")


def test_full_and_smoke_runs_use_separate_folders(tmp_path: Path) -> None:
    full = open_run("01_build_variants", settings=_settings(tmp_path))
    smoke = open_run("01_build_variants", smoke=True, settings=_settings(tmp_path))
    assert full.reports_dir == tmp_path / "reports" and full.variants_dir == tmp_path / "artifacts" / "variants"
    assert smoke.reports_dir == tmp_path / "reports" / "smoke"
    assert smoke.variants_dir == tmp_path / "artifacts" / "smoke" / "variants"
    assert smoke.settings.datasets_dir == tmp_path / "artifacts" / "smoke" / "datasets"
    # Applying the smoke folders twice (a smoke settings object passed on) does not nest smoke/smoke.
    assert run_settings(smoke=True, settings=smoke.settings).reports_dir == smoke.reports_dir
    assert executed_dir(smoke=False) == NOTEBOOKS_DIR / "executed"
    assert executed_dir(smoke=True) == NOTEBOOKS_DIR / "executed" / "smoke"


def test_smoke_folders_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "r"))
    assert open_run("02_model_registry", smoke=True).reports_dir == tmp_path / "r" / "smoke"
    monkeypatch.setenv("MILESTONE_SMOKE_REPORTS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MILESTONE_SMOKE_ARTIFACTS_DIR", str(tmp_path / "smoke-artifacts"))
    smoke = open_run("02_model_registry", smoke=True)
    assert smoke.reports_dir == tmp_path / "elsewhere"
    assert smoke.variants_dir == tmp_path / "smoke-artifacts" / "variants"
    assert open_run("02_model_registry").reports_dir == tmp_path / "r"  # a full run is unaffected


def test_a_smoke_run_after_a_full_run_leaves_the_full_results_alone(tmp_path: Path) -> None:
    full = open_run("01_build_variants", settings=_settings(tmp_path))
    smoke = open_run("01_build_variants", smoke=True, settings=_settings(tmp_path))
    full_paths = full.write_table(pd.DataFrame({"Variant": ["yolov8n-onnx-fp32"], "Accuracy": [0.979]}), "variants",
                                  title="Variants")
    full.record({"accuracy": {"yolov8n-onnx-fp32": 0.979}})
    smoke_paths = smoke.write_table(pd.DataFrame({"Variant": ["yolov8n-onnx-fp32"], "Accuracy": [0.938]}), "variants",
                                    title="Variants")
    smoke.record({"accuracy": {"yolov8n-onnx-fp32": 0.938}})

    assert pd.read_csv(full_paths["csv"])["Accuracy"].tolist() == [0.979]
    assert pd.read_csv(smoke_paths["csv"])["Accuracy"].tolist() == [0.938]
    assert full_paths["md"].read_text().splitlines()[0] == "# Variants"
    assert smoke_paths["md"].read_text().splitlines()[0] == "# Variants (smoke run)"
    assert load_figures("01_build_variants", reports_dir=full.reports_dir) == {"accuracy": {"yolov8n-onnx-fp32": 0.979}}
    assert json.loads(smoke.figures_path.read_text())["run"] == "smoke"
    assert json.loads(full.figures_path.read_text())["run"] == "full"


def test_the_figures_say_which_machine_and_backend_measured_them(tmp_path: Path) -> None:
    run = open_run("05_optimize_t3", settings=_settings(tmp_path))
    run.record({"cost": 0.5}, backend="docker")
    document = json.loads(run.figures_path.read_text())
    assert document["backend"] == "docker" and document["machine"]["cores"] >= 1
    assert document["machine"]["cpu_model"] and document["figures"] == {"cost": 0.5}
    built = open_run("01_build_variants", settings=_settings(tmp_path))
    built.record({"variants_built": 4})
    assert json.loads(built.figures_path.read_text())["backend"] == "none (nothing deployed)"
    provenance = read_reports(run.reports_dir)
    by_name = {o.spec.notebook: o.provenance() for o in provenance if o.present}
    assert by_name["05_optimize_t3"]["backend"] == "docker"
    assert by_name["01_build_variants"]["machine"] != "not recorded"


def test_a_smoke_figure_says_smoke_in_its_title(tmp_path: Path) -> None:
    table = pd.DataFrame({"queue_ms": [1.0, 2.0], "compute_ms": [3.0, 4.0], "network_ms": [0.5, 0.5]},
                         index=["detect", "classify"])
    smoke = open_run("03_per_step_latency", smoke=True, settings=_settings(tmp_path))
    untitled, titled = plot_step_breakdown(table), plot_step_breakdown(table, title="per-step latency")
    smoke.save_figure(untitled, "a")
    smoke.save_figure(titled, "b")
    assert untitled.get_suptitle() == "smoke run"
    assert titled.get_suptitle() == "per-step latency (smoke run)"
    assert (smoke.reports_dir / "b.png").stat().st_size > 1000
    full = open_run("03_per_step_latency", settings=_settings(tmp_path))
    again = plot_step_breakdown(table, title=full.title("per-step latency"))
    full.save_figure(again, "b")
    assert again.get_suptitle() == "per-step latency" and full.title("x") == "x"
    assert smoke.title("x") == "x (smoke run)"


def test_recorded_figures_are_plain_json_and_missing_ones_say_what_to_run(tmp_path: Path) -> None:
    import numpy as np

    run = open_run("03_per_step_latency", settings=_settings(tmp_path))
    recorded = run.record({"p50_ms": np.float64(12.5), "sent": np.int64(40), "ok": True})
    assert recorded == {"p50_ms": 12.5, "sent": 40, "ok": True} and type(recorded["sent"]) is int
    with pytest.raises(TypeError, match="not JSON"):
        run.record({"frame": pd.DataFrame()})
    with pytest.raises(MilestoneError, match="run notebook 02_model_registry first"):
        load_figures("02_model_registry", reports_dir=tmp_path / "nothing")


def test_smoke_load_is_capped_and_scaling_always_adds_a_replica(tmp_path: Path) -> None:
    full = open_run("03_per_step_latency", settings=_settings(tmp_path))
    smoke = open_run("03_per_step_latency", smoke=True, settings=_settings(tmp_path))
    assert full.load_plan(rate=8.0, duration_s=20.0, warmup_s=3.0) == type(SMOKE_LOAD)(8.0, 20.0, 3.0)
    assert smoke.load_plan(rate=8.0, duration_s=20.0, warmup_s=3.0) == SMOKE_LOAD
    assert smoke.load_plan(rate=2.0, duration_s=2.0, warmup_s=0.5) == type(SMOKE_LOAD)(2.0, 2.0, 0.5)
    assert scaled_replicas(1, 2) == 2 and scaled_replicas(2, 2) == 3 and scaled_replicas(1, 4) == 4
