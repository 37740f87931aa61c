"""A small real sweep against real step servers: accounting, balancing, traceability, and CPU enforcement."""

from __future__ import annotations

import re
import statistics
import time
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


def test_a_cpu_quota_caps_the_replica_and_an_image_costs_the_same_cpu_at_either_quota(
        smoke_variants: dict[str, Path], tmp_path: Path) -> None:
    """Read from the kernel's own accounting, so the load of other processes cannot move it: the quota
    caps what the replica uses, the replica wants more than half a CPU (it is throttled), and an image
    costs the same CPU time at either quota, so half the CPU serves half the images per second."""
    spec = PipelineDeployment.for_variants(DETECT, CLASSIFY, cpu={"detect": 1.0, "classify": 0.25},
                                           variants_dir=smoke_variants[DETECT].parent)
    images = load_images(variant_folder=smoke_variants[DETECT], limit=8)
    with LocalBackend(workdir=tmp_path / "deploy") as backend:
        backend.deploy(spec)
        group = backend.cgroups().get("detect-0")
        if group is None:
            pytest.skip("this machine cannot set a CPU quota (see the deployment warnings)")
        assert "usage_s" in group.stats(), "the CPU accounting (cpuacct) should be there where a quota is"
        target = backend.endpoints().steps["detect"]
        payloads = step_payloads("detect", images)
        used: dict[float, list[float]] = {1.0: [], 0.5: []}
        cpu_per_image: dict[float, list[float]] = {1.0: [], 0.5: []}
        for _ in range(3):  # interleaved, so drifting load from elsewhere hits both alike
            for cpu in (1.0, 0.5):
                group.set_cpu(cpu)
                before, started = group.stats(), time.monotonic()
                result = run_balanced_saturation("detect", target, payloads, 8, warmup_s=0.5, window_s=1.0,
                                                 min_windows=3, max_windows=3)
                after, wall = group.stats(), time.monotonic() - started
                assert result.summary["measured"] == result.summary["ok"]
                usage = after["usage_s"] - before["usage_s"]
                # One CFS period (0.1 s) of quota may straddle the edges of the window.
                assert usage <= cpu * (wall + 2 * 0.1), (cpu, usage, wall)
                if cpu == 0.5:
                    assert after["nr_throttled"] > before["nr_throttled"], "a saturated replica hits its quota"
                used[cpu].append(usage / wall)
                cpu_per_image[cpu].append(usage / int((result.requests["status"] == "ok").sum()))
    cost = {cpu: statistics.median(values) for cpu, values in cpu_per_image.items()}
    assert 0.75 <= cost[0.5] / cost[1.0] <= 1.33, f"CPU seconds per image {cpu_per_image}; CPU used {used}"


def test_frames_have_the_contract_columns(sweep) -> None:
    from milestone_lib.profiling import CANDIDATE_COLUMNS, PROFILE_COLUMNS

    result, candidates = sweep
    assert list(candidates.columns) == CANDIDATE_COLUMNS
    assert set(PROFILE_COLUMNS) <= set(result.profiles.columns)  # every contract column, the optional ones too
    assert isinstance(result.machine["cores"], int) and result.machine["packages"]
    assert isinstance(result.latencies, pd.DataFrame) and len(result.latencies)
