"""The optimization problem: SLA, objective, and the candidate rows of each step that may be chosen.

The end-to-end rule (stated once, used everywhere in optimize/):

    predicted e2e p99 = detect p99 + classify p99 + gateway reserve  <=  SLA

Percentiles do not add, but for positive, right-skewed step latencies the sum of the step p99s
is an upper bound of the p99 of the sum in practice (both tails rarely meet in one request), so
the rule is conservative; the reserve covers the gateway's own work and the two network hops.
`check.py` measures the deployed pipeline to see how conservative.

The classifier's rows come per upstream detector variant (`detector_variant`): its load is the
pipeline rate times that detector's crops per image. End-to-end accuracy is the measured
pipeline mAP of the detector x classifier pair, never a product of the steps' own metrics.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["KEY", "Objective", "PipelineProblem", "build_problem", "machine_cpus", "objective_from", "pair_accuracy_map",
           "prune_dominated"]

KEY = ["step", "variant", "cpu", "threads", "batch", "replicas", "detector_variant"]
"""The columns that name one candidate row (classify rows also name their upstream detector)."""

_NEEDED = ["step", "variant", "cpu", "batch", "replicas", "cost", "p99_ms"]


class Objective(BaseModel):
    """What "best" means. `accuracy_floor` / `cost_cap` constrain every objective where set.

    - "accurate_within_budget": the most accurate configuration within `cost_cap` CPUs (the budget),
      then the cheapest whose accuracy is within `accuracy_tolerance` of that best; a grader's answer
      to "which version, at how many resources": accuracy first, without paying for the last 0.01.
    - "min_cost": least cost (CPUs) with end-to-end accuracy >= `accuracy_floor`.
    - "max_accuracy": best end-to-end accuracy with cost <= `cost_cap`.
    - "ipa": IPA's `accuracy_weight * accuracy - cost_weight * cost`, the largest.
    Ties go to the more accurate (min_cost, accurate_within_budget) or the cheaper (the others), then to
    the lower p99.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["accurate_within_budget", "min_cost", "max_accuracy", "ipa"] = "min_cost"
    accuracy_floor: float | None = Field(default=None, ge=0)
    cost_cap: float | None = Field(default=None, gt=0)
    accuracy_tolerance: float = Field(default=0.01, ge=0)
    """accurate_within_budget: how much accuracy below the best within the budget a cheaper choice may give up."""
    accuracy_weight: float = Field(default=20.0, gt=0)
    """IPA: what one unit of end-to-end mAP is worth in CPUs (20: 0.05 mAP = 1 CPU)."""
    cost_weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _constraint_given(self) -> Objective:
        if self.kind in ("max_accuracy", "accurate_within_budget") and self.cost_cap is None:
            raise ValueError(f"objective '{self.kind}' needs `cost_cap` (the CPU budget); e.g. "
                             f"Objective(kind='{self.kind}', cost_cap=2)")
        return self

    def describe(self) -> str:
        if self.kind == "accurate_within_budget":
            text = (f"the most accurate within {self.cost_cap:g} CPUs, then the cheapest within "
                    f"{self.accuracy_tolerance:g} of its accuracy")
        else:
            text = {"min_cost": "least cost", "max_accuracy": "best end-to-end accuracy",
                    "ipa": f"largest {self.accuracy_weight:g} x accuracy - {self.cost_weight:g} x cost"}[self.kind]
        if self.accuracy_floor is not None:
            text += f" with accuracy >= {self.accuracy_floor:.3f}"
        if self.cost_cap is not None and self.kind != "accurate_within_budget":
            text += f" with cost <= {self.cost_cap:g} CPUs"
        return text

    def keys(self, cost: np.ndarray, accuracy: np.ndarray, p99: np.ndarray) -> tuple[np.ndarray, ...]:
        """Lexicographic keys to minimize, one after the other, the same for MILP and enumeration; the first
        is held within `slack` of its optimum while the rest are minimized."""
        if self.kind == "min_cost":
            return cost, -accuracy, p99
        if self.kind == "max_accuracy":
            return -accuracy, cost, p99
        if self.kind == "accurate_within_budget":
            return -accuracy, cost, -accuracy, p99
        return -(self.accuracy_weight * accuracy - self.cost_weight * cost), cost, p99

    @property
    def slack(self) -> float:
        """How far above its optimum the first key may stay while the later keys are minimized."""
        return self.accuracy_tolerance if self.kind == "accurate_within_budget" else 0.0


def machine_cpus() -> int:
    """The CPUs this process may run on: the default budget, what this machine can give the pipeline."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def objective_from(kind: str, *, accuracy_floor: float = 0.0, cost_cap: float = 0.0,
                   accuracy_tolerance: float = 0.01) -> Objective:
    """A notebook's parameters as an Objective: 0 means "none" for the floor, and for the cap "none" unless the
    objective needs a budget, where it means the machine's CPUs (`machine_cpus`)."""
    needs_cap = kind in ("max_accuracy", "accurate_within_budget")
    cap = cost_cap or (float(machine_cpus()) if needs_cap else None)
    return Objective(kind=kind, accuracy_floor=accuracy_floor or None, cost_cap=cap,
                     accuracy_tolerance=accuracy_tolerance)


