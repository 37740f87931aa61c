"""Checked against reality: deploy a configuration, drive it with Poisson load through the gateway at
the SLA rate, repeat, and compare the measured p99, goodput and SLA attainment with the prediction.

Each configuration is deployed once and loaded `repeats` times (independent Poisson schedules);
the 95% confidence interval of a mean over the repeats uses Student's t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..deploy import Batching, PipelineDeployment, StepDeployment, make_backend
from ..loadgen import PoissonRate, load_images, run_open_loop
from ..profiling import SweepData, candidate_table
from .solution import Configuration

__all__ = ["CheckPlan", "check_plan", "check_summary", "deployment_for", "forecast_p99_ms", "mean_ci",
           "measure_configurations"]

FORECAST_REQUESTS = 30000
"""Simulated requests per step of a forecast: a p99 rests on its 300 slowest, where the candidate table's few
thousand leave it to a few dozen (a quota's rare pauses moved it by 10% between seeds there)."""

# Student's t, two-sided 95%, by degrees of freedom (1..30); beyond 30 the normal 1.96.
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


@dataclass(frozen=True)
class CheckPlan:
    """How much the check measures: repeats, seconds per repeat, and whether the baselines are deployed too."""

    repeats: int
    duration_s: float
    """Measured seconds per repeat: `min_requests` over the repeats at the rate, so that the pooled p99 rests on
    its 10 slowest requests or more (at 20 requests/s a 6 s run has 120, whose p99 is nearly the largest one)."""
    warmup_s: float
    baselines: bool
    min_requests: int = 0

    def targets(self, configurations: Mapping[str, Configuration]) -> dict[str, Configuration]:
        """The configurations to deploy: the optimum first, then (if planned) every baseline."""
        chosen = {k: v for k, v in configurations.items() if k == "optimum"}
        if self.baselines:
            chosen.update({k: v for k, v in configurations.items() if k != "optimum"})
        return chosen


def check_plan(*, smoke: bool, rate_rps: float, repeats: int = 3, min_requests: int = 1000, warmup_s: float = 2.0,
               baselines: bool = True) -> CheckPlan:
    """The check of a run: every deployed configuration gets `min_requests` over `repeats` runs at `rate_rps`;
    a smoke run measures the optimum once, briefly (3 s, about 10 s with its deployment)."""
    if rate_rps <= 0 or repeats < 1 or min_requests < 1:
        raise ValueError(f"check plan: rate_rps={rate_rps!r}, repeats={repeats!r} and min_requests={min_requests!r} "
                         "must all be positive, e.g. rate_rps=20, repeats=3, min_requests=1000")
    if smoke:
        return CheckPlan(repeats=1, duration_s=3.0, warmup_s=min(warmup_s, 1.0), baselines=False)
    return CheckPlan(repeats=repeats, duration_s=math.ceil(min_requests / (rate_rps * repeats)), warmup_s=warmup_s,
                     baselines=baselines, min_requests=min_requests)


def _threads(step: Mapping[str, Any]) -> int:
    """A chosen step's intra-op threads: as chosen, else one per whole CPU (at least one)."""
    return int(step.get("threads") or max(1, math.ceil(float(step["cpu"]))))


def _measured_row(sweep: SweepData, step: str, values: Mapping[str, Any], detector: str) -> pd.Series | None:
    """The sweep's own measurement of this step configuration at the SLA rate, if it measured it."""
    c = sweep.candidates
    rows = c[(c["step"] == step) & (c["variant"] == values["variant"]) & np.isclose(c["cpu"], float(values["cpu"]))
             & (c["threads"] == _threads(values)) & (c["batch"] == int(values["batch"]))
             & (c["replicas"] == int(values["replicas"])) & (c["source"] == "measured")]
    if step == "classify":
        rows = rows[rows["detector_variant"] == detector]
    return None if rows.empty else rows.iloc[0]


def forecast_p99_ms(config: Configuration, sweep: SweepData, *, rate_rps: float,
                    requests: int = FORECAST_REQUESTS) -> float:
    """The forecast the check holds the deployed pipeline against: the end-to-end p99 of the chosen steps.

    Each step's p50 and p99: the sweep's measurement of that very configuration where it measured it at
    this rate (its quota's pauses included, which the model underrates at 0.5 CPU: 10 ms modelled against
    15 ms measured for yolov8n-96 INT8), else the queueing model at `requests` simulated requests. The steps
    are independent, so their slow requests rarely coincide: the forecast is the medians added plus the
    root of the squared tails (p99 - p50) added, not the p99s added (the SLA rule's bound does that).
    NaN without a profile."""
    medians, tails = 0.0, 0.0
    same_rate = bool(np.isclose(rate_rps, sweep.sla.rate_rps))
    for step, values in (("detect", config.detect), ("classify", config.classify)):
        row = _measured_row(sweep, step, values, config.detect["variant"]) if same_rate else None
        if row is None:
            p = sweep.profiles
            rows = p[(p["step"] == step) & (p["variant"] == values["variant"])
                     & np.isclose(p["cpu"], float(values["cpu"])) & (p["threads"] == _threads(values))
                     & (p["max_batch"] == int(values["batch"]))]
            if rows.empty:
                return math.nan
            table = candidate_table(rows, pipeline_rate_rps=rate_rps, fanout=sweep.fanout,
                                    replicas=[int(values["replicas"])], requests=requests)
            if step == "classify":
                table = table[table["detector_variant"] == config.detect["variant"]]
            if table.empty:
                return math.nan
            row = table.iloc[0]
        p50, p99 = float(row["p50_ms"]), float(row["p99_ms"])
        medians += p50
        tails += max(0.0, p99 - p50) ** 2
    return medians + math.sqrt(tails)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% confidence interval); the half-width is NaN for fewer than 2 values."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(data):
        return math.nan, math.nan
    if len(data) < 2:
        return float(data.mean()), math.nan
    t = _T95[len(data) - 2] if len(data) - 1 <= len(_T95) else 1.96
    return float(data.mean()), float(t * data.std(ddof=1) / math.sqrt(len(data)))


