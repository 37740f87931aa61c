"""`t3_answers`: every T3 question answered with numbers, and the sentences built from them.

1. How many configurations meet the SLA (counted over the whole grid, listed best first).
2. The Pareto front of cost against end-to-end accuracy, and its hypervolume.
3. What determines the optimum: the same solve at several rates and SLAs, and under each objective.
4. The upstream question: per detector variant, the best downstream configuration, and why it changes.
Plus the baselines (baselines.py) and the MILP = enumeration cross-check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .answers import T3Answers
from .baselines import ipa_style, per_step, static_variants
from .enumerate import count_meeting, meeting_table, solve_exhaustive
from .milp import solve_milp
from .pareto import (
    better_for_little_more,
    cost_accuracy_cloud,
    front_steps,
    hypervolume,
    on_front,
    pareto_front,
)
from .problem import Objective, PipelineProblem, build_problem
from .solution import Configuration, Solution
from .source import CandidateSource
from .words import (
    baseline_words,
    determines_words,
    how_many_words,
    marginal_words,
    pareto_words,
    recommendation_words,
    rule_words,
    upstream_words,
)

__all__ = ["RULE", "t3_answers"]

RULE = ("predicted end-to-end p99 = detect p99 + classify p99 + gateway reserve, each step's p99 at its own load "
        "(the classifier's: pipeline rate x crops per image of the chosen detector); conservative, since two "
        "steps' tails rarely meet in one request")


def _problem(candidates: pd.DataFrame, accuracy: pd.DataFrame, sla_ms: float, rate: float, reserve: float,
             metric: str, prune: bool = True) -> PipelineProblem:
    return build_problem(candidates, accuracy, sla_ms=sla_ms, rate_rps=rate, gateway_reserve_ms=reserve,
                         metric=metric, prune=prune)


def _row(name: str, config: Configuration | None, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {"name": name}
    if config is not None:
        row.update(config.to_row())
    row.update(extra)
    return row


def _sensitivity(source: CandidateSource | None, candidates: pd.DataFrame, accuracy: pd.DataFrame, *, rate: float,
                 sla_ms: float, reserve: float, metric: str, objective: Objective, rates: Sequence[float],
                 sla_values: Sequence[float]) -> pd.DataFrame:
    rows = []
    for r in rates:
        table = candidates if source is None or r == rate else source(r)
        if source is None and r != rate:
            continue
        for sla in sla_values:
            if sla <= reserve:
                continue
            full = _problem(table, accuracy, sla, r, reserve, metric, prune=False)
            solution = solve_milp(_problem(table, accuracy, sla, r, reserve, metric), objective)
            rows.append(_row(f"{r:g} rps, {sla:g} ms", solution.configuration, rate_rps=r, sla_ms=sla,
                             feasible=solution.feasible, meeting=count_meeting(full),
                             reason="" if solution.feasible else solution.reason))
    return pd.DataFrame(rows)


def _objectives(problem: PipelineProblem, objective: Objective, optimum: Solution) -> pd.DataFrame:
    cost = optimum.configuration.cost if optimum.configuration else None
    cap = objective.cost_cap or (2 * cost if cost else 8)
    choices = {"accurate_within_budget": Objective(kind="accurate_within_budget", cost_cap=cap,
                                                   accuracy_tolerance=objective.accuracy_tolerance),
               "min_cost": Objective(kind="min_cost", accuracy_floor=objective.accuracy_floor),
               "max_accuracy": Objective(kind="max_accuracy", cost_cap=cap),
               "ipa": Objective(kind="ipa", accuracy_weight=objective.accuracy_weight,
                                cost_weight=objective.cost_weight)}
    rows = []
    for name, obj in choices.items():
        solution = solve_milp(problem, obj)
        rows.append(_row(obj.describe(), solution.configuration, objective=name, feasible=solution.feasible))
    return pd.DataFrame(rows)


def _restricted(problem: PipelineProblem, detector: str, classifier: str | None = None) -> PipelineProblem:
    classify = problem.classify if classifier is None else problem.classify[problem.classify["variant"] == classifier]
    return PipelineProblem(problem.detect[problem.detect["variant"] == detector], classify, problem.pair_accuracy,
                           problem.sla_ms, problem.rate_rps, problem.gateway_reserve_ms, problem.metric)


def _why(row: dict, ref: dict | None, problem: PipelineProblem, objective: Objective) -> str:
    """Why the best classifier after this detector differs from the one after the optimum's detector."""
    if not row.get("feasible"):
        return str(row.get("reason", ""))
    if ref is None:
        return ""
    same_variant = row["classify_variant"] == ref["classify_variant"]
    same_resources = all(row[f"classify_{k}"] == ref[f"classify_{k}"] for k in ("cpu", "batch", "replicas"))
    if row["detector"] == ref["detector"]:
        return "the optimum's own detector"
    if same_variant and same_resources:
        return "same classifier configuration as after the optimum's detector"
    if same_variant:
        return (f"fan-out: {row['classify_load_items_per_s']:.0f} crops/s instead of "
                f"{ref['classify_load_items_per_s']:.0f}, with {row['remaining_budget_ms']:.0f} ms left instead of "
                f"{ref['remaining_budget_ms']:.0f}, so other classifier resources")
    other = problem.pair_accuracy.get((row["detector"], ref["classify_variant"]))
    if other is None:
        return f"no measured pipeline accuracy for {row['detector']} with {ref['classify_variant']}"
    if objective.accuracy_floor is not None and other < objective.accuracy_floor:
        return (f"accuracy interaction: {row['detector']} with {ref['classify_variant']} scores {other:.3f} end to "
                f"end, below the floor of {objective.accuracy_floor:.3f}")
    alt = solve_milp(_restricted(problem, row["detector"], ref["classify_variant"]), objective)
    if not alt.feasible:
        return (f"remaining latency budget: {ref['classify_variant']} does not fit the {row['remaining_budget_ms']:.0f} ms "
                f"left at {row['classify_load_items_per_s']:.0f} crops/s")
    if objective.kind == "min_cost" and alt.configuration.cost <= row["cost"] + 1e-9:
        return (f"accuracy interaction: at the same cost ({row['cost']:g} CPUs) {row['classify_variant']} scores "
                f"{row['accuracy']:.3f} end to end after {row['detector']}, {ref['classify_variant']} {other:.3f}")
    if objective.kind == "min_cost":
        return (f"cost: {ref['classify_variant']} fits after {row['detector']} too, but the whole pipeline then costs "
                f"{alt.configuration.cost:g} CPUs instead of {row['cost']:g}")
    return (f"accuracy interaction: with {row['detector']}, {row['classify_variant']} scores {row['accuracy']:.3f} "
            f"end to end and {ref['classify_variant']} {other:.3f} (cost {row['cost']:g} vs "
            f"{alt.configuration.cost:g} CPUs)")


