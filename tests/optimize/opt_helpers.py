"""Grids and sweeps the optimizer tests build: randomized candidate tables, and a notebook-04-shaped sweep
of the real smoke variants with synthetic service profiles (so notebook 05 can run before a real sweep)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from milestone_lib.profiling import SlaSpec, SweepData, candidate_table, save_sweep

DETECTORS = ["yolov8n-onnx-fp32", "yolov8n-onnx-int8-static", "yolov8n-onnx-int8-dynamic", "yolov8n-pytorch-fp32"]
CLASSIFIERS = ["resnet-tiny-onnx-fp32", "resnet-tiny-onnx-int8-static", "resnet-tiny-onnx-int8-dynamic",
               "resnet-tiny-pytorch-fp32"]


def synthetic_profiles(detect_ms: Mapping[str, float], classify_ms: Mapping[str, float], *,
                       cpus: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0), batches: tuple[int, ...] = (1, 2, 4, 8),
                       max_batch: int = 8) -> pd.DataFrame:
    """Service-profile rows (profiling's columns) with `ms` per item at 1 CPU, labelled run_id 'synthetic'."""
    rows = []
    for step, table in (("detect", detect_ms), ("classify", classify_ms)):
        for k, (variant, ms) in enumerate(table.items()):
            fmt, precision = variant.split("-", 2)[2].split("-", 1) if variant.count("-") >= 3 else ("onnx", "fp32")
            for cpu in cpus:
                for batch in batches:
                    t = ms * (0.6 + 0.4 * batch) / cpu
                    rows.append({"step": step, "variant": variant, "model": "-".join(variant.split("-")[:2]),
                                 "format": fmt, "precision": precision, "cpu": cpu, "threads": max(1, int(np.ceil(cpu))),
                                 "batch": batch, "service_ms": t, "service_ms_p99": 1.3 * t, "items_per_s": 1000 * batch / t,
                                 "run_id": "synthetic", "requests": 100, "windows": 3, "max_batch": max_batch,
                                 "overhead_ms": 1.0, "batches": 20, "max_queue_delay_ms": 2.0,
                                 "accuracy": 0.5 + 0.05 * k})
    return pd.DataFrame(rows)


def synthetic_sweep(reports_dir: Path, *, detect_ms: Mapping[str, float], classify_ms: Mapping[str, float],
                    fanout: Mapping[str, float], sla: SlaSpec, replicas: range = range(1, 4),
                    pipeline_accuracy: pd.DataFrame | None = None, cpus: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
                    batches: tuple[int, ...] = (1, 4)) -> SweepData:
    """Write a sweep (notebook 04's files) and notebook 01's pipeline_accuracy.csv into `reports_dir`."""
    profiles = synthetic_profiles(detect_ms, classify_ms, cpus=cpus, batches=batches, max_batch=max(batches))
    fan = pd.DataFrame({"detector_variant": list(fanout), "crops_per_image_mean": list(fanout.values()),
                        "crops_per_image_std": 0.5})
    candidates = candidate_table(profiles, pipeline_rate_rps=sla.rate_rps, fanout=fan, replicas=replicas,
                                 step_budget_ms=sla.step_budgets(), percentile=sla.percentile)
    data = SweepData(profiles, fan, candidates, sla, {"cores": 2, "note": "synthetic test sweep"}, {})
    save_sweep(data, reports_dir)
    if pipeline_accuracy is None:
        rng = np.random.default_rng(0)
        pipeline_accuracy = pd.DataFrame([{"detector": d, "classifier": c, "mAP50": rng.uniform(0.5, 0.9),
                                           "mAP50-95": rng.uniform(0.3, 0.7)} for d in detect_ms for c in classify_ms])
    pipeline_accuracy.to_csv(Path(reports_dir) / "pipeline_accuracy.csv", index=False)
    return data