def deployment_for(config: Configuration, *, variants_dir: Path | None = None,
                   max_queue_delay_ms: float = 2.0) -> PipelineDeployment:
    """The `PipelineDeployment` of a configuration: variant, replicas, cpu, threads and batch per step."""
    steps = []
    for step, values in (("detect", config.detect), ("classify", config.classify)):
        delay = values.get("max_queue_delay_ms")
        steps.append(StepDeployment(
            step=step, variant=values["variant"],  # type: ignore[arg-type]
            folder=Path(variants_dir) / values["variant"] if variants_dir is not None else None,
            replicas=int(values["replicas"]), cpu=float(values["cpu"]),
            threads=_threads(values),
            batching=Batching(max_batch_size=int(values["batch"]),
                              max_queue_delay_ms=float(delay) if delay is not None else max_queue_delay_ms)))
    return PipelineDeployment(name="optimize-check", steps=steps)


def measure_configurations(configs: Mapping[str, Configuration], *, rate_rps: float, sla_ms: float,
                           duration_s: float, warmup_s: float = 2.0, repeats: int = 3, backend: str = "local",
                           variants_dir: Path | None = None, dataset: str | None = None, timeout_s: float = 10.0,
                           backend_options: Mapping[str, Any] | None = None,
                           durations: Mapping[str, float] | None = None,
                           log: Callable[[str], None] = print) -> pd.DataFrame:
    """One row per (configuration, repeat): measured p50/p95/p99, goodput, SLA attainment, accounting.

    `durations` gives some configurations other measured seconds than `duration_s`. The deployment stays up
    between repeats, so only the first one warms it up for `warmup_s`; the others wait half a second at most.
    Configurations with the same deployment are measured once and their rows shared (`same_as`).
    """
    rows: list[dict[str, Any]] = []
    done: dict[str, str] = {}
    for name, config in configs.items():
        spec = deployment_for(config, variants_dir=variants_dir)
        key = spec.model_dump_json()
        if key in done:
            rows += [{**r, "configuration": name, "same_as": done[key]} for r in rows if r["configuration"] == done[key]
                     and not r.get("same_as")]
            continue
        done[key] = name
        log(f"[check] {name}: {config.label}")
        with make_backend(backend, **dict(backend_options or {})) as deployed:
            state = deployed.deploy(spec)
            images = load_images(dataset, variant_folder=deployed.variant_folder("detect"))
            latencies: list[pd.Series] = []
            first = len(rows)
            for repeat in range(repeats):
                seconds = float((durations or {}).get(name, duration_s))
                result = run_open_loop(deployed.endpoints().gateway, images, PoissonRate(rate_rps, seed=repeat),
                                       duration_s=seconds, warmup_s=warmup_s if repeat == 0 else min(warmup_s, 0.5),
                                       timeout_s=timeout_s, sla_ms=sla_ms,
                                       progress=False, overhead_requests=50,
                                       # The generator's floor is the same for every repeat: measured once.
                                       measure_overhead=repeat == 0)
                s = result.summary
                measured = result.requests[(result.requests["window"] >= 0) & (result.requests["status"] == "ok")]
                latencies.append(measured["latency_ms"])
                rows.append({"configuration": name, "repeat": repeat, "label": config.label,
                             "predicted_p99_ms": config.predicted_p99_ms,
                             "predicted_steps_p99_ms": config.predicted_p99_ms - config.gateway_reserve_ms,
                             **{k: s.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "goodput_rps", "throughput_rps",
                                                      "sla_attainment", "sent", "ok", "failed", "timeouts",
                                                      "generator_overhead_ms", "schedule_kept")},
                             "meets_sla": bool(s.get("p99_ms", math.inf) <= sla_ms),
                             "warnings": "; ".join(state.warnings), "same_as": ""})
                log(f"[check]   repeat {repeat}: p99 {s.get('p99_ms', math.nan):.1f} ms, goodput "
                    f"{s.get('goodput_rps', math.nan):.1f} rps, attainment {s.get('sla_attainment', math.nan):.3f}")
            pooled = pd.concat(latencies) if latencies else pd.Series(dtype=float)
            for row in rows[first:]:  # one p99 over every answered request of the repeats: the estimate to compare
                row["pooled_p99_ms"] = float(pooled.quantile(0.99)) if len(pooled) else math.nan
    return pd.DataFrame(rows)


