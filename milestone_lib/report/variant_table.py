"""The tables of a variant build (one row per variant, unavailable ones included; fan-out, pipeline accuracy,
stages) and deliverable 4's table: per step, the best Variant / Scale / Latency / Cost / Accuracy rows of the sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..containers.publish import container_cell
from ..contracts import VariantManifest
from ..variants.build import BuildResult
from ..variants.speed import latency_key

__all__ = ["BEST_ROWS_COLUMNS", "FANOUT_COLUMNS", "best_rows_table", "fanout_table", "pipeline_accuracy_table",
           "stage_table", "variant_table"]

BEST_ROWS_COLUMNS = ["Step", "Variant", "Scale (replicas × CPU)", "Latency (p99 ms)", "Cost (CPUs)", "Accuracy"]
"""Deliverable 4's columns, as `best_rows_table` writes them (Source added with `with_source=True`)."""

FANOUT_COLUMNS = ["crops_per_image_mean", "crops_per_image_std"]
"""Detections per val image at the serving threshold (what the classify step receives), per detector variant."""


def _accuracy(manifest: VariantManifest) -> tuple[str, float]:
    if manifest.step == "detect":
        return "mAP50", manifest.accuracy.get("mAP50", float("nan"))
    return "top1", manifest.accuracy.get("top1", float("nan"))


def variant_table(result: BuildResult, *, batch: int = 1, threads: int = 1) -> pd.DataFrame:
    """Variant, Step, Model, Input px, Format, Precision, Size MB, Params, Accuracy, fan-out, Latency, change vs fp32.

    `Input px` is the network input resolution; the detector's fan-out (`crops_per_image_mean` /
    `_std`) is the number of detections per val image at the serving threshold. `Latency ms` is
    model time per image at `batch` and `threads`; `Speedup vs fp32` and `ΔAccuracy vs fp32`
    compare each variant with the ONNX fp32 variant of the same model at the same input size.
    """
    manifests = result.manifests()
    key = latency_key(batch, threads)
    rows: list[dict[str, Any]] = []
    for m in manifests:
        metric, value = _accuracy(m)
        row: dict[str, Any] = {
            "Variant": m.name, "Step": m.step, "Model": f"{m.family}-{m.size}", "Input px": m.imgsz,
            "Format": m.format, "Precision": m.precision, "Size MB": m.size_bytes / 1e6,
            "Params M": m.parameters / 1e6, "Metric": metric, "Accuracy": value,
            "mAP50-95": m.accuracy.get("mAP50-95"),
            **{column: m.accuracy.get(column) for column in FANOUT_COLUMNS},
            "Latency ms": m.latency_ms.get(key),
        }
        for other, ms in sorted(m.latency_ms.items()):
            if other != key:
                row[f"Latency ms {other}"] = ms
        row["Status"] = "built"
        row["Container"] = container_cell(m.name, m.format)  # issue 12: the image, or why none
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        twin = table["Model"] + "@" + table["Input px"].astype(str)
        fp32 = (table["Format"] == "onnx") & (table["Precision"] == "fp32")
        baseline = table[fp32].set_index(twin[fp32])
        table["Speedup vs fp32"] = twin.map(baseline["Latency ms"]) / table["Latency ms"]
        table["ΔAccuracy vs fp32"] = table["Accuracy"] - twin.map(baseline["Accuracy"])
    missing = [{"Variant": u["variant"], "Step": u["step"], "Model": u.get("model"), "Format": u["format"].split("-")[0],
                "Precision": u["format"].split("-", 1)[1], "Input px": int(u.get("input_px", 0)) or None,
                "Status": f"unavailable: {u['reason']}"}
               for u in result.unavailable]
    if missing:
        table = pd.concat([table, pd.DataFrame(missing)], ignore_index=True)
    if "Input px" in table:
        table["Input px"] = table["Input px"].astype("Int64")
    return table


