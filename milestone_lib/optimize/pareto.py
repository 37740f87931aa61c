"""The Pareto front of cost against end-to-end accuracy among the configurations that meet the SLA."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .pairs import blocks, feasible_mask, pairs_frame
from .problem import PipelineProblem

__all__ = ["cost_accuracy_cloud", "hypervolume", "pair_frontier", "pareto_front"]


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
