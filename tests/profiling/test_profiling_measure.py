"""A small real sweep against real step servers: accounting, balancing, traceability, and CPU enforcement."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.deploy import LocalBackend, PipelineDeployment
from milestone_lib.loadgen import load_images
from milestone_lib.profiling import SweepSpec, run_sweep, sweep_candidates
from milestone_lib.profiling.balanced import run_balanced_saturation, step_payloads

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep(smoke_variants: dict[str, Path]):
    spec = SweepSpec(cpus=[0.5], replicas=[1, 2], detect={"variants": [DETECT]}, classify={"variants": [CLASSIFY]},
                     images=8, warmup_s=0.3, window_s=0.4, max_windows=3, duration_s=1.0, multi_replica_per_step=1,
                     reserve_cores=1.0)
    result = run_sweep(spec, variants_dir=smoke_variants[DETECT].parent, log=lambda _: None)
    return result, sweep_candidates(result)


def test_every_request_is_accounted(sweep) -> None:
    result, _ = sweep
    runs = result.runs
    assert set(runs["kind"]) == {"saturation", "at_rate"}
    assert (runs["measured"] == runs["ok"] + runs["failed"] + runs["timeouts"]).all()
    assert (runs["sent"] >= runs["measured"]).all() and (runs["windows"] >= 1).all()
    assert "cgroup" in runs["enforcement"].iloc[0] or "NOT enforced" in runs["enforcement"].iloc[0]


def test_multi_replica_load_is_balanced_over_every_replica(sweep) -> None:
    result, candidates = sweep
    runs = result.runs
    assert (runs.loc[runs["replicas"] == 2, "replicas_answered"] == 2).all()
    assert (runs.loc[runs["replicas"] == 1, "replicas_answered"] == 1).all()
    two = candidates[(candidates["replicas"] == 2) & (candidates["source"] == "measured")]
    assert set(two["step"]) == {"detect", "classify"}  # 2 x 0.5 CPU fit beside the reserved core
    assert two["predicted_p99_ms"].notna().all()  # the prediction stands beside the measurement


def test_profiles_carry_service_times_by_batch(sweep) -> None:
    result, _ = sweep
    detect = result.profiles[result.profiles["step"] == "detect"]
    assert 1 in set(detect["batch"]) and detect["batch"].max() <= 8  # light load forms batches of 1; max batch 8
    assert (detect["service_ms_p99"] >= detect["service_ms"]).all() and (detect["calibration"] >= 1).all()
    fanout = result.fanout.iloc[0]
    classify_rate = sweep[1].loc[sweep[1]["step"] == "classify", "rate_rps"].iloc[0]
    assert classify_rate == pytest.approx(20 * fanout["calls_per_image"])


def test_every_row_traces_to_a_measurement_or_its_inputs(sweep) -> None:
    result, candidates = sweep
    run_ids = set(result.runs["run_id"])
    for row in candidates.itertuples():
        named = set(re.findall(r"\d{8}T\d{6}-\d{3}", row.trace))
        assert named and named <= run_ids, row.trace
        if row.source == "measured":
            assert re.search(r"saturation \d+ windows, \d+ requests", row.trace)
        else:
            assert row.trace.startswith("des-jsq-batching") and "profile run" in row.trace
    assert result.pipeline_measured["trace"].str.contains("gateway open loop").all()


def test_half_a_cpu_serves_a_cpu_bound_load_about_twice_as_slowly(smoke_variants: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    spec = PipelineDeployment.for_variants(DETECT, CLASSIFY, cpu={"detect": 1.0, "classify": 0.25},
                                           variants_dir=smoke_variants[DETECT].parent)
    images = load_images(variant_folder=smoke_variants[DETECT], limit=8)
    with LocalBackend(workdir=tmp_path / "deploy") as backend:
        backend.deploy(spec)
        group = backend.cgroups().get("detect-0")
        if group is None:
            pytest.skip("this machine cannot set a CPU quota (see the deployment warnings)")
        target = backend.endpoints().steps["detect"]
        payloads = step_payloads("detect", images)
        rates: dict[float, list[float]] = {1.0: [], 0.5: []}
        for _ in range(3):  # interleaved, so drifting load from elsewhere hits both alike
            for cpu in (1.0, 0.5):
                group.set_cpu(cpu)
                result = run_balanced_saturation("detect", target, payloads, 8, warmup_s=0.5, window_s=1.0,
                                                 min_windows=3, max_windows=3)
                assert result.summary["measured"] == result.summary["ok"]
                rates[cpu].append(result.summary["throughput_rps"])
    ratio = statistics.median(rates[1.0]) / statistics.median(rates[0.5])
    assert 1.6 <= ratio <= 2.4, f"1 CPU {rates[1.0]} vs 0.5 CPU {rates[0.5]} images/s: ratio {ratio:.2f}"


def test_frames_have_the_contract_columns(sweep) -> None:
    from milestone_lib.profiling import CANDIDATE_COLUMNS, PROFILE_COLUMNS

    result, candidates = sweep
    assert list(candidates.columns) == CANDIDATE_COLUMNS
    assert set(PROFILE_COLUMNS) <= set(result.profiles.columns)  # every contract column, the optional ones too
    assert isinstance(result.machine["cores"], int) and result.machine["packages"]
    assert isinstance(result.latencies, pd.DataFrame) and len(result.latencies)
