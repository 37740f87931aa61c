"""Pipeline configurations as arrays: every (detect row, classify row) pair of one detector variant.

Pairs are formed per upstream detector variant (a classify row's load is set by its detector's
fan-out), so the full grid (a few million pairs) is a handful of numpy blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .problem import Objective, PipelineProblem

__all__ = ["COLUMNS", "Block", "blocks", "feasible_mask", "pairs_frame"]


@dataclass(frozen=True)
class Block:
    """Every pair of one detector variant's rows with the classify rows that follow it."""

    detector: str
    d_index: np.ndarray
    c_index: np.ndarray
    cost: np.ndarray
    accuracy: np.ndarray
    p99: np.ndarray
    """Predicted end-to-end p99 (the rule of problem.py, gateway reserve included)."""


def blocks(problem: PipelineProblem) -> Iterator[Block]:
    """One `Block` per detector variant that has both detect and classify rows."""
    d, c = problem.detect, problem.classify
    if problem.empty:
        return
    for v in sorted(set(d["variant"])):
        di = np.flatnonzero(d["variant"].to_numpy() == v)
        ci = np.flatnonzero(c["detector_variant"].to_numpy() == v)
        acc = np.array([problem.pair_accuracy.get((v, w), np.nan) for w in c["variant"].to_numpy()[ci]])
        ci = ci[~np.isnan(acc)]
        acc = acc[~np.isnan(acc)]
        if not len(di) or not len(ci):
            continue
        dc, dp = d["cost"].to_numpy(float)[di], d["p99_ms"].to_numpy(float)[di]
        cc, cp = c["cost"].to_numpy(float)[ci], c["p99_ms"].to_numpy(float)[ci]
        yield Block(v, di, ci, dc[:, None] + cc[None, :], np.broadcast_to(acc, (len(di), len(ci))),
                    dp[:, None] + cp[None, :] + problem.gateway_reserve_ms)


def feasible_mask(block: Block, problem: PipelineProblem, objective: Objective | None = None) -> np.ndarray:
    """Pairs that meet the SLA (and the objective's floor and cap, where given)."""
    mask = block.p99 <= problem.sla_ms + 1e-9
    if objective is not None and objective.accuracy_floor is not None:
        mask &= block.accuracy >= objective.accuracy_floor - 1e-12
    if objective is not None and objective.cost_cap is not None:
        mask &= block.cost <= objective.cost_cap + 1e-12
    return mask


_STEP = ["variant", "cpu", "batch", "replicas", "cost", "p99_ms", "source"]
COLUMNS = [f"{s}_{f}" for s in ("detect", "classify") for f in _STEP] + ["cost", "accuracy", "predicted_p99_ms"]


def pairs_frame(problem: PipelineProblem, block: Block, rows: np.ndarray, cols: np.ndarray) -> pd.DataFrame:
    d = problem.detect.iloc[block.d_index[rows]].reset_index(drop=True)
    c = problem.classify.iloc[block.c_index[cols]].reset_index(drop=True)
    frame = pd.DataFrame({f"detect_{f}": d.get(f) for f in _STEP})
    for f in _STEP:
        frame[f"classify_{f}"] = c.get(f)
    frame["cost"] = block.cost[rows, cols]
    frame["accuracy"] = block.accuracy[rows, cols]
    frame["predicted_p99_ms"] = block.p99[rows, cols]
    return frame
