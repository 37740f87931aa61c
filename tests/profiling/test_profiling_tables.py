"""Tables, the best configuration rule, and every plot of notebook 04 (on a synthetic candidate table)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from profiling_helpers import synthetic_fanout, synthetic_profiles

from milestone_lib.profiling import (
    SlaSpec,
    best_configuration,
    candidate_table,
    describe_best,
    pipeline_table,
    scaling_efficiency,
    step_table,
)
from milestone_lib.report.sweep_plots import (
    plot_cost_vs_p99,
    plot_latency_distribution,
    plot_throughput_vs_replicas,
    plot_version_accuracy,
    save_png_svg,
)


@pytest.fixture(scope="module")
def candidates() -> pd.DataFrame:
    return candidate_table(synthetic_profiles(), pipeline_rate_rps=20, fanout=synthetic_fanout(),
                           replicas=range(1, 4))


def test_best_is_the_cheapest_within_budget_ties_to_accuracy(candidates: pd.DataFrame) -> None:
    best = best_configuration(candidates, "detect")
    within = candidates[(candidates.step == "detect") & candidates.meets_step_sla]
    assert best is not None and best["cost"] == within["cost"].min()
    tied = within[within["cost"] == best["cost"]]
    assert best["accuracy"] == tied["accuracy"].max()
    sentence = describe_best(best, "detect", SlaSpec())
    assert best["variant"] in sentence and "270 ms budget" in sentence
    none = best_configuration(candidates.assign(meets_step_sla=False), "classify")
    assert none is None and "no configuration" in describe_best(none, "classify", SlaSpec())


def test_step_tables_have_the_assignment_columns(candidates: pd.DataFrame) -> None:
    detect = step_table(candidates, "detect")
    for column in ("Variant", "Format", "Precision", "Scale", "CPU per replica", "Cost", "p50 ms", "p95 ms", "p99 ms",
                   "Max throughput (req/s)", "Accuracy", "Meets step SLA", "Source", "Trace"):
        assert column in detect.columns
    assert len(detect) == (candidates.step == "detect").sum()
    classify = step_table(candidates, "classify", detector_variant="yolov8n-onnx-fp32")
    assert (classify["Upstream detector"] == "yolov8n-onnx-fp32").all()
    assert np.allclose(detect["Cost"], detect["Scale"] * detect["CPU per replica"])


def test_pipeline_table_pairs_every_detector_and_classifier(candidates: pd.DataFrame) -> None:
    accuracy = pd.DataFrame({"detector": ["yolov8n-onnx-fp32"], "classifier": ["resnet-tiny-onnx-fp32"],
                             "mAP50-95": [0.4], "mAP50": [0.6]})
    table = pipeline_table(candidates, SlaSpec(), pipeline_accuracy=accuracy)
    assert (table["source"] == "predicted").all()
    # the cheapest scale, then each replica count unless it repeats the cheapest one
    assert "cheapest" in set(table["scale_choice"]) and set(table["scale_choice"]) <= {
        "cheapest", "1 replica(s) per step", "2 replica(s) per step", "3 replica(s) per step"}
    assert not table[["detector_variant", "classifier_variant", "scale"]].duplicated().any()
    assert table.groupby(["detector_variant", "classifier_variant"]).size().between(1, 4).all()
    table = table[table["scale_choice"] == "cheapest"]
    assert len(table) == 4
    row = table[(table.detector_variant == "yolov8n-onnx-fp32") & (table.classifier_variant == "resnet-tiny-onnx-fp32")]
    assert row["e2e_mAP50-95"].iloc[0] == 0.4
    assert (table["p99_ms"] >= table["p50_ms"]).all()
    assert (table["meets_sla"] == (table["p99_ms"] <= 500)).all()


def test_efficiency_is_throughput_over_r_times_one(candidates: pd.DataFrame) -> None:
    eff = scaling_efficiency(candidates, step="detect", variant="yolov8n-onnx-fp32", cpu=0.9)
    assert eff["cpu"].eq(1.0).all() and list(eff["replicas"]) == [1, 2, 3]
    assert np.allclose(eff["efficiency"], eff["max_throughput_rps"] / (eff["replicas"] * eff["max_throughput_rps"][0]))


def test_every_plot_draws_both_steps_and_saves_png_and_svg(candidates: pd.DataFrame, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    figures = {
        "latency": plot_version_accuracy(candidates, y="p50_ms", title="t"),
        "throughput": plot_version_accuracy(candidates, y="max_throughput_rps"),
        "replicas": plot_throughput_vs_replicas(candidates, {"detect": "yolov8n-onnx-fp32",
                                                             "classify": "resnet-tiny-onnx-fp32"}),
        "cost": plot_cost_vs_p99(candidates, SlaSpec().step_budgets()),
        "distribution": plot_latency_distribution({"detect": np.array([5.0, 6.0, 9.0])},
                                                  {"detect": {"p50_ms": 6.0, "p99_ms": 9.0, "label": "x"}}),
    }
    for name, figure in figures.items():
        titles = [axis.get_title() for axis in figure.axes]
        assert any(t.startswith("detect") for t in titles) and any(t.startswith("classify") for t in titles), name
        paths = save_png_svg(figure, f"04_{name}", reports_dir=tmp_path, smoke=True)
        assert paths["png"].stat().st_size > 0 and paths["svg"].read_text().startswith("<?xml")
        assert "smoke" in figure.get_suptitle()
        plt.close(figure)
    lines = [line for axis in figures["cost"].axes for line in axis.get_lines()]
    budget_lines = {round(float(line.get_ydata()[0])) for line in lines if len(line.get_ydata())}
    assert budget_lines >= {270, 180}


def test_local_efficiency_beside_the_reference(candidates: pd.DataFrame) -> None:
    from milestone_lib.profiling import beside_reference

    local = scaling_efficiency(candidates, step="detect", variant="yolov8n-onnx-fp32")
    reference = {"efficiency_detect_yolov8n-onnx-fp32": pd.DataFrame(
        {"replicas": [1, 2, 8], "max_throughput_rps": [100.0, 180.0, 640.0], "efficiency": [1.0, 0.9, 0.8],
         "source": "measured"})}
    table = beside_reference(local, reference)
    assert list(table["replicas"]) == [1, 2, 3, 8]  # both runs' scales, side by side
    assert table.loc[table.replicas == 8, "reference: efficiency"].iloc[0] == 0.8
    assert np.isnan(table.loc[table.replicas == 8, "here: efficiency"].iloc[0])
    assert beside_reference(local, {}).columns[0] == "replicas"
