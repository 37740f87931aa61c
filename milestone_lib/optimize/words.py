"""The T3 sentences, written from the numbers of t3.py's tables (nothing typed in by hand)."""

from __future__ import annotations

import pandas as pd

from .pareto import REGRET_COST_FACTOR, REGRET_GAIN
from .problem import PipelineProblem
from .solution import Solution

__all__ = [
    "baseline_words",
    "check_words",
    "determines_words",
    "how_many_words",
    "marginal_words",
    "pareto_words",
    "recommendation_words",
    "rule_words",
    "upstream_words",
]


def _config(row: pd.Series | dict) -> str:
    return (f"{row['detect_variant']} {int(row['detect_replicas'])}x{row['detect_cpu']:g} CPU -> "
            f"{row['classify_variant']} {int(row['classify_replicas'])}x{row['classify_cpu']:g} CPU")


def recommendation_words(solution: Solution, problem: PipelineProblem) -> str:
    if not solution.feasible or solution.configuration is None:
        return solution.sentence()
    c = solution.configuration
    slack = problem.sla_ms - c.predicted_p99_ms
    return (f"Deploy {c.sentence()}. It is the optimum of '{solution.objective}' at {problem.rate_rps:g} requests/s; "
            f"the SLA rule's p99 (an upper bound) leaves {slack:.0f} ms of the {problem.sla_ms:g} ms SLA (detect "
            f"{c.detect['p99_ms']:.0f} ms + classify {c.classify['p99_ms']:.0f} ms + gateway reserve "
            f"{c.gateway_reserve_ms:g} ms).")


def how_many_words(count: int, total: int, sla_ms: float, rate: float, meeting: pd.DataFrame) -> str:
    if count == 0:
        return (f"None of the {total} configurations meets {sla_ms:g} ms p99 at {rate:g} requests/s "
                "(see the closest configurations below).")
    text = (f"{count} of the {total} configurations on the grid ({count / max(total, 1):.0%}) meet {sla_ms:g} ms p99 "
            f"at {rate:g} requests/s, so T3's first answer is yes: several do.")
    if len(meeting):
        costs, acc = meeting["cost"], meeting["accuracy"]
        text += (f" Among the {len(meeting)} best listed, cost runs from {costs.min():g} to {costs.max():g} CPUs and "
                 f"end-to-end accuracy from {acc.min():.3f} to {acc.max():.3f}.")
    return text


def pareto_words(front: pd.DataFrame, hv: float, reference_cost: float) -> str:
    if front.empty:
        return "No configuration meets the SLA, so there is no Pareto front."
    first, last = front.iloc[0], front.iloc[-1]
    text = (f"{len(front)} configuration(s) are Pareto-optimal (no other is both cheaper and more accurate): from "
            f"{_config(first)} at {first['cost']:g} CPUs and accuracy {first['accuracy']:.3f}")
    if len(front) > 1:
        gain = last["accuracy"] - first["accuracy"]
        extra = last["cost"] - first["cost"]
        text += (f" to {_config(last)} at {last['cost']:g} CPUs and accuracy {last['accuracy']:.3f} "
                 f"(+{gain:.3f} accuracy for +{extra:g} CPUs)")
    return text + f". Hypervolume {hv:.3f} CPU x accuracy (reference: {reference_cost:g} CPUs, accuracy 0)."


def marginal_words(steps: pd.DataFrame, chosen: object, better: pd.DataFrame, metric: str) -> str:
    """What each step along the front buys ("+0.25 CPU: +0.34 mAP50-95"), and any point the choice leaves out."""
    if steps.empty:
        return "No configuration meets the SLA, so the front buys nothing."
    buys = [f"+{row['extra_cpus']:g} CPU: {row['extra_accuracy']:+.3f} {metric} (to {row['cost']:g} CPUs, "
            f"{row['accuracy']:.3f})" for _, row in steps.iloc[1:].iterrows()]
    text = (f"Along the Pareto front from {steps.iloc[0]['cost']:g} CPUs at {metric} {steps.iloc[0]['accuracy']:.3f}: "
            + ("; ".join(buys) if buys else "a single point, nothing more to buy") + ".")
    if chosen is None:
        return text
    if better.empty:
        return text + (f" No configuration that meets the SLA gives >= {REGRET_GAIN:g} more {metric} at <= "
                       f"{REGRET_COST_FACTOR:g}x the chosen {chosen.cost:g} CPUs.")
    top = better.sort_values("accuracy").iloc[-1]
    return text + (f" Left out: {_config(top)} gives {metric} {top['accuracy']:.3f} at {top['cost']:g} CPUs, "
                   f"+{top['accuracy'] - chosen.accuracy:.3f} for {top['cost'] / chosen.cost:.2f}x the cost.")


def determines_words(sensitivity: pd.DataFrame, objectives: pd.DataFrame, rate: float, sla_ms: float) -> str:
    parts = []
    if len(objectives) and "detect_variant" in objectives:
        distinct = objectives.dropna(subset=["detect_variant"]).drop_duplicates(
            ["detect_variant", "classify_variant", "cost"])
        listed = "; ".join(f"{r['name']}: {_config(r)} ({r['cost']:g} CPUs, accuracy {r['accuracy']:.3f})"
                           for _, r in objectives.dropna(subset=["detect_variant"]).iterrows())
        parts.append(f"The objective decides first: {listed}"
                     + (" (all the same choice)." if len(distinct) == 1 else f" ({len(distinct)} different choices)."))
    if len(sensitivity):
        at_sla = sensitivity[sensitivity["sla_ms"] == sla_ms]
        rates = "; ".join(
            f"at {r['rate_rps']:g} requests/s " + (f"{_config(r)} for {r['cost']:g} CPUs" if r["feasible"]
                                                    else "nothing meets it")
            for _, r in at_sla.iterrows())
        if rates:
            parts.append(f"The rate decides how much to provision: {rates}.")
        at_rate = sensitivity[sensitivity["rate_rps"] == rate]
        slas = "; ".join(
            f"{r['sla_ms']:g} ms: " + (f"{_config(r)} ({r['cost']:g} CPUs, {int(r['meeting'])} configurations meet it)"
                                       if r["feasible"] else "nothing meets it")
            for _, r in at_rate.iterrows())
        if slas:
            parts.append(f"The SLA decides which variants fit at {rate:g} requests/s: {slas}.")
    return " ".join(parts) or "Nothing to compare: no configuration meets the SLA."