def _upstream(problem: PipelineProblem, full: PipelineProblem, objective: Objective,
              optimum: Configuration | None) -> pd.DataFrame:
    rows = []
    for detector in sorted(set(problem.detect["variant"])):
        solution = solve_milp(_restricted(problem, detector), objective)
        c_rows = full.classify[full.classify["detector_variant"] == detector]
        crops = float(c_rows["items_per_request"].iloc[0]) if len(c_rows) and "items_per_request" in c_rows else None
        config = solution.configuration
        rows.append(_row(detector, config, detector=detector, feasible=solution.feasible, crops_per_image=crops,
                         classify_load_items_per_s=crops * problem.rate_rps if crops is not None else None,
                         remaining_budget_ms=(problem.latency_budget_ms - config.detect["p99_ms"]) if config else None,
                         reason="" if solution.feasible else solution.reason))
    ref = next((r for r in rows if optimum is not None and r["detector"] == optimum.detect["variant"]), None)
    for row in rows:
        row["why"] = _why(row, ref, problem, objective)
    return pd.DataFrame(rows)


def _baselines(problem: PipelineProblem, candidates: pd.DataFrame, accuracy: pd.DataFrame, objective: Objective,
               source: CandidateSource | None, step_budgets: Mapping[str, float],
               optimum: Configuration | None) -> tuple[pd.DataFrame, dict]:
    found: dict[str, Configuration | None] = {
        "static smallest": static_variants(problem, most_accurate=False),
        "static most accurate": static_variants(problem, most_accurate=True),
        "INFaaS-style (each step on its own)": per_step(problem, objective, step_budgets),
    }
    believed = None
    if source is not None:
        believed, actual = ipa_style(source(problem.rate_rps, ignore_fanout=True), accuracy, candidates, problem,
                                     objective)
        found["IPA-style (no fan-out)"] = actual if actual is not None else believed
    rows = []
    for name, config in found.items():
        extra: dict[str, object] = {"meets_sla": bool(config and config.predicted_p99_ms <= problem.sla_ms),
                                    "same_as_optimum": bool(config and optimum and config.label == optimum.label)}
        if name.startswith("IPA") and believed is not None:
            extra["believed_p99_ms"] = believed.predicted_p99_ms
        rows.append(_row(name, config, **extra))
    return pd.DataFrame(rows), {"ipa_believed": believed, **found}