def fanout_table(variants: pd.DataFrame) -> pd.DataFrame:
    """`detector_variant, input_px, crops_per_image_mean, crops_per_image_std` of every built detector variant.

    Takes the `variant_table`; this is the table the sizing of the classify step reads.
    """
    detectors = variants[(variants["Step"] == "detect") & (variants["Status"] == "built")]
    table = detectors[["Variant", "Input px", *FANOUT_COLUMNS]].rename(
        columns={"Variant": "detector_variant", "Input px": "input_px"})
    return table.reset_index(drop=True)


def pipeline_accuracy_table(result: BuildResult) -> pd.DataFrame:
    """End-to-end mAP of every detector × classifier pair, best first."""
    table = pd.DataFrame(result.pipeline_accuracy)
    if table.empty:
        return table
    return table.sort_values(["mAP50-95", "mAP50"], ascending=False).reset_index(drop=True)


def stage_table(result: BuildResult) -> pd.DataFrame:
    """Seconds spent in each build stage, with the total."""
    table = pd.DataFrame(sorted(result.stage_seconds.items(), key=lambda kv: -kv[1]), columns=["Stage", "Seconds"])
    return pd.concat([table, pd.DataFrame([{"Stage": "total", "Seconds": table["Seconds"].sum()}])],
                     ignore_index=True)



def best_rows_table(step_tables: Mapping[str, pd.DataFrame], *, budgets_ms: Mapping[str, float] | None = None,
                    per_step: int = 4, max_rows: int = 8, with_source: bool = False) -> pd.DataFrame:
    """Deliverable 4 in one table: per step, the best rows of notebook 04's sweep that meet the step's budget.

    `step_tables` maps each step, in pipeline order, to its `04_<step>_table.csv` (Variant, Scale = replicas,
    CPU per replica, Cost, p99 ms, Accuracy, Meets step SLA, Source, ...). A row meets the budget by its
    `Meets step SLA` column, else by `p99 ms` <= `budgets_ms[step]`. Each variant counts once, at its cheapest
    row within budget (then its lowest p99); the most accurate come first, `per_step` of them, at most
    `max_rows` in all. Where a step's rows were measured behind several upstream variants (`Upstream
    detector`), only those behind the previous step's best variant are compared, so every row has the same load.
    """
    per = max(1, min(per_step, max_rows // max(1, len(step_tables))))
    parts: list[pd.DataFrame] = []
    previous_best: str | None = None
    for step, table in step_tables.items():
        rows = _within_budget(table, (budgets_ms or {}).get(step))
        if "Upstream detector" in rows and rows["Upstream detector"].nunique() > 1:
            behind = rows["Upstream detector"] == previous_best
            rows = rows[behind] if behind.any() else rows[rows["Upstream detector"] == rows["Upstream detector"].mode()[0]]
        best = (rows.sort_values(["Cost", "p99 ms"]).drop_duplicates("Variant")
                .sort_values(["Accuracy", "Cost", "p99 ms"], ascending=[False, True, True]).head(per))
        if best.empty:
            continue
        previous_best = str(best["Variant"].iloc[0])
        part = pd.DataFrame({"Step": step, "Variant": best["Variant"],
                             "Scale (replicas × CPU)": [f"{int(r)} × {c:g}" for r, c in zip(best["Scale"],
                                                                                         best["CPU per replica"])],
                             "Latency (p99 ms)": best["p99 ms"].astype(float), "Cost (CPUs)": best["Cost"].astype(float),
                             "Accuracy": best["Accuracy"].astype(float)})
        if with_source and "Source" in best:
            part["Source"] = best["Source"]
        parts.append(part)
    columns = BEST_ROWS_COLUMNS + (["Source"] if with_source else [])
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True).head(max_rows).reindex(columns=columns)


def _within_budget(table: pd.DataFrame, budget_ms: float | None) -> pd.DataFrame:
    needed = {"Variant", "Scale", "CPU per replica", "Cost", "p99 ms", "Accuracy"}
    if not needed <= set(table.columns):
        return table.iloc[0:0].reindex(columns=sorted(needed))
    rows = table.dropna(subset=["p99 ms", "Accuracy", "Cost"])
    if "Meets step SLA" in rows:
        meets = rows["Meets step SLA"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))
        return rows[meets]
    return rows[rows["p99 ms"] <= budget_ms] if budget_ms is not None else rows
