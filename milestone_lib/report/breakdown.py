"""Per-step breakdown of pipeline requests' time: queue / compute / network per step, and run comparisons.

Input: `LoadResult.requests` (one row per request, with the gateway's timing parameters
`detect_queue_ms`, `detect_compute_ms`, `detect_network_ms`, `classify_*`, `gateway_ms`,
`total_ms`, and the client's `latency_ms`). The breakdown's parts add up to the end-to-end
latency: the steps' queue + compute + network, the gateway's own time, and the client's share
(`latency_ms - total_ms`: serialisation and the hop to the gateway).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..contracts import STEPS
from ..errors import MilestoneError

__all__ = [
    "PARTS",
    "STEPS",
    "compare_runs",
    "slowest_step",
    "step_breakdown",
    "step_columns",
    "timing_residuals",
]

PARTS = ("queue", "compute", "network")
_ROWS = ("client", "gateway", *STEPS)


def step_columns() -> list[str]:
    """The response parameters that make up `total_ms`: each step's parts, then `gateway_ms`."""
    return [f"{step}_{part}_ms" for step in STEPS for part in PARTS] + ["gateway_ms"]


def _measured_ok(requests: pd.DataFrame) -> pd.DataFrame:
    rows = requests[(requests["status"] == "ok") & (requests["window"] >= 0)]
    missing = [c for c in [*step_columns(), "total_ms"] if c not in rows.columns]
    if rows.empty or missing:
        raise MilestoneError(
            f"no successful measured request carries the gateway's timings (missing: {missing or 'none'}; "
            f"{len(rows)} ok rows); send the load to the pipeline gateway, not to a step server"
        )
    return rows


def timing_residuals(requests: pd.DataFrame) -> pd.DataFrame:
    """Per ok request: `parts_ms` (sum of step parts + gateway), `total_ms`, `latency_ms` and the gaps."""
    rows = _measured_ok(requests)
    parts = rows[step_columns()].fillna(0.0).sum(axis=1)
    return pd.DataFrame({
        "parts_ms": parts,
        "total_ms": rows["total_ms"],
        "latency_ms": rows["latency_ms"],
        "parts_gap_ms": rows["total_ms"] - parts,
        "client_ms": rows["latency_ms"] - rows["total_ms"],
    })


def step_breakdown(requests: pd.DataFrame) -> pd.DataFrame:
    """Mean ms per step and part (rows client, gateway, detect, classify; columns queue, compute, network).

    Means, because means of parts add up to the mean end-to-end latency (percentiles do not);
    `p50_ms` / `p95_ms` give each row's own spread and `share` its part of the mean latency.
    """
    rows = _measured_ok(requests)
    per_request = {
        "client": pd.DataFrame({"queue": 0.0, "compute": 0.0, "network": rows["latency_ms"] - rows["total_ms"]}),
        "gateway": pd.DataFrame({"queue": 0.0, "compute": rows["gateway_ms"], "network": 0.0}),
    }
    for step in STEPS:
        per_request[step] = pd.DataFrame({part: rows[f"{step}_{part}_ms"].fillna(0.0) for part in PARTS})
    table = pd.DataFrame({name: frame.mean() for name, frame in per_request.items()}).T.loc[list(_ROWS)]
    table.columns = [f"{c}_ms" for c in table.columns]
    totals = {name: frame.sum(axis=1) for name, frame in per_request.items()}
    table["total_ms"] = table[[f"{p}_ms" for p in PARTS]].sum(axis=1)
    table["p50_ms"] = [float(totals[name].quantile(0.5)) for name in table.index]
    table["p95_ms"] = [float(totals[name].quantile(0.95)) for name in table.index]
    table["share"] = table["total_ms"] / float(rows["latency_ms"].mean())
    table.index.name = "part_of_pipeline"
    return table


def slowest_step(breakdown: pd.DataFrame) -> str:
    """The pipeline step (detect or classify) with the largest mean time."""
    return str(breakdown.loc[list(STEPS), "total_ms"].idxmax())


def compare_runs(runs: Mapping[str, tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    """A table with one column per run (e.g. before / after a scale): latency, throughput, errors, step times."""
    columns = {}
    for label, (summary, breakdown) in runs.items():
        column = {key: summary.get(key) for key in
                  ("offered_rps", "throughput_rps", "goodput_rps", "p50_ms", "p95_ms", "p99_ms", "mean_ms",
                   "ok", "failed", "timeouts")}
        for row in breakdown.index:
            column[f"{row}_mean_ms"] = float(breakdown.loc[row, "total_ms"])
        for step in STEPS:
            column[f"{step}_queue_ms"] = float(breakdown.loc[step, "queue_ms"])
        columns[label] = column
    table = pd.DataFrame(columns)
    if table.shape[1] == 2:
        first, second = table.columns
        before = pd.to_numeric(table[first], errors="coerce")
        after = pd.to_numeric(table[second], errors="coerce")
        table["change"] = np.where(before.abs() > 0, (after - before) / before.abs(), np.nan)
    table.index.name = "metric"
    return table