@dataclass(frozen=True)
class PipelineProblem:
    """Candidate rows that can be chosen (stable, finite p99, a measured pair accuracy), and the SLA."""

    detect: pd.DataFrame
    classify: pd.DataFrame
    pair_accuracy: dict[tuple[str, str], float]
    sla_ms: float
    rate_rps: float
    gateway_reserve_ms: float
    metric: str = "mAP50-95"
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows left out and why (unstable at the rate, no pair accuracy, dominated)."""

    @property
    def latency_budget_ms(self) -> float:
        """What the two steps' p99 may add up to: the SLA minus the gateway reserve."""
        return self.sla_ms - self.gateway_reserve_ms

    @property
    def empty(self) -> bool:
        return self.detect.empty or self.classify.empty or not self.pair_accuracy


def pair_accuracy_map(pipeline_accuracy: pd.DataFrame, metric: str) -> dict[tuple[str, str], float]:
    """{(detector, classifier): end-to-end accuracy} from notebook 01's `pipeline_accuracy` table."""
    if pipeline_accuracy is None or pipeline_accuracy.empty or metric not in pipeline_accuracy:
        return {}
    rows = pipeline_accuracy.dropna(subset=[metric])
    return {(str(d), str(c)): float(a) for d, c, a in zip(rows["detector"], rows["classifier"], rows[metric],
                                                           strict=True)}


def _usable(candidates: pd.DataFrame) -> pd.Series:
    p99 = pd.to_numeric(candidates["p99_ms"], errors="coerce")
    ok = p99.notna() & np.isfinite(p99)
    if "stable" in candidates:
        ok &= candidates["stable"].fillna(False).astype(bool)
    if "max_throughput_rps" in candidates and "rate_rps" in candidates:
        # A replica set saturated by its load has no steady-state p99, whatever a row says.
        ok &= ~(pd.to_numeric(candidates["rate_rps"], errors="coerce")
                >= pd.to_numeric(candidates["max_throughput_rps"], errors="coerce"))
    return ok


def prune_dominated(rows: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """Within each group (same variant, same upstream detector), keep rows no other beats on cost and p99.

    Rows of one group have the same accuracy, so a row with cost >= and p99 >= another's can never
    be the unique optimum of any objective here; the enumeration cross-check keeps them all.
    """
    if rows.empty:
        return rows
    ordered = rows.sort_values([*group, "cost", "p99_ms"], kind="mergesort")
    keep = []
    for _, part in ordered.groupby(group, sort=False, dropna=False):
        best = math.inf
        for index, p99 in zip(part.index, part["p99_ms"], strict=True):
            if p99 < best:
                keep.append(index)
                best = p99
    return rows.loc[sorted(keep)]


def build_problem(candidates: pd.DataFrame, pipeline_accuracy: pd.DataFrame, *, sla_ms: float, rate_rps: float,
                  gateway_reserve_ms: float = 0.0, metric: str = "mAP50-95", prune: bool = True) -> PipelineProblem:
    """The problem over a candidate table (profiling's contract columns) and notebook 01's pair accuracies.

    Never raises on empty or unusable input: the problem is then `empty`, and `solve` says so.
    """
    pairs = pair_accuracy_map(pipeline_accuracy, metric)
    if candidates is None or candidates.empty:
        empty = pd.DataFrame(columns=[*KEY, "cost", "p99_ms"])
        return PipelineProblem(empty, empty, pairs, sla_ms, rate_rps, gateway_reserve_ms, metric,
                               {"no candidate rows": 0})
    missing = [c for c in _NEEDED if c not in candidates]
    if missing:
        from ..errors import MilestoneError

        raise MilestoneError(f"candidate table lacks column(s) {', '.join(missing)}; build it with "
                             "profiling.candidate_table (see notebooks/04_scaling_sweep.ipynb)")
    table = candidates.copy()
    if "detector_variant" not in table:
        table["detector_variant"] = np.nan
    if "threads" not in table:
        table["threads"] = np.ceil(table["cpu"]).clip(lower=1).astype(int)
    usable = _usable(table)
    dropped = {"unstable or no p99 at this rate": int((~usable).sum())}
    table = table[usable]
    detect = table[table["step"] == "detect"]
    classify = table[table["step"] == "classify"]
    detectors = {d for d, _ in pairs}
    classifiers = {c for _, c in pairs}
    has_pair = detect["variant"].isin(detectors)
    dropped["detector without a pipeline accuracy"] = int((~has_pair).sum())
    detect = detect[has_pair]
    has_pair = classify["variant"].isin(classifiers) & classify["detector_variant"].isin(set(detect["variant"]))
    dropped["classifier without a pipeline accuracy or upstream row"] = int((~has_pair).sum())
    classify = classify[has_pair]
    if prune:
        before = len(detect) + len(classify)
        detect = prune_dominated(detect, ["variant"])
        classify = prune_dominated(classify, ["variant", "detector_variant"])
        dropped["dominated (same variant, costlier and slower)"] = before - len(detect) - len(classify)
    return PipelineProblem(detect.reset_index(drop=True), classify.reset_index(drop=True), pairs, float(sla_ms),
                           float(rate_rps), float(gateway_reserve_ms), metric, dropped)