def check_summary(measurements: pd.DataFrame, *, gateway_overhead_ms: float = 0.0,
                  forecasts: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per configuration: forecast vs measured p99, error, goodput and attainment over every repeat.

    The forecast is the steps' end-to-end p99 (`forecasts`, by configuration, from `forecast_p99_ms`; else the
    candidate rows' p99s the optimizer used, added) plus the gateway's measured overhead (`rule.gateway_overhead_ms`);
    the SLA rule's reserve is a budget, not a forecast. The measured p99 it is held against is the p99 of
    every answered request of the repeats (`pooled_p99_ms`, where measured); the mean of the repeats' p99
    and its 95% CI show how much one run's p99 varies. `rule_bound_held`: the same measured p99 is within the
    SLA rule's p99, the bound the optimizer used.
    """
    out = []
    for name, part in measurements.groupby("configuration", sort=False):
        p99, p99_ci = mean_ci(part["p99_ms"].tolist())
        p99_median = float(part["p99_ms"].median())
        pooled = float(part["pooled_p99_ms"].iloc[0]) if "pooled_p99_ms" in part else math.nan
        measured = pooled if not math.isnan(pooled) else p99
        goodput, goodput_ci = mean_ci(part["goodput_rps"].tolist())
        attain, attain_ci = mean_ci(part["sla_attainment"].tolist())
        predicted = float(part["predicted_p99_ms"].iloc[0])
        steps = float(part["predicted_steps_p99_ms"].iloc[0])
        modelled = float((forecasts or {}).get(str(name), math.nan))
        forecast = (steps if math.isnan(modelled) else modelled) + max(0.0, float(gateway_overhead_ms or 0.0))
        out.append({"configuration": name, "label": part["label"].iloc[0], "repeats": len(part),
                    "predicted_steps_p99_ms": steps, "forecast_p99_ms": forecast, "predicted_p99_ms": predicted,
                    "measured_p99_ms": measured, "repeat_p99_mean_ms": p99, "p99_ci95_ms": p99_ci,
                    "measured_p99_median_ms": p99_median,
                    "prediction_error": (measured - forecast) / forecast if forecast else math.nan,
                    # The rule bounds the pipeline's p99: held against the pooled estimate (one repeat's p99 is
                    # its few slowest requests); how many repeats stayed within it is shown beside.
                    "rule_bound_held": bool(measured <= predicted),
                    "repeats_within_rule": int((part["p99_ms"] <= predicted).sum()),
                    "goodput_rps": goodput, "goodput_ci95": goodput_ci, "sla_attainment": attain,
                    "attainment_ci95": attain_ci, "meets_sla_every_repeat": bool(part["meets_sla"].all()),
                    "requests": int(part["sent"].sum()), "failed": int(part["failed"].sum() + part["timeouts"].sum())})
    return pd.DataFrame(out)
