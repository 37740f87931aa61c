"""Exhaustive enumeration of every (detect row, classify row) pair: the MILP's cross-check, and the counts.

Pairs are formed per upstream detector variant (a classify row's load is set by its detector's
fan-out), as arrays, so the full grid (a few million pairs) takes well under a second per pass.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .diagnose import infeasible_solution
from .pairs import COLUMNS, Block, blocks, feasible_mask, pairs_frame
from .problem import Objective, PipelineProblem
from .solution import Solution, configuration_from_rows

__all__ = ["count_meeting", "meeting_table", "objective_keys", "solve_exhaustive"]


def objective_keys(objective: Objective, cost: float, accuracy: float, p99: float) -> tuple[float, ...]:
    """The objective's lexicographic keys of one configuration (to compare solvers)."""
    keys = objective.keys(np.array([cost]), np.array([accuracy]), np.array([p99]))
    return tuple(float(k[0]) for k in keys)


def solve_exhaustive(problem: PipelineProblem, objective: Objective, *, detector: str | None = None) -> Solution:
    """The optimum by trying every pair (optionally with the detector variant fixed)."""
    start = time.perf_counter()
    best: tuple[tuple[float, ...], Block, int, int] | None = None
    for block in blocks(problem):
        if detector is not None and block.detector != detector:
            continue
        mask = feasible_mask(block, problem, objective)
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        k1, k2, k3 = (np.asarray(k)[rows, cols] for k in objective.keys(block.cost, block.accuracy, block.p99))
        first = np.lexsort((k3, k2, k1))[0]
        keys = (float(k1[first]), float(k2[first]), float(k3[first]))
        if best is None or keys < best[0]:
            best = (keys, block, int(rows[first]), int(cols[first]))
    if best is None:
        return infeasible_solution(problem, objective, method="enumeration", seconds=time.perf_counter() - start,
                                   detector=detector)
    _, block, r, k = best
    d = problem.detect.iloc[block.d_index[r]]
    c = problem.classify.iloc[block.c_index[k]]
    config = configuration_from_rows(d, c, accuracy=float(block.accuracy[r, k]),
                                     gateway_reserve_ms=problem.gateway_reserve_ms)
    return Solution(feasible=True, objective=objective.describe(), method="enumeration", configuration=config,
                    objective_keys=objective_keys(objective, config.cost, config.accuracy, config.predicted_p99_ms),
                    seconds=time.perf_counter() - start)


def count_meeting(problem: PipelineProblem) -> int:
    """How many configurations (pairs of rows) meet the SLA at the problem's rate."""
    return int(sum(int(feasible_mask(b, problem).sum()) for b in blocks(problem)))


def meeting_table(problem: PipelineProblem, objective: Objective, *, limit: int = 50) -> pd.DataFrame:
    """The configurations that meet the SLA, best first by `objective`, at most `limit` of them."""
    parts = []
    for block in blocks(problem):
        rows, cols = np.nonzero(feasible_mask(block, problem))
        if not len(rows):
            continue
        k1, k2, k3 = (np.asarray(k)[rows, cols] for k in objective.keys(block.cost, block.accuracy, block.p99))
        order = np.lexsort((k3, k2, k1))[:limit]
        parts.append(pairs_frame(problem, block, rows[order], cols[order]).assign(_k1=k1[order], _k2=k2[order],
                                                                                  _k3=k3[order]))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(parts, ignore_index=True).sort_values(["_k1", "_k2", "_k3"], kind="mergesort")
    return table.drop(columns=["_k1", "_k2", "_k3"]).head(limit).reset_index(drop=True)
