"""The optimizer's plots draw what they say: every point meeting the SLA, the front, the chosen point, the CI."""

from __future__ import annotations

import pandas as pd
from test_optimize_t3 import GRID, _answers

from milestone_lib.optimize import plot_pareto, plot_prediction_check


def test_pareto_plot_marks_the_front_the_choice_and_each_baseline() -> None:
    answers = _answers(GRID)
    figure = plot_pareto(answers)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "Pareto front" in labels
    assert any(label.startswith(f"chosen: {answers.recommendation['cost']:g} CPUs") for label in labels)
    assert sum(label.startswith(("static", "INFaaS", "IPA")) for label in labels) == len(answers.tables["baselines"])


def test_prediction_check_plot_shows_each_configuration_and_repeat() -> None:
    summary = pd.DataFrame([{"configuration": "optimum", "measured_p99_ms": 50.0, "repeat_p99_mean_ms": 50.0,
                             "p99_ci95_ms": 5.0, "predicted_steps_p99_ms": 45.0, "forecast_p99_ms": 45.0,
                             "predicted_p99_ms": 95.0}])
    runs = pd.DataFrame({"configuration": ["optimum"] * 3, "p99_ms": [45.0, 50.0, 55.0]})
    axis = plot_prediction_check(summary, sla_ms=100, runs=runs).axes[0]
    assert [t.get_text() for t in axis.get_yticklabels()] == ["optimum"]
    assert "measured p99, each repeat" in axis.get_legend_handles_labels()[1]
    assert axis.get_xlim()[0] == 0
