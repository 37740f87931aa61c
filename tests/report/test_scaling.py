"""Notebook 03's scaling decisions on plain data: the overload, the scale target, and the verdict's reasons."""

from __future__ import annotations

import json
import math

import pytest

from milestone_lib.deploy import DeploymentState, ReplicaState
from milestone_lib.errors import MilestoneError
from milestone_lib.report import (
    SCALING_VARIANTS,
    capacity_rps,
    overload_rate,
    scale_target,
    scaling_variants,
    scaling_verdict,
)


def _state(detect: int, *, cpu: float = 0.5, classify: int = 1, gateway_cpu: float = 0.5,
           cores: float | None = 2.0) -> DeploymentState:
    replicas = [ReplicaState(step="detect", index=i, address=f"127.0.0.1:{100 + i}", cpu=cpu) for i in range(detect)]
    replicas += [ReplicaState(step="classify", index=i, address=f"127.0.0.1:{200 + i}", cpu=cpu)
                 for i in range(classify)]
    return DeploymentState(name="p", backend="local", replicas=replicas, capacity_cpu=cores,
                           gateway=ReplicaState(step="gateway", index=0, address="127.0.0.1:99", cpu=gateway_cpu))


def _summary(goodput: float, p95: float, *, kept: bool | None = True) -> dict:
    summary = {"goodput_rps": goodput, "p95_ms": p95, "sla_ms": 250.0, "schedule_kept": kept}
    if kept is False:
        summary["schedule_warning"] = "send lag p99 80.0 ms is above the bound of 10 ms"
    return summary


def test_default_variants_follow_the_run_and_give_way_to_the_parameters() -> None:
    assert scaling_variants(smoke=False) == SCALING_VARIANTS["full"] == ("yolov8s-160-onnx-fp32", "resnet-tiny-onnx-fp32")
    assert scaling_variants(smoke=True) == ("yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32")
    assert scaling_variants("yolov8n-96-onnx-fp32", "", smoke=True) == ("yolov8n-96-onnx-fp32", "resnet-tiny-onnx-fp32")


def test_capacity_is_the_closed_loop_throughput_and_the_overload_a_multiple_of_it() -> None:
    assert capacity_rps({"throughput_rps": 22.04, "ok": 110}) == 22.04
    with pytest.raises(MilestoneError, match="answered no request"):
        capacity_rps({"throughput_rps": 0.0, "ok": 0, "measured": 10, "errors_by_code": {"UNAVAILABLE": 10}})
    assert overload_rate(22.04, overload=1.5) == 33.1
    with pytest.raises(MilestoneError):
        overload_rate(0.0)


def test_scale_target_serves_the_rate_within_the_cores_and_always_adds_one() -> None:
    # 1.5x one replica's capacity at 80% utilisation needs 2; 2 x 0.5 + classify 0.5 + gateway 0.5 fit in 2 cores
    assert scale_target(_state(1), "detect", rate_rps=33.0, capacity_rps=22.0) == 2
    # 3x needs 4, but only 2 fit beside the rest on 2 cores; on 8 cores all 4 fit
    assert scale_target(_state(1), "detect", rate_rps=66.0, capacity_rps=22.0) == 2
    assert scale_target(_state(1, cores=8.0), "detect", rate_rps=66.0, capacity_rps=22.0) == 4
    assert scale_target(_state(1, cores=None), "detect", rate_rps=66.0, capacity_rps=22.0) == 4
    # no room at all (1 CPU each on 2 cores): still one more, and the verdict will say why
    assert scale_target(_state(1, cpu=1.0, gateway_cpu=1.0), "detect", rate_rps=33.0, capacity_rps=22.0) == 2
    # a light load still scales out by one; an explicit count wins when it is a scale-out
    assert scale_target(_state(1), "detect", rate_rps=5.0, capacity_rps=22.0) == 2
    assert scale_target(_state(1), "detect", rate_rps=33.0, capacity_rps=22.0, requested=3) == 3
    assert scale_target(_state(2), "detect", rate_rps=33.0, capacity_rps=44.0, requested=1) == 3
    with pytest.raises(MilestoneError, match="no replica"):
        scale_target(_state(1, classify=0), "classify", rate_rps=1.0, capacity_rps=1.0)


