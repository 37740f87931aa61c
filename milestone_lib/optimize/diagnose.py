"""When nothing meets it: why, the closest configurations, and what would have to change (in numbers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .pairs import blocks, pairs_frame
from .problem import Objective, PipelineProblem
from .solution import Solution

__all__ = ["closest_configurations", "infeasible_solution"]


def _violation(block, problem: PipelineProblem, objective: Objective) -> np.ndarray:
    """How far each pair is from meeting every constraint, each as a fraction of its bound."""
    over = np.maximum(0.0, block.p99 - problem.sla_ms) / problem.sla_ms
    if objective.accuracy_floor:
        over = over + np.maximum(0.0, objective.accuracy_floor - block.accuracy) / objective.accuracy_floor
    if objective.cost_cap:
        over = over + np.maximum(0.0, block.cost - objective.cost_cap) / objective.cost_cap
    return over


def closest_configurations(problem: PipelineProblem, objective: Objective, *, limit: int = 5,
                           detector: str | None = None) -> pd.DataFrame:
    """The `limit` configurations nearest to meeting every constraint, with how far each misses."""
    parts = []
    for block in blocks(problem):
        if detector is not None and block.detector != detector:
            continue
        over = _violation(block, problem, objective)
        flat = np.argsort(over, axis=None, kind="stable")[:limit]
        rows, cols = np.unravel_index(flat, over.shape)
        parts.append(pairs_frame(problem, block, rows, cols).assign(shortfall=over[rows, cols]))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True).sort_values(["shortfall", "cost"], kind="mergesort").head(limit)
    table["misses"] = [_misses(row, problem, objective) for row in table.itertuples()]
    return table.reset_index(drop=True)


def _misses(row, problem: PipelineProblem, objective: Objective) -> str:
    parts = []
    if row.predicted_p99_ms > problem.sla_ms:
        parts.append(f"p99 {row.predicted_p99_ms:.0f} ms > SLA {problem.sla_ms:g} ms")
    if objective.accuracy_floor is not None and row.accuracy < objective.accuracy_floor:
        parts.append(f"accuracy {row.accuracy:.3f} < floor {objective.accuracy_floor:.3f}")
    if objective.cost_cap is not None and row.cost > objective.cost_cap:
        parts.append(f"cost {row.cost:g} > cap {objective.cost_cap:g}")
    return "; ".join(parts) or "meets every constraint"


def _what_would_change(problem: PipelineProblem, objective: Objective, detector: str | None) -> tuple[str, list[str]]:
    chosen = [b for b in blocks(problem) if detector is None or b.detector == detector]
    if not chosen:
        reasons = ", ".join(f"{k}: {v}" for k, v in problem.dropped.items() if v) or "no rows given"
        return (f"no configuration to choose from at {problem.rate_rps:g} requests/s ({reasons})",
                ["run notebook 04 (the scaling sweep) and notebook 01 (pipeline accuracy) for these variants",
                 "offer a lower rate or allow more replicas, so that some replica set is not saturated"])
    best_p99 = min(float(b.p99.min()) for b in chosen)
    fits = [(b, b.p99 <= problem.sla_ms + 1e-9) for b in chosen]
    changes = []
    if best_p99 > problem.sla_ms:
        changes.append(f"the SLA would have to be at least {best_p99:.0f} ms (the fastest configuration's predicted "
                       f"p99), or the rate lower than {problem.rate_rps:g} requests/s, or more replicas / CPUs than "
                       "the grid holds")
        return f"no configuration's predicted p99 is within the SLA of {problem.sla_ms:g} ms", changes
    reason = []
    if objective.accuracy_floor is not None:
        best_acc = max(float(b.accuracy[m].max()) for b, m in fits if m.any())
        if best_acc < objective.accuracy_floor:
            reason.append(f"the best accuracy within the SLA is {best_acc:.3f}, below the floor "
                          f"{objective.accuracy_floor:.3f}")
            changes.append(f"the accuracy floor would have to be at most {best_acc:.3f}, or a more accurate "
                           "variant pair measured")
    if objective.cost_cap is not None:
        floor = objective.accuracy_floor or -np.inf
        costs = [float(b.cost[m & (b.accuracy >= floor)].min()) for b, m in fits if (m & (b.accuracy >= floor)).any()]
        if costs and min(costs) > objective.cost_cap:
            reason.append(f"the cheapest configuration within the SLA costs {min(costs):g} CPUs, above the cap "
                          f"{objective.cost_cap:g}")
            changes.append(f"the cost cap would have to be at least {min(costs):g} CPUs")
    if not reason:  # floor and cap each fit alone, but not together
        reason.append("the accuracy floor and the cost cap cannot both be met within the SLA")
        changes.append("lower the accuracy floor or raise the cost cap")
    return "; ".join(reason), changes


def infeasible_solution(problem: PipelineProblem, objective: Objective, *, method: str, seconds: float,
                        detector: str | None = None) -> Solution:
    """A `Solution` that says nothing meets it, why, the closest configurations and what would change."""
    reason, changes = _what_would_change(problem, objective, detector)
    return Solution(feasible=False, objective=objective.describe(), method=method, reason=reason,
                    closest=closest_configurations(problem, objective, detector=detector),
                    what_would_change=changes, seconds=seconds)
