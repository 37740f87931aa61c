"""The candidate table: every step configuration, its latency at the SLA rate, cost and accuracy.

One row per (step, variant, cpu, threads, batch, replicas), and for the classifier one per upstream
detector variant too (its fan-out sets the classifier's items per request). Rows are predicted
from the single-replica service profiles (`queueing.predict_step`); a configuration the sweep
also measured keeps the measurement (`source` "measured") with the prediction beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import ProfilingError
from .queueing import predict_step
from .schema import (
    CANDIDATE_COLUMNS,
    FANOUT_COLUMNS,
    check_columns,
    with_profile_defaults,
)
from .sla import SlaSpec

__all__ = ["CONFIG_KEYS", "candidate_table", "profile_trace"]

CONFIG_KEYS: list[str] = ["step", "variant", "cpu", "threads", "batch", "replicas", "detector_variant"]
"""What identifies a candidate row (`detector_variant` is NaN on detect rows)."""
_GROUP = ["step", "variant", "cpu", "threads", "max_batch"]


def profile_trace(rows: pd.DataFrame) -> str:
    """The measured inputs of a prediction: run ids, then each batch size's p50/p99 ms and batches."""
    runs = ",".join(sorted(set(rows["run_id"].astype(str))))
    points = " ".join(f"b{int(r.batch)}:{r.service_ms:.2f}/{r.service_ms_p99:.2f}ms" for r in rows.itertuples())
    return f"profile run {runs} [{points}] overhead {float(rows['overhead_ms'].median()):.2f}ms"


def _loads(step: str, rate: float, fanout: pd.DataFrame) -> list[tuple[float, float, object]]:
    """(rate, items per request, upstream detector) of a step: the classifier once per detector variant."""
    if step != "classify":
        return [(rate, 1.0, np.nan)]
    if fanout.empty:
        raise ProfilingError("classify profiles need a fan-out table (crops per image per detector variant); "
                             "measure it with profiling.fanout_table")
    if {"calls_per_image", "crops_per_call_mean"} <= set(fanout.columns):  # the gateway skips images with no crop
        return [(rate * float(f.calls_per_image), float(f.crops_per_call_mean), f.detector_variant)
                for f in fanout.itertuples()]
    return [(rate, float(f.crops_per_image_mean), f.detector_variant) for f in fanout.itertuples()]


def candidate_table(profiles: pd.DataFrame, *, pipeline_rate_rps: float, fanout: pd.DataFrame,
                    replicas: Iterable[int] = range(1, 9), step_budget_ms: Mapping[str, float] | None = None,
                    percentile: int = 99, measured: pd.DataFrame | None = None,
                    accuracy: Mapping[str, float] | None = None, requests: int | None = None) -> pd.DataFrame:
    """Candidates of every profiled (step, variant, cpu, threads, max_batch) at 1..R replicas.

    Args:
        profiles: service profiles (`schema.PROFILE_COLUMNS`).
        pipeline_rate_rps: images per second into the pipeline; each step gets one request per image.
        fanout: `fanout_table` rows (crops per image per detector variant).
        step_budget_ms: {step: ms} a row's p`percentile` must stay within (default: `SlaSpec().step_budgets()`).
        measured: rows of configurations the sweep measured (`CONFIG_KEYS` + latency columns, `trace`).
        accuracy: {variant: metric}, overriding the profiles' `accuracy` column.
        requests: simulated requests per row (default: `predict_step`'s, a few thousand).
    """
    profiles = with_profile_defaults(profiles)
    check_columns(fanout, FANOUT_COLUMNS[:2], "fan-out")
    budgets = dict(step_budget_ms or SlaSpec().step_budgets())
    counts = sorted({int(r) for r in replicas})
    if not counts or counts[0] < 1:
        raise ProfilingError(f"replicas {counts} must be whole numbers of at least 1, e.g. range(1, 5)")
    rows = []
    for key, group in profiles.groupby(_GROUP, sort=True):
        step, variant, cpu, threads, max_batch = key
        first = group.iloc[0]
        trace = profile_trace(group)
        for rate, items, detector in _loads(step, pipeline_rate_rps, fanout):
            for count in counts:
                p = predict_step(group, replicas=count, rate_rps=rate, items_per_request=items,
                                 max_batch=int(max_batch), max_queue_delay_ms=float(first.max_queue_delay_ms),
                                 requests=requests)
                rows.append({
                    "step": step, "variant": variant, "model": first.model, "format": first.format,
                    "precision": first.precision, "cpu": float(cpu), "threads": int(threads), "batch": int(max_batch),
                    "replicas": count, "cost": count * float(cpu), "rate_rps": rate, "items_per_request": items,
                    "p50_ms": p.p50_ms, "p95_ms": p.p95_ms, "p99_ms": p.p99_ms,
                    "max_throughput_rps": p.max_throughput_rps, "utilization": p.utilization, "stable": p.stable,
                    "accuracy": (accuracy or {}).get(variant, first.get("accuracy", np.nan)),
                    "source": "predicted", "trace": f"{p.model} over {p.requests} requests; {trace}",
                    "detector_variant": detector, "predicted_p99_ms": p.p99_ms,
                    "predicted_max_throughput_rps": p.max_throughput_rps,
                })
    table = pd.DataFrame(rows, columns=CANDIDATE_COLUMNS)
    if measured is not None and not measured.empty:
        table = _override(table, measured)
    column = f"p{percentile}_ms"
    table["meets_step_sla"] = table["stable"].astype(bool) & (table[column] <= table["step"].map(budgets))
    return table.reset_index(drop=True)


def _key(row: Mapping[str, object]) -> tuple[object, ...]:
    detector = row.get("detector_variant")
    return (str(row["step"]), str(row["variant"]), round(float(row["cpu"]), 4), int(row["threads"]),  # type: ignore[arg-type]
            int(row["batch"]), int(row["replicas"]),  # type: ignore[arg-type]
            "" if detector is None or (isinstance(detector, float) and np.isnan(detector)) else str(detector))


def _override(table: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Measured rows replace the predicted row of the same configuration; the prediction stays beside them."""
    check_columns(measured, [c for c in CONFIG_KEYS if c != "detector_variant"] + ["p99_ms", "trace"],
                  "measured configuration")
    where = {_key(row): index for index, row in zip(table.index, table.to_dict("records"), strict=True)}
    for row in measured.to_dict("records"):
        index = where.get(_key(row))
        if index is None:
            continue  # measured outside the candidate grid (another rate or replica count)
        for column in ("p50_ms", "p95_ms", "p99_ms", "max_throughput_rps", "trace"):
            value = row.get(column)
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                table.at[index, column] = value
        table.at[index, "source"] = "measured"
        table.at[index, "stable"] = bool(row.get("stable", True))
    return table
