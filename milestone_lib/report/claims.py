"""Slide titles that are claims: each a sentence built from the recorded numbers, never a topic label.

Every function takes what a notebook saved (tables, figures, the T3 answers) and returns the claim, or
None when the numbers it needs are not there (the deck then falls back to a plain caption). The same
claims head the slides and the "story in brief" of report.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["answer_claim", "baselines_claim", "best_rows_claim", "check_claim", "configuration_label",
           "how_many_claim", "number", "pareto_claim", "registry_claim", "slowest_step_claim",
           "sweep_plot_claim", "upstream_claim", "variants_claim", "what_determines_claim"]


def number(value: Any, digits: int = 3) -> str:
    """A number for a title: thousands separated, integers bare, others to `digits` significant digits."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    value = float(value)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}g}"


def configuration_label(row: Mapping[str, Any], step: str) -> str:
    """`yolov8s-160-onnx-fp32 2×0.25 b8`: a step's variant, replicas × CPU per replica and batch, from a flat row."""
    variant = row.get(f"{step}_variant")
    if variant is None or (isinstance(variant, float) and pd.isna(variant)):
        return ""
    label = str(variant)
    if row.get(f"{step}_replicas") is not None and not pd.isna(row.get(f"{step}_replicas")):
        label += f" {int(row[f'{step}_replicas'])}×{float(row[f'{step}_cpu']):g}"
    if row.get(f"{step}_batch") is not None and not pd.isna(row.get(f"{step}_batch")):
        label += f" b{int(row[f'{step}_batch'])}"
    return label


def answer_claim(chosen: Mapping[str, Any], sla_ms: Any, measured_p99_ms: float | None) -> str:
    """`The answer: 0.75 CPUs, accuracy 0.523, measured p99 415 ms within the 500 ms SLA`."""
    head = f"The answer: {number(chosen.get('cost'))} CPUs, accuracy {number(chosen.get('accuracy'))}"
    if measured_p99_ms is None:
        return f"{head}, predicted p99 {number(chosen.get('predicted_p99_ms'))} ms (not deployed yet)"
    within = sla_ms is None or measured_p99_ms <= float(sla_ms)
    return f"{head}, measured p99 {number(measured_p99_ms)} ms {'within' if within else 'over'} the {number(sla_ms)} ms SLA"


def variants_claim(variants: pd.DataFrame | None) -> str | None:
    """`Most accurate: yolov8s-160-onnx-int8-static (mAP50 0.951) and resnet-small-onnx-int8-static (top1 0.849)`."""
    if variants is None or not {"Step", "Variant", "Accuracy"} <= set(variants.columns):
        return None
    built = variants.dropna(subset=["Accuracy"])
    best = []
    for _, rows in built.groupby("Step", sort=False):
        top = rows.loc[rows["Accuracy"].idxmax()]
        metric = top.get("Metric", "accuracy")
        best.append(f"{top['Variant']} ({metric if isinstance(metric, str) else 'accuracy'} {top['Accuracy']:.3f})")
    return "Most accurate: " + " and ".join(best) if best else None


def registry_claim(figures: Mapping[str, Any]) -> str | None:
    """`32 model versions and 25 images in the registry; a pull checks every file's sha256`."""
    if figures.get("versions_in_registry") is None:
        return None
    images = f" and {number(figures['images_in_registry'])} images" if figures.get("images_in_registry") else ""
    return f"{number(figures['versions_in_registry'])} model versions{images} in the registry; a pull checks every sha256"


def slowest_step_claim(figures: Mapping[str, Any]) -> str | None:
    """`detect is the most time-consuming step: 10.4 ms of each request at 20 requests/s`."""
    if not figures.get("slowest_step"):
        return None
    return (f"{figures['slowest_step']} is the most time-consuming step: "
            f"{number(figures.get('slowest_step_ms_before'))} ms of each request at {number(figures.get('rate_rps'))} req/s")


