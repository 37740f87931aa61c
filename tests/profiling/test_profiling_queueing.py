"""The simulation against closed forms (M/M/1, M/D/1), and what batching and replicas must do."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from profiling_helpers import relative_error, single_server, synthetic_profiles

from milestone_lib.errors import ProfilingError
from milestone_lib.profiling import md1_mean_ms, mm1_quantile_ms, predict_step
from milestone_lib.profiling.queueing import ServiceCurve


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_mm1_quantiles(rho: float) -> None:
    service, rate = 10.0, rho * 100.0
    p = predict_step(single_server(service), replicas=1, rate_rps=rate, max_batch=1, max_queue_delay_ms=0,
                     distribution="exponential", requests=40000, seed=1)
    for q, got in ((0.5, p.p50_ms), (0.95, p.p95_ms), (0.99, p.p99_ms)):
        assert relative_error(got, mm1_quantile_ms(q, service_ms=service, rate_rps=rate)) < 0.08
    assert p.stable and p.max_throughput_rps == pytest.approx(100.0)
    assert p.utilization == pytest.approx(rho)


@pytest.mark.parametrize("rho", [0.2, 0.6, 0.85])
def test_md1_mean(rho: float) -> None:
    service, rate = 10.0, rho * 100.0
    p = predict_step(single_server(service), replicas=1, rate_rps=rate, max_batch=1, max_queue_delay_ms=0,
                     distribution="deterministic", requests=40000, seed=2)
    assert relative_error(p.mean_ms, md1_mean_ms(service_ms=service, rate_rps=rate)) < 0.06
    assert p.p50_ms >= service - 1e-9  # nobody is served faster than the service time


def test_overload_is_unstable_without_simulating() -> None:
    p = predict_step(single_server(10.0), replicas=2, rate_rps=250, max_batch=1, max_queue_delay_ms=0)
    assert not p.stable and math.isinf(p.p99_ms) and p.max_throughput_rps == pytest.approx(200.0)
    assert p.requests == 0


def test_more_replicas_never_slower_and_capacity_linear() -> None:
    rows = synthetic_profiles()
    one = rows[(rows.variant == "yolov8n-onnx-fp32") & (rows.cpu == 1.0)]
    predictions = [predict_step(one, replicas=r, rate_rps=80, max_batch=8, max_queue_delay_ms=2, seed=3)
                   for r in (1, 2, 4)]
    assert predictions[0].p99_ms > predictions[1].p99_ms >= predictions[2].p99_ms * 0.95
    assert predictions[2].max_throughput_rps == pytest.approx(4 * predictions[0].max_throughput_rps)


def test_batching_raises_capacity_over_batch_one() -> None:
    rows = synthetic_profiles()
    one = rows[(rows.variant == "yolov8n-onnx-fp32") & (rows.cpu == 1.0)]
    batched = predict_step(one, replicas=1, rate_rps=60, max_batch=8, max_queue_delay_ms=2)
    single = predict_step(one, replicas=1, rate_rps=60, max_batch=1, max_queue_delay_ms=2)
    assert batched.max_throughput_rps > 2 * single.max_throughput_rps
    assert not single.stable and batched.stable  # 60/s is above 1/20 ms but within batches of 8


def test_rows_of_two_configurations_are_refused() -> None:
    rows = synthetic_profiles()
    with pytest.raises(ProfilingError, match="one \\(step, variant, cpu, threads\\)"):
        predict_step(rows[rows.step == "detect"], replicas=1, rate_rps=5, max_batch=8, max_queue_delay_ms=2)
    with pytest.raises(ProfilingError, match="replicas >= 1 \\(got 0\\)"):
        predict_step(single_server(1.0), replicas=0, rate_rps=5, max_batch=1, max_queue_delay_ms=0)


def test_a_cpu_quota_halves_capacity_but_not_a_lone_request() -> None:
    one_cpu = single_server(10.0).assign(cpu=1.0, threads=1, saturation_share=0.0)
    half = one_cpu.assign(cpu=0.5)
    lone = [predict_step(rows, replicas=1, rate_rps=2, max_batch=1, max_queue_delay_ms=0, distribution="deterministic",
                         seed=4) for rows in (one_cpu, half)]
    assert lone[0].p50_ms == pytest.approx(10.0) and lone[1].p50_ms == pytest.approx(10.0)  # within its budget
    assert lone[1].max_throughput_rps == pytest.approx(lone[0].max_throughput_rps / 2)
    busy = [predict_step(rows, replicas=1, rate_rps=45, max_batch=1, max_queue_delay_ms=0,
                         distribution="deterministic", seed=5) for rows in (one_cpu, half)]
    assert busy[1].p99_ms > 2 * busy[0].p99_ms  # throttled: paused until the next 100 ms period


def test_light_load_batches_paused_by_the_quota_do_not_set_the_work() -> None:
    # 0.25 CPU: 25 ms of each 100 ms period. Batches of 1-2 ran unpaused; the batch of 3 timed under light
    # load took 60 ms, so a pause is in it; the batch of 8 is timed at saturation (4 x its work of 40 ms).
    rows = pd.DataFrame([
        {"step": "detect", "variant": "v", "cpu": 0.25, "threads": 1, "batch": b, "service_ms": ms, "service_ms_p99": ms,
         "batches": n, "saturation_share": share}
        for b, ms, n, share in [(1, 9.0, 30, 0.0), (2, 14.0, 8, 0.0), (3, 60.0, 3, 0.0), (8, 160.0, 16, 1.0)]])
    curve = ServiceCurve.from_profile(rows)
    assert curve.quota == pytest.approx(0.25)
    assert curve.median_ms(3) == pytest.approx(19.0, rel=0.15)  # the line through 9, 14 and 40/8 per item, not 60
    with_pause = ServiceCurve.from_profile(rows.assign(cpu=1.0))  # no quota: every row is work, 60 ms included
    assert with_pause.median_ms(3) > curve.median_ms(3) * 1.3