def upstream_words(upstream: pd.DataFrame, chosen: object) -> str:
    if upstream.empty or "classify_variant" not in upstream:
        return "No detector variant leaves a configuration that meets the SLA."
    ok = upstream[upstream["feasible"]]
    choices = ok[["classify_variant", "classify_cpu", "classify_batch", "classify_replicas"]].drop_duplicates()
    if len(choices) <= 1:
        text = "No: every detector variant leads to the same classifier configuration. "
    else:
        text = (f"Yes: the {len(ok)} detector variants that fit lead to {len(choices)} different classifier "
                "configurations. ")
    parts = []
    for _, r in ok.iterrows():
        parts.append(f"after {r['detector']} ({r['crops_per_image']:.2f} crops/image = "
                     f"{r['classify_load_items_per_s']:.0f} crops/s, {r['remaining_budget_ms']:.0f} ms left for the "
                     f"classifier): {r['classify_variant']} on {int(r['classify_replicas'])}x{r['classify_cpu']:g} CPU "
                     f"batch {int(r['classify_batch'])}, pipeline accuracy {r['accuracy']:.3f}"
                     + (f" ({r['why']})" if r.get("why") else ""))
    text += "; ".join(parts) + "."
    for _, r in upstream[~upstream["feasible"]].iterrows():
        text += f" After {r['detector']} nothing meets it: {r['why']}."
    return text


def baseline_words(baselines: pd.DataFrame, chosen: object, sla_ms: float) -> str:
    if baselines.empty:
        return "No baseline could be formed."
    cost = getattr(chosen, "cost", None)
    acc = getattr(chosen, "accuracy", None)
    parts = []
    for _, r in baselines.iterrows():
        if pd.isna(r.get("cost")):
            parts.append(f"{r['name']}: no configuration (none of its choices meets its own budget or has a "
                         "measured pair accuracy)")
            continue
        text = (f"{r['name']}: {_config(r)}, {r['cost']:g} CPUs, accuracy {r['accuracy']:.3f}, predicted p99 "
                f"{r['predicted_p99_ms']:.0f} ms ({'meets' if r['meets_sla'] else 'misses'} the {sla_ms:g} ms SLA)")
        if "believed_p99_ms" in r and pd.notna(r.get("believed_p99_ms")):
            text += f", though it believed {r['believed_p99_ms']:.0f} ms without fan-out"
        if cost is not None and r.get("same_as_optimum"):
            text += "; the same configuration as the optimum"
        elif cost is not None:
            text += f"; {r['cost'] - cost:+g} CPUs and {r['accuracy'] - acc:+.3f} accuracy against the optimum"
        parts.append(text)
    return "; ".join(parts) + "."


def check_words(summary: pd.DataFrame, sla_ms: float, rate: float) -> str:
    if summary.empty:
        return "Nothing was deployed."
    parts = []
    for _, r in summary.iterrows():
        ci = "" if pd.isna(r["p99_ci95_ms"]) else f" +/- {r['p99_ci95_ms']:.0f}"
        parts.append(f"{r['configuration']}: measured p99 {r['measured_p99_ms']:.0f} ms over {int(r['repeats'])} "
                     f"repeat(s) (each repeat's p99: mean {r['repeat_p99_mean_ms']:.0f}{ci} ms) against "
                     f"{r['forecast_p99_ms']:.0f} ms forecast ({r['prediction_error']:+.0%}) and the SLA rule's "
                     f"{r['predicted_p99_ms']:.0f} ms ({'held' if r.get('rule_bound_held', True) else 'exceeded'}); "
                     f"goodput {r['goodput_rps']:.1f} requests/s, SLA attainment {r['sla_attainment']:.1%}, "
                     + ("within the SLA in every repeat" if r["meets_sla_every_repeat"] else "missed the SLA"))
    return (f"Deployed and driven with Poisson load at {rate:g} requests/s through the gateway ({sla_ms:g} ms SLA): "
            + "; ".join(parts) + ".")


def rule_words(rule: str, reserve_ms: float, check: pd.DataFrame | None) -> str:
    text = f"The rule: {rule}; gateway reserve {reserve_ms:g} ms."
    if check is None or check.empty:
        return text + " Notebook 04 measured no pipeline row to hold it against."
    rows = "; ".join(f"{r['detector_variant']} -> {r['classifier_variant']} at {r['scale']}: measured "
                     f"{r['measured_p99_ms']:.0f} ms against {r['steps_p99_sum_ms']:.0f} ms added "
                     f"({r['error']:+.0%}), {r['rule_p99_ms']:.0f} ms with the reserve "
                     f"({'held' if r['bound_held'] else 'exceeded'})" for _, r in check.iterrows())
    return text + f" Against the pipeline rows notebook 04 measured through the gateway: {rows}."
