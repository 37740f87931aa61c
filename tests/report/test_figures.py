"""The headline figures each notebook records, computed from tables shaped like the notebooks' own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from milestone_lib.registry import PulledVariant
from milestone_lib.report import build_figures, registry_figures, scaling_figures


def test_build_figures_count_variants_and_pick_the_best_pipeline() -> None:
    variants = pd.DataFrame({
        "Variant": ["yolov8n-onnx-fp32", "yolov8n-onnx-int8-static", "resnet-tiny-onnx-fp32", "yolov8n-tensorrt-fp16"],
        "Accuracy": [0.97912, 0.9711, 0.88, np.nan],
        "Status": ["built", "built", "built", "unavailable: no CUDA GPU"],
    })
    stages = pd.DataFrame({"Stage": ["train", "export", "total"], "Seconds": [60.0, 12.04, 72.04]})
    pipeline = pd.DataFrame({"detector": ["yolov8n-onnx-fp32"], "classifier": ["resnet-tiny-onnx-fp32"],
                             "mAP50": [np.float64(0.91)], "mAP50-95": [np.float64(0.7)], "pairs": [1]})
    figures = build_figures(variants, stages, pipeline)
    assert figures == {
        "variants_built": 3, "variants_unavailable": 1, "build_seconds": 72.0,
        "best_pipeline": {"detector": "yolov8n-onnx-fp32", "classifier": "resnet-tiny-onnx-fp32",
                          "mAP50": 0.91, "mAP50-95": 0.7},
        "accuracy": {"yolov8n-onnx-fp32": 0.9791, "yolov8n-onnx-int8-static": 0.9711, "resnet-tiny-onnx-fp32": 0.88},
    }
    json.dumps(figures)  # plain values only


def test_registry_figures_sum_the_pushes_and_name_the_verified_pull(tmp_path: Path) -> None:
    pushed = pd.DataFrame({"name": ["a", "b"], "size_mb": [1.25, 2.5], "seconds": [0.1, 0.2004]})
    listing = pd.DataFrame({"name": ["a", "b", "a"], "version": ["1", "1", "2"]})
    pulled = PulledVariant(name="a", version="2", folder=tmp_path, manifest=None, size_bytes=1_250_000,
                           seconds=0.04321, files_verified=3)
    assert registry_figures(pushed, listing, pulled) == {
        "variants_pushed": 2, "versions_in_registry": 3, "variants_in_registry": 2, "pushed_mb": 3.75,
        "push_seconds_total": 0.3, "pulled_variant": "a", "pulled_version": "2", "pulled_files_verified": 3,
        "pull_seconds": 0.043,
    }


def test_scaling_figures_account_for_every_request_before_and_after() -> None:
    def summary(sent: int, failed: int, timeouts: int, p50: float) -> dict:
        return {"sent": sent, "failed": failed, "timeouts": timeouts, "p50_ms": p50, "p95_ms": p50 * 2,
                "goodput_rps": 7.5}

    breakdown = pd.DataFrame({"total_ms": [1.0, 2.0, 30.0, 10.0]}, index=["client", "gateway", "detect", "classify"])
    figures = scaling_figures(summary(40, 1, 2, 50.0), summary(40, 0, 1, 30.0), breakdown, breakdown / 2,
                              slowest="detect", rate_rps=8.0, oversubscribed=True, replicas_after={"detect": 2, "classify": 1})
    assert figures["requests_sent"] == 80 and figures["requests_failed"] == 4
    assert figures["before_p50_ms"] == 50.0 and figures["after_p95_ms"] == 60.0
    assert figures["slowest_step_ms_before"] == 30.0 and figures["slowest_step_ms_after"] == 15.0
    assert figures["replicas_after"] == {"detect": 2, "classify": 1} and figures["oversubscribed"] is True
    assert list(figures)[:5] == ["slowest_step", "rate_rps", "oversubscribed", "requests_sent", "requests_failed"]
