"""End to end on loopback: real variants, real step servers and gateway, the load generator, notebook 03."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from milestone_lib.deploy import LocalBackend, PipelineDeployment, StepDeployment
from milestone_lib.loadgen import ConstantRate, load_images, run_open_loop
from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.report import step_breakdown, step_columns

pytestmark = pytest.mark.slow

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"


def _gone(pids: list[int]) -> bool:
    import psutil

    return all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)


def test_two_replicas_at_a_fixed_rate_account_for_every_request_and_timings_add_up(
        tmp_path: Path, smoke_variants: dict[str, Path], smoke_dataset: Path) -> None:
    spec = PipelineDeployment(steps=[
        StepDeployment(step="detect", variant=DETECT, folder=smoke_variants[DETECT], replicas=2),
        StepDeployment(step="classify", variant=CLASSIFY, folder=smoke_variants[CLASSIFY]),
    ])
    images = load_images(smoke_dataset, limit=16)
    with LocalBackend(workdir=tmp_path) as backend:
        state = backend.deploy(spec)
        assert state.replica_count("detect") == 2
        result = run_open_loop(backend.endpoints().gateway, images, ConstantRate(8), duration_s=4.0, warmup_s=1.0,
                               timeout_s=15, sla_ms=2000)
        detect_addresses = set(backend.endpoints().steps["detect"])
        pids = backend.pids()
    assert _gone(pids)

    df, summary = result.requests, result.summary
    assert len(df) == 40 == summary["sent"] and df["request"].is_unique  # every request has one row...
    assert (df["status"] == "ok").all(), df[df.status != "ok"][["code", "error"]]  # ...and it succeeded
    assert summary["measured"] == summary["ok"] == 32 and summary["failed"] == summary["timeouts"] == 0
    assert set(df["detect_replica"]) == detect_addresses  # both detect replicas served

    parts = df[step_columns()].fillna(0.0).sum(axis=1)
    assert np.allclose(parts, df["total_ms"], rtol=0.01, atol=0.05)  # steps + gateway = gateway's total
    client = df["latency_ms"] - df["total_ms"]
    assert (client >= 0).all()
    assert (df["total_ms"] > 0).all()  # the gateway timed its part of every request
    breakdown = step_breakdown(df)
    measured = df[df.window >= 0]
    assert breakdown["total_ms"].sum() == pytest.approx(measured["latency_ms"].mean(), rel=1e-6)
    assert (breakdown.loc["detect", ["queue_ms", "compute_ms", "network_ms"]] >= 0).all()
    assert breakdown.loc["detect", "compute_ms"] > 0


def test_notebook_03_runs_in_smoke_mode(tmp_path: Path, smoke_variants: dict[str, Path], smoke_dataset: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    variants_dir = smoke_variants[DETECT].parent
    assert smoke_variants[CLASSIFY].parent == variants_dir
    reports = tmp_path / "reports" / "smoke"  # a smoke run writes to <reports>/smoke
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))  # the kernel inherits the environment
    executed = run_notebook(NOTEBOOKS_DIR / "03_per_step_latency.ipynb", output_dir=tmp_path,
                            parameters={"smoke": True, "variants_dir": str(variants_dir),
                                        "dataset": str(smoke_dataset)}, timeout_s=600)
    cells = json.loads(executed.read_text())["cells"]
    last = cells[-1]["outputs"][-1]["data"]["text/plain"]
    figures = ast.literal_eval("".join(last))
    assert figures["slowest_step"] in ("detect", "classify")
    assert figures["requests_failed"] == 0 and figures["requests_sent"] > 0
    # scale_to 0: enough replicas for the rate, at least one more than before
    assert figures["replicas_after"][figures["slowest_step"]] == figures["step_replicas_after"] >= 2
    # a smoke run caps the load at 5 requests/s, far below one replica's capacity: the verdict says so
    assert figures["capacity_rps"] > figures["rate_rps"] == 5.0
    assert figures["scaling_reason"] == "not_saturated" and "not the bottleneck" in figures["scaling_sentence"]
    for name in ("03_capacity", "03_step_breakdown_before", "03_step_breakdown_after", "03_scaling_before_after",
                 "03_deployment"):
        assert (reports / f"{name}.csv").is_file() and (reports / f"{name}.md").is_file()
    assert (reports / "03_step_breakdown.png").stat().st_size > 1000


def test_notebook_03_names_notebook_01_when_variants_are_missing(tmp_path: Path) -> None:
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="notebooks/01_build_variants.ipynb"):
        run_notebook(NOTEBOOKS_DIR / "03_per_step_latency.ipynb", output_dir=tmp_path,
                     parameters={"smoke": True, "variants_dir": str(tmp_path / "empty")}, timeout_s=300)
