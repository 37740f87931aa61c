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


def _ranked(objective: Objective, keys: list[np.ndarray], first_best: float) -> list[np.ndarray]:
    """The objective's keys with the first one flattened within its slack of `first_best` (problem.Objective)."""
    if objective.slack:
        keys = [np.where(keys[0] <= first_best + objective.slack + 1e-9, first_best, keys[0]), *keys[1:]]
    return keys


def _lexsort(keys: list[np.ndarray]) -> np.ndarray:
    return np.lexsort(tuple(reversed(keys)))


def solve_exhaustive(problem: PipelineProblem, objective: Objective, *, detector: str | None = None) -> Solution:
    """The optimum by trying every pair (optionally with the detector variant fixed)."""
    start = time.perf_counter()
    found = []
    for block in blocks(problem):
        if detector is not None and block.detector != detector:
            continue
        mask = feasible_mask(block, problem, objective)
        if mask.any():
            rows, cols = np.nonzero(mask)
            found.append((block, rows, cols, [np.asarray(k)[rows, cols]
                                              for k in objective.keys(block.cost, block.accuracy, block.p99)]))
    if not found:
        return infeasible_solution(problem, objective, method="enumeration", seconds=time.perf_counter() - start,
                                   detector=detector)
    first_best = min(float(keys[0].min()) for *_, keys in found)
    best: tuple[tuple[float, ...], Block, int, int] | None = None
    for block, rows, cols, keys in found:
        ranked = _ranked(objective, keys, first_best)
        first = _lexsort(ranked)[0]
        key = tuple(float(k[first]) for k in ranked)
        if best is None or key < best[0]:
            best = (key, block, int(rows[first]), int(cols[first]))
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
    found = []
    for block in blocks(problem):
        rows, cols = np.nonzero(feasible_mask(block, problem))
        if len(rows):
            found.append((block, rows, cols, [np.asarray(k)[rows, cols]
                                              for k in objective.keys(block.cost, block.accuracy, block.p99)]))
    if not found:
        return pd.DataFrame(columns=COLUMNS)
    # Within the budget first: the objective's own order, then what lies beyond its constraints.
    within = [feasible_mask(b, problem, objective)[r, c] for b, r, c, _ in found]
    first_best = min((float(k[0][w].min()) for (*_, k), w in zip(found, within, strict=True) if w.any()),
                     default=min(float(k[0].min()) for *_, k in found))
    parts = []
    for (block, rows, cols, keys), inside in zip(found, within, strict=True):
        ranked = [(~inside).astype(float), *_ranked(objective, keys, first_best)]
        order = _lexsort(ranked)[:limit]
        parts.append(pairs_frame(problem, block, rows[order], cols[order]).assign(
            **{f"_k{i}": k[order] for i, k in enumerate(ranked)}))
    sort = [f"_k{i}" for i in range(len(ranked))]
    table = pd.concat(parts, ignore_index=True).sort_values(sort, kind="mergesort")
    return table.drop(columns=sort).head(limit).reset_index(drop=True)
