"""From a sweep's rows to the answers: candidates, the per-step tables, the best configuration in
words, and the pipeline table (detector x classifier x scale)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .candidates import candidate_table
from .sla import SlaSpec

__all__ = ["STEP_TABLE_COLUMNS", "best_configuration", "describe_best", "pipeline_table", "step_table",
           "sweep_candidates"]

STEP_TABLE_COLUMNS = {
    "variant": "Variant", "format": "Format", "precision": "Precision", "replicas": "Scale",
    "cpu": "CPU per replica", "cost": "Cost", "p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms",
    "max_throughput_rps": "Max throughput (req/s)", "accuracy": "Accuracy", "meets_step_sla": "Meets step SLA",
    "source": "Source", "detector_variant": "Upstream detector", "predicted_p99_ms": "Predicted p99 ms",
    "trace": "Trace",
}


def sweep_candidates(result, *, replicas: list[int] | None = None, rate_rps: float | None = None) -> pd.DataFrame:
    """`candidate_table` of a `SweepResult`: its profiles, fan-out and measured rows, at its SLA."""
    sla: SlaSpec = result.spec.sla
    return candidate_table(result.profiles, pipeline_rate_rps=rate_rps or sla.rate_rps, fanout=result.fanout,
                           replicas=replicas or result.spec.replicas, step_budget_ms=sla.step_budgets(),
                           percentile=sla.percentile, measured=result.measured)


def best_configuration(candidates: pd.DataFrame, step: str, *, detector_variant: str | None = None) -> pd.Series | None:
    """The step's configuration within its budget at least cost; ties to the more accurate, then the faster."""
    rows = candidates[(candidates["step"] == step) & candidates["meets_step_sla"].astype(bool)]
    if detector_variant is not None and step == "classify":
        rows = rows[rows["detector_variant"] == detector_variant]
    if rows.empty:
        return None
    ordered = rows.assign(_acc=-rows["accuracy"].fillna(-1.0)).sort_values(["cost", "_acc", "p99_ms"])
    return ordered.drop(columns="_acc").iloc[0]


def describe_best(best: pd.Series | None, step: str, sla: SlaSpec) -> str:
    """The best configuration of `step` in one sentence (or why there is none)."""
    budget = sla.step_budgets()[step]
    if best is None:
        return (f"{step}: no configuration keeps p{sla.percentile} within its {budget:.0f} ms budget at "
                f"{sla.rate_rps:g} requests/s; add replicas or CPU, or relax the SLA.")
    upstream = f", fed by {best['detector_variant']}" if step == "classify" else ""
    return (f"{step}: {best['variant']} on {int(best['replicas'])} replica(s) x {best['cpu']:g} CPU (cost "
            f"{best['cost']:g} CPU{upstream}) keeps p{sla.percentile} at {best[sla.quantile_column]:.1f} ms within "
            f"its {budget:.0f} ms budget at {sla.rate_rps:g} requests/s; accuracy {best['accuracy']:.3f}; "
            f"{best['source']}.")


def step_table(candidates: pd.DataFrame, step: str, *, detector_variant: str | None = None) -> pd.DataFrame:
    """The step's table (Variant, Format, Precision, Scale, CPU per replica, Cost, p50/p95/p99, max
    throughput, Accuracy, meets step SLA, source, trace); the classifier's under one upstream detector."""
    rows = candidates[candidates["step"] == step]
    if step == "classify" and detector_variant is not None:
        rows = rows[rows["detector_variant"] == detector_variant]
    columns = [c for c in STEP_TABLE_COLUMNS if c != "detector_variant" or step == "classify"]
    table = rows.sort_values(["variant", "cpu", "replicas"])[columns].rename(columns=STEP_TABLE_COLUMNS)
    return table.reset_index(drop=True)


def _gateway_ms(candidates: pd.DataFrame, measured_pipeline: pd.DataFrame) -> float:
    """What the pipeline adds to its steps, from a pair measured end to end: e2e p50 minus the steps' p50."""
    if measured_pipeline is None or measured_pipeline.empty:
        return 0.0
    row = measured_pipeline.iloc[0]
    one = candidates[(candidates["replicas"] == 1) & (candidates["source"] == "measured")]
    d = one[(one["step"] == "detect") & (one["variant"] == row["detector_variant"]) & (one["cpu"] == row["detect_cpu"])]
    c = one[(one["step"] == "classify") & (one["variant"] == row["classifier_variant"])
            & (one["cpu"] == row["classify_cpu"]) & (one["detector_variant"] == row["detector_variant"])]
    if d.empty or c.empty:
        return 0.0
    return max(0.0, float(row["p50_ms"] - d.iloc[0]["p50_ms"] - c.iloc[0]["p50_ms"]))


