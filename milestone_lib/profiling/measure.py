"""Measuring one step configuration on its replicas, and turning the runs into profile and table rows.

A configuration is measured twice: a saturating closed loop (its max throughput, and the service
time of full batches) and a Poisson open loop at the step's rate (its latency percentiles, and the
service time of the small batches a light load forms). Every response carries the batch it ran in
(`batch_size`, stage times, `queue_ms`), so the service time of each batch size comes from the
server's own timing; `overhead_ms` is what a request spends outside the queue and the batch.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..loadgen.stats import LoadResult
from .balanced import run_balanced_open_loop, run_balanced_saturation
from .spec import SweepSpec

__all__ = ["ConfigRun", "measure_config", "measured_row", "profile_rows", "run_record"]

_STAGES = ["preprocess_ms", "inference_ms", "postprocess_ms"]
_OPEN_LOOP_MAX_UTILIZATION = 0.9  # above it an open loop measures a growing queue, not a latency


@dataclass
class ConfigRun:
    """One measured configuration: who it is, how its CPU was enforced, and its two load runs."""

    identity: dict[str, Any]
    """step, variant, model, format, precision, cpu, threads, replicas, max_batch, max_queue_delay_ms,
    detector_variant, accuracy."""
    run_id: str
    rate_rps: float
    items_per_request: float
    enforcement: str
    saturation: LoadResult
    at_rate: LoadResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def max_throughput_rps(self) -> float:
        return float(self.saturation.summary["throughput_rps"])


def measure_config(identity: dict[str, Any], addresses: Sequence[str], payloads: Sequence[bytes], *,
                   items_per_request: float, rate_rps: float, spec: SweepSpec, run_id: str,
                   enforcement: str, duration_s: float | None = None) -> ConfigRun:
    """Saturate the replicas at `addresses`, then (if they can take it) send `rate_rps` Poisson requests."""
    max_batch = int(identity["max_batch"])
    per_replica = 2 * max(1, math.ceil(max_batch / max(items_per_request, 1.0)))  # two full batches in flight
    options = {"warmup_s": spec.warmup_s, "window_s": spec.window_s, "timeout_s": spec.timeout_s}
    saturation = run_balanced_saturation(identity["step"], addresses, payloads, per_replica * len(addresses),
                                         max_windows=spec.max_windows, **options)
    run = ConfigRun(identity, run_id, rate_rps, items_per_request, enforcement, saturation)
    if rate_rps < _OPEN_LOOP_MAX_UTILIZATION * run.max_throughput_rps:
        run.at_rate = run_balanced_open_loop(identity["step"], addresses, payloads, rate_rps,
                                             duration_s=duration_s or spec.duration_s, seed=zlib.crc32(run_id.encode()),
                                             **options)
    else:
        run.notes.append(f"not sent {rate_rps:g} requests/s: above {_OPEN_LOOP_MAX_UTILIZATION:.0%} of the "
                         f"{run.max_throughput_rps:.1f}/s it serves at saturation")
    return run


def _ok(result: LoadResult, step: str) -> pd.DataFrame:
    frame = result.requests
    frame = frame[(frame["window"] >= 0) & (frame["status"] == "ok")]
    if frame.empty or "batch_size" not in frame:
        return pd.DataFrame(columns=["batch_size", "stage_ms", "weight", "items", "overhead_ms"])
    # An item is an image for the detector (its output rows are detections), a crop for the classifier.
    items = 1.0 if step == "detect" else frame["outputs_rows"].fillna(1).astype(float)
    out = pd.DataFrame({"batch_size": frame["batch_size"].astype(int),
                        "stage_ms": frame[_STAGES].fillna(0).sum(axis=1), "items": items})
    # Each request of a batch reports the batch's stages: its share of the batch weighs it.
    out["weight"] = out["items"].clip(lower=1) / out["batch_size"].clip(lower=1)
    out["overhead_ms"] = frame["latency_ms"] - frame["queue_ms"].fillna(0) - out["stage_ms"]
    return out


def _calibration(run: ConfigRun, sat: pd.DataFrame) -> float:
    """How much slower the replicas are at saturation than their p50 stage times say (>= 1).

    Under a CPU quota a batch now and then waits for the next quota period, and request handling
    takes CPU beside the batches; the p50 stage time of the batch size saturation forms would claim
    more throughput than was measured. Scaling that run's times by this factor makes the profile's
    capacity the measured one.
    """
    if sat.empty:
        return 1.0
    weights = sat.groupby("batch_size")["weight"].sum()
    top = int(weights.idxmax())
    p50 = float(sat.loc[sat["batch_size"] == top, "stage_ms"].median())
    items_per_s = float(sat["items"].sum()) / float(run.saturation.summary["duration_s"])
    if p50 <= 0 or items_per_s <= 0:
        return 1.0
    return max(1.0, int(run.identity["replicas"]) * 1000.0 * top / p50 / items_per_s)


def profile_rows(run: ConfigRun) -> list[dict[str, Any]]:
    """Service-profile rows (`schema.PROFILE_COLUMNS`), one per batch size the replica computed."""
    step = run.identity["step"]
    sat = _ok(run.saturation, step)
    light = _ok(run.at_rate, step) if run.at_rate is not None else pd.DataFrame(columns=sat.columns)
    k = _calibration(run, sat)
    frame = pd.concat([sat.assign(stage_ms=sat["stage_ms"] * k, saturated=1.0), light.assign(saturated=0.0)])
    if frame.empty:
        return []
    spent = (light if not light.empty else sat)["overhead_ms"]
    overhead, overhead_p99 = float(spent.median()), float(spent.quantile(0.99))
    windows = int(run.saturation.summary.get("windows", 0)) + int((run.at_rate.summary if run.at_rate else {})
                                                                  .get("windows", 0))
    rows = []
    for batch, group in frame.groupby("batch_size"):
        if group["weight"].sum() < 1:  # less than one whole batch of this size: no service time to speak of
            continue
        p50 = float(group["stage_ms"].median())
        p99 = float(group["stage_ms"].quantile(0.99))
        rows.append({**{c: run.identity[c] for c in ("step", "variant", "model", "format", "precision", "cpu",
                                                        "threads", "max_batch", "max_queue_delay_ms", "accuracy")},
                     "batch": int(batch), "service_ms": p50, "service_ms_p99": max(p99, p50),
                     "items_per_s": 1000.0 * int(batch) / p50, "run_id": run.run_id, "requests": len(group),
                     "windows": windows, "overhead_ms": overhead, "overhead_ms_p99": max(overhead, overhead_p99), "batches": round(group["weight"].sum()),
                     "calibration": k, "enforcement": run.enforcement,
                     "saturation_share": float((group["weight"] * group["saturated"]).sum() / group["weight"].sum())})
    return rows


def measured_row(run: ConfigRun) -> dict[str, Any]:
    """The candidate-table row of a measured configuration, with its trace."""
    at = run.at_rate.summary if run.at_rate is not None else {}
    sat = run.saturation.summary
    ident = run.identity
    trace = (f"run {run.run_id}: saturation {sat['windows']} windows, {sat['measured']} requests "
             f"(stable {sat.get('stable')}); at rate " + (
                 f"{at['windows']} windows, {at['measured']} requests, sent {at['sent']} = ok {at['ok']} + failed "
                 f"{at['failed']} + timeouts {at['timeouts']} (+ warm-up)" if at else "; ".join(run.notes)))
    return {**{c: ident[c] for c in ("step", "variant", "cpu", "threads", "replicas", "detector_variant")},
            "batch": int(ident["max_batch"]), "p50_ms": at.get("p50_ms", math.inf), "p95_ms": at.get("p95_ms", math.inf),
            "p99_ms": at.get("p99_ms", math.inf), "max_throughput_rps": run.max_throughput_rps,
            "stable": bool(at) and at.get("failed", 1) + at.get("timeouts", 1) == 0, "trace": trace,
            "run_id": run.run_id, "enforcement": run.enforcement}


def run_record(run: ConfigRun) -> list[dict[str, Any]]:
    """One row per load run of a configuration: the accounting and the spread behind every number."""
    rows = []
    for kind, result in (("saturation", run.saturation), ("at_rate", run.at_rate)):
        if result is None:
            continue
        s = result.summary
        spread = result.windows["throughput_rps"]
        rows.append({"run_id": run.run_id, "kind": kind, "step": run.identity["step"],
                     "variant": run.identity["variant"], "cpu": run.identity["cpu"],
                     "replicas": run.identity["replicas"], "detector_variant": run.identity["detector_variant"],
                     "sent": s["sent"], "measured": s["measured"], "ok": s["ok"], "failed": s["failed"],
                     "timeouts": s["timeouts"], "windows": s.get("windows"), "stable": s.get("stable"),
                     "window_throughput_spread": float(spread.max() / spread.min() - 1) if len(spread) and
                     spread.min() > 0 else math.nan,
                     "throughput_rps": s["throughput_rps"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                     "send_lag_p99_ms": float(result.requests["send_lag_ms"].quantile(0.99)),
                     "replicas_answered": int(result.requests.loc[result.requests["status"] == "ok", "replica"]
                                              .nunique()) if "replica" in result.requests else 0,
                     "enforcement": run.enforcement, "notes": "; ".join(run.notes)})
    return rows
