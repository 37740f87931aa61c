"""Which variants a sweep measures: each step's accuracy-vs-latency front from notebook 01's measurements.

A variant is dominated when another servable variant of the same step is faster (model latency per image,
batch 1, one thread: the `Latency ms` of notebook 01's variant table) and at least as accurate, within
`accuracy_tolerance` (the resolution of an accuracy measured on a small validation split: yolov8s-160's fp32
and INT8-static detectors differ by 0.0007 mAP50-95, which is no difference). The front is swept; when it holds
fewer than `min_count` variants, the next fronts fill it up (the fp32 references usually), so each step still
has the assignment's four versions. Every other variant is written out with what dominates it, or why it cannot
be swept (not servable on CPU, not built).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..contracts import VariantManifest
from ..contracts.steps import STEPS

__all__ = ["ACCURACY_TOLERANCE", "LATENCY_KEY", "SELECTION_COLUMNS", "step_accuracy_metric", "swept_variants",
           "variant_selection"]

ACCURACY_TOLERANCE = 0.005
"""Accuracy differences below this are measurement noise (a few validation images), not a ranking."""
LATENCY_KEY = "b1_t1"
"""The model latency the front is drawn on: ms per image at batch 1, one thread (notebook 01's `Latency ms`)."""
SELECTION_COLUMNS = ["step", "variant", "format", "precision", "input_px", "metric", "accuracy", "latency_ms",
                     "front", "swept", "dominated_by", "reason"]


def step_accuracy_metric(step: str) -> str:
    """The accuracy a step's variants are ranked by: the detector's mAP50-95 (what end-to-end mAP follows),
    the classifier's top-1."""
    return "mAP50-95" if step == "detect" else "top1"


def _fronts(rows: pd.DataFrame, tolerance: float) -> pd.Series:
    """Front layer of each row (1: not dominated; 2: not dominated once layer 1 is removed; ...)."""
    layer = pd.Series(0, index=rows.index)
    left = rows
    depth = 0
    while not left.empty:
        depth += 1
        dominated = [any((o.latency_ms < r.latency_ms) and (o.accuracy >= r.accuracy - tolerance)
                         for o in left.itertuples() if o.Index != r.Index) for r in left.itertuples()]
        front = left[[not d for d in dominated]]
        layer[front.index] = depth
        left = left.drop(front.index)
    return layer


def _dominator(rows: pd.DataFrame, row: pd.Series, tolerance: float) -> pd.Series | None:
    """The fastest variant that is faster and at least as accurate as `row` (usually its INT8 twin), swept first."""
    better = rows[(rows.latency_ms < row.latency_ms) & (rows.accuracy >= row.accuracy - tolerance)]
    if better.empty:
        return None
    return better.sort_values(["swept", "latency_ms"], ascending=[False, True]).iloc[0]


def variant_selection(manifests: Mapping[str, VariantManifest], *, min_count: int = 4,
                      accuracy_tolerance: float = ACCURACY_TOLERANCE, servable: tuple[str, ...] = ("onnx", "pytorch"),
                      unavailable: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per variant (`SELECTION_COLUMNS`): whether the sweep measures it (`swept`), its front layer, and for
    the others what dominates it or why it is left out. `unavailable` adds notebook 01's variants that were not
    built (its variant table's rows whose `Status` is not "built")."""
    rows = []
    for m in manifests.values():
        metric = step_accuracy_metric(m.step)
        rows.append({"step": m.step, "variant": m.name, "format": m.format, "precision": m.precision,
                     "input_px": m.imgsz, "metric": metric, "accuracy": m.accuracy.get(metric, float("nan")),
                     "latency_ms": m.latency_ms.get(LATENCY_KEY, float("nan")), "servable": m.format in servable})
    table = pd.DataFrame(rows, columns=[*SELECTION_COLUMNS[:8], "servable"])
    table["front"], table["swept"], table["dominated_by"], table["reason"] = pd.NA, False, "", ""
    parts = []
    for step in STEPS:
        rows = table[table.step == step].copy()
        measured = rows.servable & rows.accuracy.notna() & rows.latency_ms.notna()
        rows.loc[~rows.servable, "reason"] = rows.loc[~rows.servable, "format"].map(
            lambda f: f"not servable: a CPU step server runs {', '.join(servable)}, not {f}")
        rows.loc[rows.servable & ~measured, "reason"] = "not measured: notebook 01 wrote no accuracy or latency"
        ranked = rows[measured]
        if not ranked.empty:
            layers = _fronts(ranked[["latency_ms", "accuracy"]], accuracy_tolerance)
            rows.loc[layers.index, "front"] = layers
            order = ranked.assign(front=layers).sort_values(["front", "latency_ms"])
            swept = order[order.front == 1].index.tolist()
            swept += [i for i in order.index if i not in swept][:max(0, min_count - len(swept))]
            rows.loc[swept, "swept"] = True
            for i in ranked.index.difference(swept):
                top = _dominator(rows, rows.loc[i], accuracy_tolerance)
                if top is not None:
                    rows.loc[i, "dominated_by"] = top.variant
                    rows.loc[i, "reason"] = (f"dominated: {top.variant} is {rows.loc[i, 'latency_ms'] / top.latency_ms:.2f}x "
                                             f"faster at {top.metric} {top.accuracy:.3f} (this one {rows.loc[i, 'accuracy']:.3f})")
                else:
                    rows.loc[i, "reason"] = f"behind the front (layer {int(rows.loc[i, 'front'])}) and not needed for {min_count}"
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True) if parts else table
    if unavailable is not None and not unavailable.empty and "Status" in unavailable:
        missing = unavailable[~unavailable["Status"].astype(str).eq("built")
                              & ~unavailable["Variant"].isin(out["variant"])]
        out = pd.concat([out, pd.DataFrame({
            "step": missing["Step"], "variant": missing["Variant"], "format": missing.get("Format"),
            "precision": missing.get("Precision"), "input_px": missing.get("Input px"), "swept": False,
            "reason": missing["Status"].astype(str)})], ignore_index=True)
    out["swept"] = out["swept"].astype(bool)
    return out[SELECTION_COLUMNS].sort_values(["step", "swept", "front", "latency_ms"],
                                              ascending=[False, False, True, True]).reset_index(drop=True)


def swept_variants(manifests: Mapping[str, VariantManifest], swept: Mapping[str, list[str]], *,
                   reports_dir: Path | None = None, min_count: int = 4,
                   accuracy_tolerance: float = ACCURACY_TOLERANCE) -> pd.DataFrame:
    """`variant_selection` made true to what a sweep measured (`swept`: each step's variants, as resolved):
    variants named by hand are swept, front variants left out say so. Notebook 01's variant table in
    `reports_dir` (`variants.csv`), where there is one, adds the variants that were not built."""
    table_csv = Path(reports_dir) / "variants.csv" if reports_dir is not None else None
    unavailable = pd.read_csv(table_csv) if table_csv is not None and table_csv.is_file() else None
    out = variant_selection(manifests, min_count=min_count, accuracy_tolerance=accuracy_tolerance,
                            unavailable=unavailable)
    measured = {name for names in swept.values() for name in names}
    added = out.variant.isin(measured) & ~out.swept
    dropped = ~out.variant.isin(measured) & out.swept
    out.loc[added, "reason"] = ""
    out.loc[dropped, "reason"] = "on the front, but not in this sweep's variants (a parameter, or a smoke run)"
    out["swept"] = out.variant.isin(measured)
    return out