def test_verdict_shown_when_goodput_rises_and_p95_falls_with_every_number_in_the_sentence() -> None:
    verdict = scaling_verdict(_summary(0.4, 2638.0), _summary(32.9, 180.0), _state(1), _state(2), step="detect",
                              capacity_rps=22.0, rate_rps=33.0)
    assert verdict.shown and verdict.reason == "shown"
    for text in ("`detect` out from 1 to 2 replicas (0.5 CPU each)", "within 250 ms 0.4 -> 32.9 requests/s",
                 "p95 2638 ms -> 180 ms", "33 requests/s, 1.50x the 22.0 requests/s", "2 CPUs (gateway included)",
                 "this machine's 2 cores"):
        assert text in verdict.sentence
    figures = verdict.figures()
    assert figures["scaling_shown"] is True and figures["capacity_rps"] == 22.0 and figures["step_replicas_after"] == 2
    assert figures["cpu_requested_after"] == 2.0 and figures["cores_available"] == 2.0
    json.dumps(figures)


def test_verdict_shown_when_nothing_was_answered_before_and_p95_is_unknown() -> None:
    verdict = scaling_verdict(_summary(0.0, math.nan), _summary(30.0, 200.0), _state(1), _state(2), step="detect",
                              capacity_rps=22.0, rate_rps=33.0)
    assert verdict.shown and "n/a (no request answered) -> 200 ms" in verdict.sentence


@pytest.mark.parametrize(("before", "after", "scaled", "rate", "asked", "reason", "words"), [
    (_summary(5.0, 40.0), _summary(5.0, 41.0), _state(2), 5.0, 33.0, "not_saturated",
     ["one replica was not the bottleneck", "capped the rate at 5 of the 33 requests/s asked", "22.0 requests/s"]),
    (_summary(20.0, 900.0), _summary(15.0, 1800.0), _state(3), 33.0, None, "oversubscribed",
     ["too few cores", "2.5 CPUs (gateway included) of this machine's 2 cores", "share cores"]),
    (_summary(0.5, 3000.0), _summary(1.0, 2900.0), _state(2), 66.0, None, "too_few_replicas",
     ["the 2 replicas that fit serve about 44.0 requests/s", "66 requests/s, 3.00x"]),
    (_summary(0.5, 3000.0, kept=False), _summary(0.6, 2900.0), _state(2), 33.0, None, "schedule_not_kept",
     ["fell behind its schedule (send lag p99 80.0 ms"]),
    (_summary(0.5, 3000.0), _summary(0.6, 2000.0), _state(2), 33.0, None, "no_gain",
     ["none of the known reasons applies", "serve about 44.0 requests/s"]),
])
def test_verdict_names_the_reason_with_the_numbers(before, after, scaled, rate, asked, reason, words) -> None:
    verdict = scaling_verdict(before, after, _state(1), scaled, step="detect", capacity_rps=22.0, rate_rps=rate,
                              asked_rps=asked)
    assert not verdict.shown and verdict.reason == reason
    assert "did not show its effect (goodput within 250 ms" in verdict.sentence
    assert f"p95 {before['p95_ms']:.0f} ms -> {after['p95_ms']:.0f} ms" in verdict.sentence
    for text in words:
        assert text in verdict.sentence, verdict.sentence


def test_a_gain_within_the_noise_is_not_an_effect() -> None:
    verdict = scaling_verdict(_summary(20.0, 100.0), _summary(20.5, 98.0), _state(1), _state(2), step="detect",
                              capacity_rps=22.0, rate_rps=33.0)
    assert not verdict.shown and verdict.reason == "no_gain"
