"""The check's arithmetic (confidence intervals, prediction error) and the deployment it builds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from opt_helpers import synthetic_sweep

from milestone_lib.optimize import (
    Configuration,
    check_plan,
    check_summary,
    deployment_for,
    forecast_p99_ms,
    gateway_overhead_ms,
    mean_ci,
    rule_against_pipeline,
)
from milestone_lib.profiling import SlaSpec


def _config() -> Configuration:
    step = {"cpu": 0.5, "threads": 1, "batch": 4, "replicas": 2, "cost": 1.0, "p99_ms": 40.0}
    return Configuration({**step, "variant": "yolov8n-onnx-fp32"},
                         {**step, "variant": "resnet-tiny-onnx-fp32", "batch": 8, "replicas": 1, "p99_ms": 10.0},
                         cost=1.5, accuracy=0.5, predicted_p99_ms=100.0, gateway_reserve_ms=50.0)


def test_mean_ci_uses_students_t() -> None:
    mean, half = mean_ci([10.0, 12.0, 14.0])
    assert mean == 12.0
    assert half == pytest.approx(4.303 * 2.0 / 3 ** 0.5, rel=1e-4)  # t(0.975, 2) * s / sqrt(n)
    assert mean_ci([5.0])[0] == 5.0 and pd.isna(mean_ci([5.0])[1])


def test_the_deployment_carries_every_choice(tmp_path: Path) -> None:
    spec = deployment_for(_config(), variants_dir=tmp_path)
    detect, classify = spec.step("detect"), spec.step("classify")
    assert (detect.replicas, detect.cpu, detect.threads, detect.batching.max_batch_size) == (2, 0.5, 1, 4)
    assert (classify.replicas, classify.batching.max_batch_size) == (1, 8)
    assert detect.folder == tmp_path / "yolov8n-onnx-fp32"


def test_summary_error_against_the_steps_prediction_and_the_rule_bound() -> None:
    runs = pd.DataFrame([{"configuration": "optimum", "label": "x", "repeat": r, "predicted_p99_ms": 100.0,
                          "predicted_steps_p99_ms": 50.0, "p99_ms": p, "goodput_rps": 20.0, "sla_attainment": 1.0,
                          "meets_sla": True, "sent": 100, "failed": 0, "timeouts": 0} for r, p in enumerate([54, 56, 58])])
    row = check_summary(runs).iloc[0]
    assert row["measured_p99_ms"] == 56 and row["prediction_error"] == pytest.approx(0.12)
    assert row["rule_bound_held"] and row["meets_sla_every_repeat"] and row["requests"] == 300


def test_a_smoke_check_is_one_short_run_of_the_optimum() -> None:
    plan = check_plan(smoke=True, rate_rps=20.0, repeats=3)
    assert (plan.repeats, plan.duration_s) == (1, 3.0)
    assert list(plan.targets({"optimum": _config(), "static smallest": _config()})) == ["optimum"]
    assert len(check_plan(smoke=False, rate_rps=20.0).targets({"optimum": _config(), "static smallest": _config()})) == 2


def test_every_deployed_configuration_gets_enough_requests_for_a_p99() -> None:
    for rate, repeats in ((20.0, 3), (40.0, 3), (7.0, 2)):
        plan = check_plan(smoke=False, rate_rps=rate, repeats=repeats, min_requests=1000)
        assert plan.repeats == repeats and rate * plan.duration_s * repeats >= 1000
        assert rate * (plan.duration_s - 1) * repeats < 1000  # not more than a second longer than needed
    with pytest.raises(ValueError, match="rate_rps=0"):
        check_plan(smoke=False, rate_rps=0)


def test_the_rule_against_a_pipeline_row_notebook_04_measured(tmp_path: Path) -> None:
    candidates = pd.DataFrame([
        {"step": "detect", "variant": "det", "cpu": 1.0, "replicas": 1, "p99_ms": 30.0, "detector_variant": None},
        {"step": "classify", "variant": "cls", "cpu": 1.0, "replicas": 1, "p99_ms": 10.0, "detector_variant": "det"},
        {"step": "classify", "variant": "cls", "cpu": 1.0, "replicas": 1, "p99_ms": 99.0, "detector_variant": "other"},
    ])
    pd.DataFrame([{"detector_variant": "det", "classifier_variant": "cls", "scale": "detect 1x1 + classify 1x1",
                   "p99_ms": 44.0, "source": "measured"},
                  {"detector_variant": "det", "classifier_variant": "cls", "scale": "detect 1x1 + classify 1x1",
                   "p99_ms": 40.0, "source": "predicted"}]).to_csv(tmp_path / "04_pipeline_table.csv", index=False)
    check = rule_against_pipeline(candidates, tmp_path, gateway_reserve_ms=50.0)
    assert len(check) == 1
    row = check.iloc[0]
    assert (row["steps_p99_sum_ms"], row["rule_p99_ms"]) == (40.0, 90.0)  # the classify row after "det", not "other"
    assert row["error"] == pytest.approx(0.1) and row["bound_held"]
    assert rule_against_pipeline(candidates, tmp_path / "nowhere", gateway_reserve_ms=50.0).empty


def test_the_forecast_adds_the_gateway_overhead_and_meets_the_pooled_p99() -> None:
    runs = pd.DataFrame([{"configuration": "optimum", "label": "x", "repeat": r, "predicted_p99_ms": 100.0,
                          "predicted_steps_p99_ms": 50.0, "p99_ms": p, "pooled_p99_ms": 60.0, "goodput_rps": 20.0,
                          "sla_attainment": 1.0, "meets_sla": True, "sent": 100, "failed": 0, "timeouts": 0}
                         for r, p in enumerate([40, 60, 110])])
    row = check_summary(runs, gateway_overhead_ms=5.0).iloc[0]
    assert row["forecast_p99_ms"] == 55.0 and row["measured_p99_ms"] == 60.0  # the pooled p99, not the mean 70
    assert row["repeat_p99_mean_ms"] == 70.0 and row["prediction_error"] == pytest.approx(5 / 55)
    assert row["rule_bound_held"] and row["repeats_within_rule"] == 2  # pooled 60 <= 100; one repeat's 110 was not
    assert not check_summary(runs.assign(pooled_p99_ms=101.0)).iloc[0]["rule_bound_held"]


def test_the_gateway_overhead_is_the_pipelines_median_beyond_its_steps(tmp_path: Path) -> None:
    candidates = pd.DataFrame([
        {"step": "detect", "variant": "det", "cpu": 1.0, "replicas": 1, "p50_ms": 8.0, "p99_ms": 30.0,
         "detector_variant": None},
        {"step": "classify", "variant": "cls", "cpu": 1.0, "replicas": 1, "p50_ms": 4.0, "p99_ms": 10.0,
         "detector_variant": "det"},
    ])
    pd.DataFrame([{"detector_variant": "det", "classifier_variant": "cls", "scale": "detect 1x1 + classify 1x1",
                   "p50_ms": 15.5, "p99_ms": 44.0, "source": "measured"}]).to_csv(tmp_path / "04_pipeline_table.csv",
                                                                                    index=False)
    check = rule_against_pipeline(candidates, tmp_path, gateway_reserve_ms=50.0)
    assert gateway_overhead_ms(check) == pytest.approx(3.5)
    assert gateway_overhead_ms(pd.DataFrame()) == 0.0


def test_the_forecast_is_the_queueing_model_of_each_unmeasured_step(tmp_path: Path) -> None:
    sla = SlaSpec(latency_ms=500, rate_rps=20)
    sweep = synthetic_sweep(tmp_path, detect_ms={"yolov8n-onnx-fp32": 6.0}, classify_ms={"resnet-tiny-onnx-fp32": 1.0},
                            fanout={"yolov8n-onnx-fp32": 3.0}, sla=sla)
    step = {"cpu": 1.0, "threads": 1, "batch": 4, "replicas": 1}
    config = Configuration({**step, "variant": "yolov8n-onnx-fp32"}, {**step, "variant": "resnet-tiny-onnx-fp32"},
                           cost=2.0, accuracy=0.5, predicted_p99_ms=0.0, gateway_reserve_ms=50.0)
    lone = forecast_p99_ms(config, sweep, rate_rps=0.5, requests=5000)
    busy = forecast_p99_ms(config, sweep, rate_rps=60, requests=5000)
    # Almost alone: each step's batch of one (6 ms + 1 ms overhead; 3 crops in one batch of the classifier).
    assert 8.0 < lone < 20.0
    assert busy > lone  # queueing at 60 images per second
    faster = Configuration({**config.detect, "replicas": 2}, config.classify, cost=3.0, accuracy=0.5,
                           predicted_p99_ms=0.0, gateway_reserve_ms=50.0)
    assert forecast_p99_ms(faster, sweep, rate_rps=60, requests=5000) < busy
    unknown = Configuration({**config.detect, "variant": "nowhere"}, config.classify, cost=2.0, accuracy=0.5,
                            predicted_p99_ms=0.0, gateway_reserve_ms=50.0)
    assert pd.isna(forecast_p99_ms(unknown, sweep, rate_rps=20))


def test_the_forecast_takes_the_sweeps_measurement_at_its_rate_and_adds_tails_as_independent(tmp_path: Path) -> None:
    sla = SlaSpec(latency_ms=500, rate_rps=20)
    sweep = synthetic_sweep(tmp_path, detect_ms={"yolov8n-onnx-fp32": 6.0}, classify_ms={"resnet-tiny-onnx-fp32": 1.0},
                            fanout={"yolov8n-onnx-fp32": 3.0}, sla=sla)
    step = {"cpu": 1.0, "threads": 1, "batch": 4, "replicas": 1}
    config = Configuration({**step, "variant": "yolov8n-onnx-fp32"}, {**step, "variant": "resnet-tiny-onnx-fp32"},
                           cost=2.0, accuracy=0.5, predicted_p99_ms=0.0, gateway_reserve_ms=50.0)
    modelled = forecast_p99_ms(config, sweep, rate_rps=20, requests=5000)
    c = sweep.candidates
    for step_name, variant, p50, p99 in (("detect", "yolov8n-onnx-fp32", 10.0, 40.0),
                                         ("classify", "resnet-tiny-onnx-fp32", 5.0, 35.0)):
        at = (c["step"] == step_name) & (c["variant"] == variant) & (c["cpu"] == 1.0) & (c["batch"] == 4) \
            & (c["replicas"] == 1) & (c["threads"] == 1)
        assert at.sum() == 1
        c.loc[at, ["p50_ms", "p99_ms", "source"]] = [p50, p99, "measured"]
    # Medians 10 + 5, tails 30 and 30: 15 + sqrt(30^2 + 30^2) = 57.4, below the p99s added (75).
    assert forecast_p99_ms(config, sweep, rate_rps=20) == pytest.approx(15.0 + (2 * 30.0 ** 2) ** 0.5)
    # At another rate the sweep's measurement does not apply: the model again.
    assert forecast_p99_ms(config, sweep, rate_rps=20.5, requests=5000) < 57.0
    assert modelled < 57.0


def test_the_summary_holds_the_measurement_against_the_forecast_where_given() -> None:
    runs = pd.DataFrame([{"configuration": "optimum", "label": "x", "repeat": 0, "predicted_p99_ms": 100.0,
                          "predicted_steps_p99_ms": 50.0, "p99_ms": 44.0, "pooled_p99_ms": 44.0, "goodput_rps": 20.0,
                          "sla_attainment": 1.0, "meets_sla": True, "sent": 100, "failed": 0, "timeouts": 0}])
    row = check_summary(runs, forecasts={"optimum": 40.0}, gateway_overhead_ms=0.0).iloc[0]
    assert row["forecast_p99_ms"] == 40.0 and row["prediction_error"] == pytest.approx(0.1)