def t3_answers(candidates: pd.DataFrame, pipeline_accuracy: pd.DataFrame, *, sla_ms: float, rate_rps: float,
               gateway_reserve_ms: float, objective: Objective | None = None, source: CandidateSource | None = None,
               rates: Sequence[float] = (10, 20, 40), sla_factors: Sequence[float] = (0.5, 1.0, 2.0),
               step_budgets: Mapping[str, float] | None = None, metric: str = "mAP50-95",
               listed: int = 50, rule_check: pd.DataFrame | None = None) -> T3Answers:
    """Answer T3 on a candidate table; `source` gives candidates at other rates and without fan-out.

    `rule_check` (`rule.rule_against_pipeline`): pipeline rows measured through the gateway, to state
    how the end-to-end rule compares with them.

    Bad input (no rows, no accuracies, an SLA or floor nothing meets) gives answers that say so,
    with the closest configurations and what would have to change; it never raises for that.
    """
    objective = objective or Objective()
    budgets = dict(step_budgets or {"detect": 0.6 * (sla_ms - gateway_reserve_ms),
                                    "classify": 0.4 * (sla_ms - gateway_reserve_ms)})
    problem = _problem(candidates, pipeline_accuracy, sla_ms, rate_rps, gateway_reserve_ms, metric)
    full = _problem(candidates, pipeline_accuracy, sla_ms, rate_rps, gateway_reserve_ms, metric, prune=False)
    milp = solve_milp(problem, objective)
    enum = solve_exhaustive(full, objective)
    meeting = meeting_table(full, objective, limit=listed)
    total = sum(int((full.detect["variant"] == v).sum()) * int((full.classify["detector_variant"] == v).sum())
                for v in set(full.detect["variant"]))
    front = pareto_front(full)
    reference_cost = float(full.detect["cost"].max() + full.classify["cost"].max()) if not full.empty else 0.0
    hv = hypervolume(front, reference_cost=reference_cost)
    sla_values = sorted({round(sla_ms * f, 3) for f in sla_factors})
    sensitivity = _sensitivity(source, candidates, pipeline_accuracy, rate=rate_rps, sla_ms=sla_ms,
                               reserve=gateway_reserve_ms, metric=metric, objective=objective, rates=rates,
                               sla_values=sla_values)
    objectives = _objectives(problem, objective, milp) if milp.feasible else pd.DataFrame()
    upstream = _upstream(problem, full, objective, milp.configuration) if not problem.empty else pd.DataFrame()
    baselines, found = _baselines(problem, candidates, pipeline_accuracy, objective, source, budgets,
                                  milp.configuration) \
        if not problem.empty else (pd.DataFrame(), {})
    config = milp.configuration
    better = better_for_little_more(front, config) if config is not None else front.iloc[:0]
    figures = {
        "meeting_count": count_meeting(full), "configurations": int(total), "feasible": milp.feasible,
        "hypervolume": round(hv, 4), "hypervolume_reference": {"cost": reference_cost, "accuracy": 0.0},
        "pareto_points": len(front),
        "on_pareto_front": bool(config is not None and on_front(front, config)),
        "better_for_little_more": len(better),
        "milp_equals_enumeration": milp.objective_keys == enum.objective_keys,
        "milp_seconds": round(milp.seconds, 4), "enumeration_seconds": round(enum.seconds, 4),
        "rows_left_out": {k: int(v) for k, v in full.dropped.items() if v},
        "upstream_changes": bool(len(upstream) and upstream.get("classify_variant") is not None and
                                 upstream[["classify_variant", "classify_cpu", "classify_batch",
                                           "classify_replicas"]].dropna().drop_duplicates().shape[0] > 1),
    }
    sentences = {
        "rule": rule_words(RULE, gateway_reserve_ms, rule_check),
        "recommendation": recommendation_words(milp, problem),
        "how_many": how_many_words(figures["meeting_count"], int(total), sla_ms, rate_rps, meeting),
        "pareto": pareto_words(front, hv, reference_cost),
        "marginal": marginal_words(front_steps(front), config, better, metric),
        "what_determines": determines_words(sensitivity, objectives, rate_rps, sla_ms),
        "upstream": upstream_words(upstream, config),
        "baselines": baseline_words(baselines, config, sla_ms),
    }
    tables = {"meeting": meeting, "pareto": front_steps(front), "cloud": cost_accuracy_cloud(full), "sensitivity": sensitivity, "objectives": objectives,
              "upstream": upstream, "baselines": baselines}
    if rule_check is not None and len(rule_check):
        tables["rule"] = rule_check
    if not milp.feasible:
        tables["closest"] = milp.closest
    return T3Answers(sla_ms=sla_ms, rate_rps=rate_rps, gateway_reserve_ms=gateway_reserve_ms,
                     objective=objective.describe(), metric=metric, feasible=milp.feasible,
                     recommendation=config.to_row() if config else {}, figures=figures, sentences=sentences,
                     tables=tables, configurations={name: c for name, c in {"optimum": config, **found}.items()
                                                    if c is not None and name != "ipa_believed"})

