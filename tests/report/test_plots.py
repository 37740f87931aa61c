"""Every plot renders with readable tick labels: plain milliseconds on log axes, no two labels overlapping."""

from __future__ import annotations

import re
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from milestone_lib.report import (
    PANEL_SIZE,
    log_ms_ticks,
    plot_accuracy_vs_latency,
    plot_step_breakdown,
)

PLAIN_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _shown_tick_labels(figure) -> list[tuple[object, str, list]]:
    """(axes, 'x'/'y', [label Text]) for every axis: labels of ticks inside the view, major and minor."""
    figure.canvas.draw()
    found = []
    for axes in figure.axes:
        for which, getter, limits in (("x", axes.xaxis, axes.get_xlim()), ("y", axes.yaxis, axes.get_ylim())):
            low, high = sorted(limits)
            labels = []
            for minor in (False, True):
                ticks = getter.get_ticklocs(minor=minor)
                texts = getter.get_ticklabels(minor=minor)
                labels += [t for loc, t in zip(ticks, texts) if low <= loc <= high and t.get_visible() and t.get_text()]
            found.append((axes, which, labels))
    return found


def _overlaps(figure) -> list[tuple[str, str]]:
    renderer = figure.canvas.get_renderer()
    pairs = []
    for _axes, _which, labels in _shown_tick_labels(figure):
        boxes = [(label.get_text(), label.get_window_extent(renderer)) for label in labels]
        pairs += [(a, b) for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]
    return pairs


def _variants(latencies: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for step, values in latencies.items():
        model, metric = ("yolov8n", "mAP50") if step == "detect" else ("resnet-tiny", "top1")
        for (fmt, precision), ms in zip([("pytorch", "fp32"), ("onnx", "fp32"), ("onnx", "int8-static"),
                                         ("onnx", "int8-dynamic")], values):
            rows.append({"Step": step, "Model": model, "Format": fmt, "Precision": precision, "Metric": metric,
                         "Latency ms": ms, "Accuracy": 0.9 + ms / 1000, "Status": "built"})
    rows.append({"Step": "detect", "Model": "yolov8n", "Format": "tensorrt", "Precision": "fp16",
                 "Status": "unavailable: no CUDA GPU"})
    return pd.DataFrame(rows)


# Narrow ranges inside one decade gave "3×10⁰4×10⁰" before; wide ones span several decades.
LATENCIES = {
    "within one decade": {"detect": [3.1, 3.4, 3.9, 4.4], "classify": [0.31, 0.35, 0.42, 0.38]},
    "across decades": {"detect": [2.0, 15.0, 90.0, 700.0], "classify": [0.05, 0.4, 3.0, 12.0]},
    "one value per step": {"detect": [7.0], "classify": [0.9]},
}


@pytest.mark.parametrize("case", list(LATENCIES))
def test_accuracy_vs_latency_has_plain_ms_ticks_that_do_not_overlap(case: str) -> None:
    figure = plot_accuracy_vs_latency(_variants(LATENCIES[case]), title="Variants: accuracy vs latency")
    try:
        assert _overlaps(figure) == []
        for axes, which, labels in _shown_tick_labels(figure):
            if which == "x":
                texts = [label.get_text() for label in labels]
                assert axes.get_xscale() == "log" and len(texts) >= 2, texts
                assert all(PLAIN_NUMBER.match(t) for t in texts), texts
        assert figure.get_size_inches() == pytest.approx((PANEL_SIZE[0] * 2, PANEL_SIZE[1]))
    finally:
        plt.close(figure)


def test_step_breakdown_plot_labels_do_not_overlap_and_share_the_panel_size() -> None:
    table = pd.DataFrame({"queue_ms": [0.0, 0.0, 4.0, 1.0], "compute_ms": [0.0, 1.5, 30.0, 8.0],
                          "network_ms": [2.0, 0.0, 1.0, 1.0]}, index=["client", "gateway", "detect", "classify"])
    figure = plot_step_breakdown({"before: detect x1": table, "after: detect x2": table / 2}, title="t")
    try:
        assert _overlaps(figure) == []
        assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["client", "gateway", "detect", "classify"]
        assert figure.get_size_inches() == pytest.approx((PANEL_SIZE[0] * 2, PANEL_SIZE[1]))
    finally:
        plt.close(figure)


def test_the_overlap_check_finds_overlapping_labels() -> None:
    figure, axes = plt.subplots(figsize=(1.5, 1.5))
    axes.set_xticks(np.arange(10.0), [f"label {i}" for i in range(10)])
    try:
        assert len(_overlaps(figure)) > 0
    finally:
        plt.close(figure)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.8, 120.0, [1.0, 10.0, 100.0]),
    (2.4, 4.9, [2.5, 3.0, 4.0]),
    (2.6, 17.0, [3.0, 5.0, 7.0, 10.0, 15.0]),
    (1.5, 60.0, [2.0, 5.0, 10.0, 20.0, 50.0]),
])
def test_log_ms_ticks_are_round_and_few(low: float, high: float, expected: list[float]) -> None:
    assert log_ms_ticks(low, high) == expected


def test_log_ms_ticks_refuses_a_range_a_log_axis_cannot_show() -> None:
    with pytest.raises(ValueError, match="low=0"):
        log_ms_ticks(0, 5)