def sweep_plot_claim(name: str, tables: Mapping[str, pd.DataFrame], figures: Mapping[str, Any],
                     efficiency: pd.DataFrame | None = None) -> str | None:
    """The claim of one of notebook 04's plots (by its file name), from the per-step tables and figures."""
    detect = tables.get("detect")
    if "accuracy" in name and "latency" in name:
        return _accuracy_against(detect, "p50 ms", "is {ratio:.1f}× slower than {fast} ({a} vs {f} ms p50)",
                                 lower_is_better=True)
    if "accuracy" in name and "throughput" in name:
        return _accuracy_against(detect, "Max throughput (req/s)",
                                 "serves {ratio:.1f}× fewer requests/s than {fast} ({a} vs {f} req/s)", lower_is_better=False)
    if "cost" in name and "p99" in name:
        parts = [f"{int(_meets(t).sum())} of {len(t)} {step}" for step, t in tables.items() if "Meets step SLA" in t]
        budgets = figures.get("step_budgets_ms") or {}
        within = f" ({' / '.join(number(b) for b in budgets.values())} ms)" if budgets else ""
        return " and ".join(parts) + f" rows meet their step budgets{within}" if parts else None
    if "distribution" in name:
        best = {step: figures.get(f"best_{step}") for step in tables if isinstance(figures.get(f"best_{step}"), dict)}
        budgets = figures.get("step_budgets_ms") or {}
        parts = [f"{step} {number(row.get('p99_ms'))} of {number(budgets.get(step))} ms" for step, row in best.items()]
        return "The cheapest rows within budget keep p99 at " + ", ".join(parts) if parts else None
    if "replicas" in name and efficiency is not None and {"replicas", "efficiency"} <= set(efficiency.columns):
        top = efficiency.loc[efficiency["replicas"].idxmax()]
        return (f"Throughput grows with replicas: {int(top['replicas'])} replicas serve "
                f"{top['replicas'] * top['efficiency']:.1f}× one ({top.get('source', 'predicted')})")
    return None


def best_rows_claim(best: pd.DataFrame) -> str | None:
    """`Within budget, the most accurate: yolov8s-160-onnx-fp32 at 0.75 CPUs, resnet-small-... at 0.25 CPUs`."""
    if best.empty:
        return None
    tops = best.drop_duplicates("Step")
    return "Within budget, the most accurate: " + ", ".join(
        f"{r['Variant']} at {number(r['Cost (CPUs)'])} CPUs" for _, r in tops.iterrows())


def how_many_claim(figures: Mapping[str, Any], sla_ms: Any, rate_rps: Any) -> str | None:
    """`3,968 of 4,032 configurations meet 500 ms p99 at 20 req/s`."""
    meeting = figures.get("meeting_count")
    if meeting is None:
        return None
    total = f" of {number(figures['configurations'])}" if figures.get("configurations") is not None else ""
    return f"{number(meeting)}{total} configurations meet {number(sla_ms)} ms p99 at {number(rate_rps)} req/s"


def pareto_claim(front: pd.DataFrame | None, figures: Mapping[str, Any]) -> str | None:
    """`2 Pareto-optimal configurations: +0.178 accuracy for +0.25 CPUs`."""
    points = figures.get("pareto_points", len(front) if front is not None else None)
    if points is None:
        return None
    head = f"{number(points)} Pareto-optimal configuration{'s' if points != 1 else ''}"
    if front is not None and {"extra_cpus", "extra_accuracy"} <= set(front.columns):
        steps = front.dropna(subset=["extra_cpus", "extra_accuracy"])
        if len(steps):
            best = steps.loc[(steps["extra_accuracy"] / steps["extra_cpus"]).idxmax()]
            return f"{head}: +{best['extra_accuracy']:.3f} accuracy for +{number(best['extra_cpus'])} CPUs"
    return head + " of cost against accuracy"


def what_determines_claim(scenarios: pd.DataFrame | None) -> str | None:
    """`Over 9 rates × SLAs the optimum keeps yolov8s-160-onnx-fp32 and costs 0.5 to 1.25 CPUs`."""
    if scenarios is None or not {"cost", "detect_variant"} <= set(scenarios.columns):
        return None
    feasible = scenarios[scenarios["feasible"].astype(bool)] if "feasible" in scenarios else scenarios
    feasible = feasible.dropna(subset=["cost"])
    if feasible.empty:
        return f"None of {len(scenarios)} rate × SLA scenarios has a feasible configuration"
    variants = feasible["detect_variant"].nunique()
    keeps = f"keeps {feasible['detect_variant'].iloc[0]}" if variants == 1 else f"uses {variants} detectors"
    missed = f"; {len(scenarios) - len(feasible)} infeasible" if len(feasible) < len(scenarios) else ""
    return (f"Over {len(scenarios)} rates × SLAs the optimum {keeps} and costs {number(feasible['cost'].min())} to "
            f"{number(feasible['cost'].max())} CPUs{missed}")