def _pair_row(d: pd.Series | None, c: pd.Series | None, base: dict, gateway_ms: float, sla: SlaSpec) -> dict:
    if d is None or c is None:
        return {**base, "cost": math.nan, "p50_ms": math.nan, "p99_ms": math.nan, "meets_sla": False,
                "scale": base["scale"] + ": no allocation meets both step budgets"}
    p99 = float(d["p99_ms"] + c["p99_ms"] + gateway_ms)
    return {**base, "scale": f"detect {int(d['replicas'])}x{d['cpu']:g} + classify {int(c['replicas'])}x{c['cpu']:g}",
            "cost": float(d["cost"] + c["cost"]), "p50_ms": float(d["p50_ms"] + c["p50_ms"] + gateway_ms),
            "p99_ms": p99, "meets_sla": p99 <= sla.latency_ms}


def pipeline_table(candidates: pd.DataFrame, sla: SlaSpec, *, pipeline_accuracy: pd.DataFrame | None = None,
                   measured_pipeline: pd.DataFrame | None = None) -> pd.DataFrame:
    """Detector x classifier x scale: for each pair, the cheapest configuration of each step within its
    budget at every replica count (and overall); end-to-end latency (predicted: the steps' percentiles
    added, plus what the gateway adds as measured), cost and mAP; pairs measured through the gateway
    follow as `measured` rows."""
    gateway_ms = _gateway_ms(candidates, measured_pipeline)
    accuracy = {}
    if pipeline_accuracy is not None and not pipeline_accuracy.empty:
        accuracy = {(r["detector"], r["classifier"]): (r.get("mAP50-95", math.nan), r.get("mAP50", math.nan))
                    for r in pipeline_accuracy.to_dict("records")}
    rows = []
    detectors = sorted(candidates.loc[candidates["step"] == "detect", "variant"].unique())
    classifiers = sorted(candidates.loc[candidates["step"] == "classify", "variant"].unique())
    scales: list[int | None] = [None, *sorted(candidates["replicas"].unique())]
    model = f"step percentiles added + {gateway_ms:.1f} ms gateway (an upper bound of the tail)"
    for detector in detectors:
        for classifier in classifiers:
            m = accuracy.get((detector, classifier), (math.nan, math.nan))
            for replicas in scales:
                pool = candidates if replicas is None else candidates[candidates["replicas"] == replicas]
                d = best_configuration(pool[pool["variant"] == detector], "detect")
                c = best_configuration(pool[pool["variant"] == classifier], "classify", detector_variant=detector)
                base = {"detector_variant": detector, "classifier_variant": classifier, "e2e_mAP50-95": m[0],
                        "e2e_mAP50": m[1], "source": "predicted", "model": model,
                        "scale": "cheapest" if replicas is None else f"{replicas} replica(s) per step"}
                row = _pair_row(d, c, base, gateway_ms, sla)
                row["scale_choice"] = base["scale"]
                rows.append(row)
    table = pd.DataFrame(rows)
    if measured_pipeline is not None and not measured_pipeline.empty:
        measured = measured_pipeline.assign(
            scale=lambda f: "detect " + f["detect_replicas"].astype(str) + "x" + f["detect_cpu"].map("{:g}".format)
            + " + classify " + f["classify_replicas"].astype(str) + "x" + f["classify_cpu"].map("{:g}".format),
            meets_sla=lambda f: f[sla.quantile_column] <= sla.latency_ms, model="through the gateway",
            scale_choice="measured")
        measured["e2e_mAP50-95"] = [accuracy.get((r.detector_variant, r.classifier_variant), (np.nan,))[0]
                                    for r in measured.itertuples()]
        table = pd.concat([table, measured[[c for c in measured.columns if c in set(table.columns) | {"trace"}]]],
                          ignore_index=True)
    table = table.drop_duplicates(subset=["detector_variant", "classifier_variant", "scale", "source"])
    return table.sort_values(["meets_sla", "e2e_mAP50-95", "cost"], ascending=[False, False, True]).reset_index(drop=True)
