"""Baselines on the same profiles: static smallest, static most accurate, INFaaS-style, IPA-style.

- static smallest / most accurate: the fastest / the most accurate variant of each step (by the
  step's own measurements), provisioned at the least cost that meets the SLA.
- INFaaS-style: each step chosen on its own, within its own latency budget (`SlaSpec.step_budgets`),
  by the objective applied to the step's own accuracy; the classifier sees its real load.
- IPA-style: the same MILP, but on candidates that assume the same request rate at every stage
  (one crop per image: no fan-out); the choice is then judged on the true, fan-out-aware rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .milp import solve_milp
from .problem import KEY, Objective, PipelineProblem, build_problem
from .solution import Configuration, configuration_from_rows

__all__ = ["evaluate", "ipa_style", "per_step", "static_variants"]


def _key(row: Mapping[str, object]) -> tuple[object, ...]:
    upstream = row.get("detector_variant")
    upstream = "" if upstream is None or (isinstance(upstream, float) and np.isnan(upstream)) else str(upstream)
    return (str(row["step"]), str(row["variant"]), round(float(row["cpu"]), 4), int(row["threads"]),  # type: ignore[arg-type]
            int(row["batch"]), int(row["replicas"]), upstream)  # type: ignore[arg-type]


def evaluate(config: Configuration, candidates: pd.DataFrame, problem: PipelineProblem) -> Configuration | None:
    """The same rows looked up in `candidates` (their rate, their fan-out), unstable ones included (p99 inf).

    None where the grid has no such row or the pair has no measured accuracy.
    """
    if candidates is None or candidates.empty:
        return None
    table = candidates.copy()
    if "detector_variant" not in table:
        table["detector_variant"] = np.nan
    keys = [_key(r) for r in table[KEY].to_dict("records")]
    d_key = _key({**config.detect, "step": "detect", "detector_variant": None})
    c_key = _key({**config.classify, "step": "classify", "detector_variant": config.detect["variant"]})
    d = table[[k == d_key for k in keys]]
    c = table[[k == c_key for k in keys]]
    pair = (config.detect["variant"], config.classify["variant"])
    if d.empty or c.empty or pair not in problem.pair_accuracy:
        return None
    d, c = d.iloc[0].copy(), c.iloc[0].copy()
    for row in (d, c):
        if ("stable" in row and not bool(row["stable"])) or not np.isfinite(float(row["p99_ms"])):
            row["p99_ms"] = np.inf
    return configuration_from_rows(d, c, accuracy=problem.pair_accuracy[pair],
                                   gateway_reserve_ms=problem.gateway_reserve_ms)


def _restrict(problem: PipelineProblem, detect: str, classify: str) -> PipelineProblem:
    return PipelineProblem(problem.detect[problem.detect["variant"] == detect],
                           problem.classify[problem.classify["variant"] == classify], problem.pair_accuracy,
                           problem.sla_ms, problem.rate_rps, problem.gateway_reserve_ms, problem.metric)


def _fastest(rows: pd.DataFrame) -> str:
    return str(rows.groupby("variant")["p99_ms"].min().idxmin())


def _most_accurate(rows: pd.DataFrame) -> str:
    acc = rows.groupby("variant")["accuracy"].max()
    return str(acc.idxmax()) if acc.notna().any() else _fastest(rows)


def static_variants(problem: PipelineProblem, *, most_accurate: bool) -> Configuration | None:
    """Fixed variants (fastest, or most accurate by the step's own metric) at the least cost meeting the SLA.

    Where no provisioning of them meets the SLA, the one with the lowest predicted p99 (which misses it).
    """
    if problem.empty:
        return None
    pick = _most_accurate if most_accurate else _fastest
    detect = pick(problem.detect)
    classify = pick(problem.classify[problem.classify["detector_variant"] == detect])
    sub = _restrict(problem, detect, classify)
    solution = solve_milp(sub, Objective(kind="min_cost"))
    if solution.feasible:
        return solution.configuration
    if sub.empty:
        return None
    d = sub.detect.loc[sub.detect["p99_ms"].idxmin()]
    c_rows = sub.classify[sub.classify["detector_variant"] == detect]
    if c_rows.empty or (detect, classify) not in problem.pair_accuracy:
        return None
    c = c_rows.loc[c_rows["p99_ms"].idxmin()]
    return configuration_from_rows(d, c, accuracy=problem.pair_accuracy[(detect, classify)],
                                   gateway_reserve_ms=problem.gateway_reserve_ms)


def _step_best(rows: pd.DataFrame, budget: float, objective: Objective, cap: float | None) -> pd.Series | None:
    rows = rows[rows["p99_ms"] <= budget]
    if cap is not None:
        rows = rows[rows["cost"] <= cap]
    if rows.empty:
        return None
    acc = rows["accuracy"].fillna(0.0)
    if objective.kind == "min_cost":
        order = pd.DataFrame({"a": rows["cost"], "b": -acc, "c": rows["p99_ms"]})
    elif objective.kind == "max_accuracy":
        order = pd.DataFrame({"a": -acc, "b": rows["cost"], "c": rows["p99_ms"]})
    else:
        order = pd.DataFrame({"a": -(objective.accuracy_weight * acc - objective.cost_weight * rows["cost"]),
                              "b": rows["cost"], "c": rows["p99_ms"]})
    return rows.loc[order.sort_values(["a", "b", "c"], kind="mergesort").index[0]]


def per_step(problem: PipelineProblem, objective: Objective, step_budgets: Mapping[str, float]) -> Configuration | None:
    """INFaaS-style: each step by itself within its budget and the objective on its own accuracy."""
    if problem.empty:
        return None
    cap = objective.cost_cap / 2 if objective.cost_cap is not None else None
    d = _step_best(problem.detect, step_budgets["detect"], objective, cap)
    if d is None:
        return None
    c_rows = problem.classify[problem.classify["detector_variant"] == d["variant"]]
    c = _step_best(c_rows, step_budgets["classify"], objective, cap)
    if c is None or (d["variant"], c["variant"]) not in problem.pair_accuracy:
        return None
    return configuration_from_rows(d, c, accuracy=problem.pair_accuracy[(d["variant"], c["variant"])],
                                   gateway_reserve_ms=problem.gateway_reserve_ms)


def ipa_style(no_fanout_candidates: pd.DataFrame, pipeline_accuracy: pd.DataFrame, candidates: pd.DataFrame,
              problem: PipelineProblem, objective: Objective) -> tuple[Configuration | None, Configuration | None]:
    """(what IPA believes, what it gets): the optimum without fan-out, and the same rows at the true load."""
    blind = build_problem(no_fanout_candidates, pipeline_accuracy, sla_ms=problem.sla_ms, rate_rps=problem.rate_rps,
                          gateway_reserve_ms=problem.gateway_reserve_ms, metric=problem.metric)
    solution = solve_milp(blind, objective)
    if not solution.feasible or solution.configuration is None:
        return None, None
    believed = solution.configuration
    return believed, evaluate(believed, candidates, problem)