def upstream_claim(upstream: pd.DataFrame | None, changes: Any) -> str | None:
    """`Yes: 4 detectors lead to 2 different classifier configurations`."""
    if upstream is None or "classify_variant" not in upstream:
        return None
    rows = upstream[upstream["feasible"].astype(bool)] if "feasible" in upstream else upstream
    kinds = rows.apply(lambda r: configuration_label(r, "classify"), axis=1).nunique() if len(rows) else 0
    answer = "Yes" if (changes if changes is not None else kinds > 1) else "No"
    return (f"{answer}: {len(rows)} detectors lead to {kinds} different classifier configuration"
            f"{'s' if kinds != 1 else ''}")


def baselines_claim(baselines: pd.DataFrame | None, chosen: Mapping[str, Any]) -> str | None:
    """`2 of 4 baselines pick the optimum; static smallest: -0.414 accuracy for -0.25 CPUs`."""
    if baselines is None or not {"name", "cost", "accuracy"} <= set(baselines.columns) or chosen.get("accuracy") is None:
        return None
    same = baselines["same_as_optimum"].astype(bool) if "same_as_optimum" in baselines else pd.Series(False, baselines.index)
    head = f"{int(same.sum())} of {len(baselines)} baselines pick the optimum"
    others = baselines[~same].dropna(subset=["accuracy", "cost"])
    if others.empty:
        return head
    worst = others.loc[(others["accuracy"] - float(chosen["accuracy"])).idxmin()]
    return (f"{head}; {worst['name']}: {worst['accuracy'] - float(chosen['accuracy']):+.3f} accuracy for "
            f"{worst['cost'] - float(chosen.get('cost', 0)):+g} CPUs")


def check_claim(check: pd.DataFrame | None, sla_ms: Any) -> str | None:
    """`Deployed: measured p99 415 ms against a 475 ms forecast, within the 500 ms SLA`."""
    row = optimum_check(check)
    if row is None:
        return None
    within = bool(row.get("meets_sla_every_repeat", row["measured_p99_ms"] <= float(sla_ms or float("inf"))))
    return (f"Deployed: measured p99 {number(row['measured_p99_ms'])} ms against a {number(row['forecast_p99_ms'])} ms "
            f"forecast, {'within' if within else 'over'} the {number(sla_ms)} ms SLA")


def optimum_check(check: pd.DataFrame | None) -> Mapping[str, Any] | None:
    """The optimum's row of `05_check.csv` (its measured and forecast p99), or None."""
    if check is None or not {"configuration", "measured_p99_ms"} <= set(check.columns):
        return None
    rows = check[check["configuration"] == "optimum"].dropna(subset=["measured_p99_ms"])
    return rows.iloc[0].to_dict() if len(rows) else None


def _meets(table: pd.DataFrame) -> pd.Series:
    return table["Meets step SLA"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))


def _accuracy_against(table: pd.DataFrame | None, column: str, phrase: str, *, lower_is_better: bool) -> str | None:
    """The most accurate variant against the best one on `column`, at one replica of the largest CPU."""
    if table is None or not {"Variant", "Accuracy", "Scale", "CPU per replica", column} <= set(table.columns):
        return None
    rows = table[(table["Scale"] == 1) & (table["CPU per replica"] == table["CPU per replica"].max())]
    rows = rows.dropna(subset=[column, "Accuracy"]).groupby("Variant").agg({column: "median", "Accuracy": "max"})
    if len(rows) < 2:
        return None
    accurate, fast = rows["Accuracy"].idxmax(), rows[column].idxmin() if lower_is_better else rows[column].idxmax()
    if accurate == fast:
        return f"{accurate} is both the most accurate detector and the best on {column}"
    a, f = float(rows.loc[accurate, column]), float(rows.loc[fast, column])
    ratio = a / f if lower_is_better else f / a
    return f"The most accurate detector, {accurate}, " + phrase.format(ratio=ratio, fast=fast, a=number(a), f=number(f))
