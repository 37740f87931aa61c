"""The optimizer as a mixed-integer program, solved by HiGHS (`highspy`).

Variables: x_i (binary) picks detect row i, y_j (binary) picks classify row j (each classify row
belongs to one upstream detector variant), z_vw (continuous, 0..1) is the detector-variant x
classifier-variant pair. Constraints:

    sum_i x_i = 1
    for each detector variant v:   sum_{j of v} y_j = sum_{i of v} x_i        (fan-out: the classify
                                                                               row matches its detector)
    for each detector variant v:   sum_w z_vw = X_v ;  for each classifier variant w: sum_v z_vw = Y_w
    sum p99_i x_i + sum p99_j y_j <= SLA - gateway reserve                     (problem.py's rule)
    [sum acc_vw z_vw >= floor]    [sum cost_i x_i + sum cost_j y_j <= cap]

With X and Y one-hot, the only z with those margins is z_vw = X_v * Y_w, so the pair accuracy
sum acc_vw z_vw is the measured accuracy of the chosen pair. The objective's keys (problem.Objective)
are minimized one after the other, each earlier one held at its optimum.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from .diagnose import infeasible_solution
from .enumerate import objective_keys
from .problem import Objective, PipelineProblem
from .solution import Solution, configuration_from_rows

__all__ = ["solve_milp"]

_TOL = 1e-9


class _Model:
    """Columns x | y | z and the linear forms of cost, accuracy and p99 over them."""

    def __init__(self, problem: PipelineProblem) -> None:
        d, c = problem.detect, problem.classify
        self.problem = problem
        self.nd, self.nc = len(d), len(c)
        self.pairs = sorted((v, w) for (v, w) in problem.pair_accuracy
                            if v in set(d["variant"]) and w in set(c["variant"]))
        self.n = self.nd + self.nc + len(self.pairs)
        zeros = np.zeros(len(self.pairs))
        self.cost = np.concatenate([d["cost"].to_numpy(float), c["cost"].to_numpy(float), zeros])
        self.p99 = np.concatenate([d["p99_ms"].to_numpy(float), c["p99_ms"].to_numpy(float), zeros])
        self.acc = np.concatenate([np.zeros(self.nd + self.nc),
                                   np.array([problem.pair_accuracy[p] for p in self.pairs], dtype=float)])
        self.rows: list[tuple[float, float, np.ndarray, np.ndarray]] = []
        self._structure(d["variant"].to_numpy(str), c["variant"].to_numpy(str), c["detector_variant"].to_numpy(str))

    def _add(self, lower: float, upper: float, index: list[int] | np.ndarray, value: list[float] | np.ndarray) -> None:
        self.rows.append((lower, upper, np.asarray(index, dtype=np.int32), np.asarray(value, dtype=float)))

    def _structure(self, dv: np.ndarray, cv: np.ndarray, cdv: np.ndarray) -> None:
        nd, nc = self.nd, self.nc
        self._add(1, 1, np.arange(nd), np.ones(nd))
        z_of = {p: nd + nc + k for k, p in enumerate(self.pairs)}
        for v in sorted(set(dv)):
            xs = np.flatnonzero(dv == v)
            ys = nd + np.flatnonzero(cdv == v)
            self._add(0, 0, np.concatenate([ys, xs]), np.concatenate([np.ones(len(ys)), -np.ones(len(xs))]))
            zs = [z_of[p] for p in self.pairs if p[0] == v]
            self._add(0, 0, np.concatenate([zs, xs]).astype(int), np.concatenate([np.ones(len(zs)), -np.ones(len(xs))]))
        for w in sorted(set(cv)):
            ys = nd + np.flatnonzero(cv == w)
            zs = [z_of[p] for p in self.pairs if p[1] == w]
            self._add(0, 0, np.concatenate([zs, ys]).astype(int), np.concatenate([np.ones(len(zs)), -np.ones(len(ys))]))
        lat = np.flatnonzero(self.p99)
        self._add(-highspy.kHighsInf, self.problem.latency_budget_ms, lat, self.p99[lat])
        # The same latency rule, pair by pair: a classify row is chosen only with a detect row whose p99
        # leaves it room. Implied by the row above for integer points, but it makes the LP relaxation tight.
        budget = self.problem.latency_budget_ms
        dp, cp = self.p99[:nd], self.p99[nd: nd + nc]
        for j in range(nc):
            xs = np.flatnonzero((dv == cdv[j]) & (dp + cp[j] <= budget + 1e-9))
            self._add(-highspy.kHighsInf, 0, np.concatenate([[nd + j], xs]), np.concatenate([[1.0], -np.ones(len(xs))]))

    def constrain(self, objective: Objective) -> None:
        if objective.accuracy_floor is not None:
            idx = np.flatnonzero(self.acc)
            self._add(objective.accuracy_floor, highspy.kHighsInf, idx, self.acc[idx])
        if objective.cost_cap is not None:
            idx = np.flatnonzero(self.cost)
            self._add(-highspy.kHighsInf, objective.cost_cap, idx, self.cost[idx])

    def highs(self) -> highspy.Highs:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 0.0)
        # HiGHS presolve probes every binary of the pair rows: seconds on the full grid, for a model
        # whose LP relaxation is already tight; without it the root node solves it.
        h.setOptionValue("presolve", "off")
        lower = np.zeros(self.n)
        upper = np.ones(self.n)
        h.addVars(self.n, lower, upper)
        integrality = [highspy.HighsVarType.kInteger] * (self.nd + self.nc) + \
                      [highspy.HighsVarType.kContinuous] * len(self.pairs)
        h.changeColsIntegrality(self.n, np.arange(self.n, dtype=np.int32), np.array(integrality))
        for lo, up, index, value in self.rows:
            h.addRow(lo, up, len(index), index, value)
        return h


def solve_milp(problem: PipelineProblem, objective: Objective) -> Solution:
    """The optimum of `objective` over `problem` by HiGHS; an infeasible or empty problem says so."""
    start = time.perf_counter()
    if problem.empty:
        return infeasible_solution(problem, objective, method="milp", seconds=time.perf_counter() - start)
    model = _Model(problem)
    model.constrain(objective)
    h = model.highs()
    everything = np.arange(model.n, dtype=np.int32)
    for position, form in enumerate(objective.keys(model.cost, model.acc, model.p99)):
        h.changeColsCost(model.n, everything, np.asarray(form, dtype=float))
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return infeasible_solution(problem, objective, method="milp", seconds=time.perf_counter() - start)
        value = float(np.dot(form, np.asarray(h.getSolution().col_value)))
        # Hold this key at its optimum (the first one within the objective's slack) while the next is minimized.
        slack = objective.slack if position == 0 else 0.0
        nz = np.flatnonzero(form)
        h.addRow(-highspy.kHighsInf, value + slack + _TOL * max(1.0, abs(value)), len(nz), nz.astype(np.int32),
                 form[nz])
    chosen = np.round(np.asarray(h.getSolution().col_value)).astype(int)
    i = int(np.flatnonzero(chosen[: model.nd])[0])
    j = int(np.flatnonzero(chosen[model.nd: model.nd + model.nc])[0])
    d, c = problem.detect.iloc[i], problem.classify.iloc[j]
    config = configuration_from_rows(d, c, accuracy=problem.pair_accuracy[(d["variant"], c["variant"])],
                                     gateway_reserve_ms=problem.gateway_reserve_ms)
    return Solution(feasible=True, objective=objective.describe(), method="milp", configuration=config,
                    objective_keys=objective_keys(objective, config.cost, config.accuracy, config.predicted_p99_ms),
                    seconds=time.perf_counter() - start)
