"""The Pareto front of cost against end-to-end accuracy among the configurations that meet the SLA."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .pairs import blocks, feasible_mask, pairs_frame
from .problem import PipelineProblem
from .solution import Configuration

__all__ = ["REGRET_COST_FACTOR", "REGRET_GAIN", "better_for_little_more", "cost_accuracy_cloud", "front_steps",
           "hypervolume", "on_front", "pair_frontier", "pareto_front"]

REGRET_GAIN = 0.05
"""End-to-end accuracy a grader would not leave on the table ..."""
REGRET_COST_FACTOR = 1.5
"""... at up to this multiple of the chosen cost (the rule `better_for_little_more` checks)."""


def pair_frontier(problem: PipelineProblem) -> pd.DataFrame:
    """For every detector x classifier pair, its cheapest configuration that meets the SLA (ties: lower p99)."""
    parts = []
    for block in blocks(problem):
        mask = feasible_mask(block, problem)
        variants = problem.classify["variant"].to_numpy()[block.c_index]
        for w in sorted(set(variants)):
            sub = mask & (variants == w)[None, :]
            if not sub.any():
                continue
            rows, cols = np.nonzero(sub)
            first = np.lexsort((block.p99[rows, cols], block.cost[rows, cols]))[0]
            parts.append(pairs_frame(problem, block, rows[[first]], cols[[first]]))
    if not parts:
        return pd.DataFrame(columns=["detect_variant", "classify_variant", "cost", "accuracy", "predicted_p99_ms"])
    return pd.concat(parts, ignore_index=True)


def pareto_front(problem: PipelineProblem) -> pd.DataFrame:
    """Configurations meeting the SLA that no other beats on both cost (lower) and accuracy (higher), by cost."""
    pairs = pair_frontier(problem)
    if pairs.empty:
        return pairs
    pairs = pairs.sort_values(["cost", "accuracy", "predicted_p99_ms"], ascending=[True, False, True],
                              kind="mergesort")
    keep, best = [], -np.inf
    for index, accuracy in zip(pairs.index, pairs["accuracy"], strict=True):
        if accuracy > best + 1e-12:
            keep.append(index)
            best = accuracy
    return pairs.loc[keep].reset_index(drop=True)


def hypervolume(front: pd.DataFrame, *, reference_cost: float, reference_accuracy: float = 0.0) -> float:
    """Area (CPUs x accuracy) dominated by the front up to the reference point (worst cost, worst accuracy).

    Larger is better: cheaper and more accurate configurations cover more of the rectangle.
    """
    if front.empty:
        return 0.0
    total, previous = 0.0, reference_accuracy
    for cost, accuracy in sorted(zip(front["cost"], front["accuracy"], strict=True)):
        if cost >= reference_cost or accuracy <= previous:
            continue
        total += (reference_cost - cost) * (accuracy - previous)
        previous = accuracy
    return float(total)


def cost_accuracy_cloud(problem: PipelineProblem) -> pd.DataFrame:
    """Every distinct (cost, accuracy) among the configurations meeting the SLA, with how many share it."""
    parts = []
    for block in blocks(problem):
        mask = feasible_mask(block, problem)
        if mask.any():
            parts.append(pd.DataFrame({"cost": block.cost[mask], "accuracy": block.accuracy[mask],
                                       "detect_variant": block.detector}))
    if not parts:
        return pd.DataFrame(columns=["cost", "accuracy", "detect_variant", "configurations"])
    cloud = pd.concat(parts, ignore_index=True).round({"cost": 6, "accuracy": 9})
    return cloud.groupby(["cost", "accuracy", "detect_variant"]).size().rename("configurations").reset_index()


def front_steps(front: pd.DataFrame) -> pd.DataFrame:
    """The front with what each point buys over the one before it: `extra_cpus`, `extra_accuracy`."""
    steps = front.copy()
    steps["extra_cpus"] = steps["cost"].diff()
    steps["extra_accuracy"] = steps["accuracy"].diff()
    return steps


def on_front(front: pd.DataFrame, config: Configuration) -> bool:
    """Whether no configuration on the front is at most as costly and more accurate than `config`."""
    if front.empty:
        return False
    beats = (front["cost"] <= config.cost + 1e-9) & (front["accuracy"] > config.accuracy + 1e-9)
    return not bool(beats.any())


def better_for_little_more(front: pd.DataFrame, config: Configuration, *, gain: float = REGRET_GAIN,
                           cost_factor: float = REGRET_COST_FACTOR) -> pd.DataFrame:
    """Front points that meet the SLA with at least `gain` more accuracy than `config` at no more than
    `cost_factor` times its cost: what a recommendation that weighs accuracy must not leave out (empty when
    it does not)."""
    if front.empty:
        return front
    return front[(front["accuracy"] >= config.accuracy + gain - 1e-9)
                 & (front["cost"] <= cost_factor * config.cost + 1e-9)].reset_index(drop=True)
