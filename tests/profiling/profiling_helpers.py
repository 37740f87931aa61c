"""Synthetic service profiles in the contract's columns (for tests that need no measurement)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DETECTORS = ["yolov8n-onnx-fp32", "yolov8n-onnx-int8-static"]
CLASSIFIERS = ["resnet-tiny-onnx-fp32", "resnet-tiny-onnx-int8-static"]


def synthetic_profiles(cpus: tuple[float, ...] = (0.5, 1.0), batches: tuple[int, ...] = (1, 4, 8)) -> pd.DataFrame:
    rows = []
    for step, variants, base in (("detect", DETECTORS, 20.0), ("classify", CLASSIFIERS, 3.0)):
        for i, variant in enumerate(variants):
            for cpu in cpus:
                for batch in batches:
                    ms = base / cpu * (0.6 + 0.4 * batch) * (1 + 0.2 * i)
                    rows.append({"step": step, "variant": variant, "model": variant.split("-onnx")[0], "format": "onnx",
                                     "precision": variant.split("onnx-")[1], "cpu": cpu, "threads": 1, "batch": batch,
                                     "service_ms": ms, "service_ms_p99": 1.3 * ms, "items_per_s": 1000 * batch / ms,
                                     "run_id": f"run-{step}-{i}-{cpu}", "requests": 200, "windows": 3, "max_batch": 8,
                                     "overhead_ms": 1.0, "batches": 20, "max_queue_delay_ms": 2.0, "accuracy": 0.5 - 0.1 * i})
    return pd.DataFrame(rows)


def synthetic_fanout() -> pd.DataFrame:
    return pd.DataFrame({"detector_variant": DETECTORS, "crops_per_image_mean": [2.5, 3.5],
                         "crops_per_image_std": [1.0, 1.2], "images": [24, 24]})


def single_server(service_ms: float) -> pd.DataFrame:
    return pd.DataFrame([{"step": "detect", "variant": "v", "cpu": 1.0, "threads": 1, "batch": 1, "service_ms": service_ms,
                              "service_ms_p99": service_ms}])


def relative_error(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else float(np.inf)
