"""Baselines on the same profiles; IPA-style (no fan-out) shown missing the SLA or over-paying, in numbers."""

from __future__ import annotations

import math

from milestone_lib.optimize import (
    Objective,
    SyntheticGrid,
    build_problem,
    evaluate,
    ipa_style,
    per_step,
    solve_milp,
    static_variants,
)

BASE = {"detect_ms": {"det": 10.0}, "classify_ms": {"cls-small": 2.0, "cls-large": 6.0},
            "pair_accuracy": {("det", "cls-small"): 0.5, ("det", "cls-large"): 0.6},
            "step_accuracy": {"det": 0.6, "cls-small": 0.7, "cls-large": 0.8}}


def _ipa(fanout: float, objective: Objective, sla_ms: float = 200.0):
    grid = SyntheticGrid(fanout={"det": fanout}, **BASE)
    cand = grid.candidates(20)
    problem = build_problem(cand, grid.pipeline_accuracy(), sla_ms=sla_ms, rate_rps=20, gateway_reserve_ms=20)
    believed, actual = ipa_style(grid.candidates(20, ignore_fanout=True), grid.pipeline_accuracy(), cand, problem,
                                 objective)
    return believed, actual, solve_milp(problem, objective).configuration


def test_ipa_style_under_provisions_a_high_fan_out_and_misses_the_sla() -> None:
    believed, actual, optimum = _ipa(8.0, Objective(kind="min_cost"))
    assert believed.predicted_p99_ms <= 200  # what it believed with one crop per image
    assert actual.predicted_p99_ms > 200 or math.isinf(actual.predicted_p99_ms)  # at 8 crops per image
    assert actual.cost < optimum.cost  # it saved CPUs by ignoring the load
    assert optimum.predicted_p99_ms <= 200


def test_ipa_style_over_pays_a_fan_out_below_one() -> None:
    _believed, actual, optimum = _ipa(0.2, Objective(kind="min_cost"), sla_ms=40.0)
    assert actual.predicted_p99_ms <= 40  # it meets the SLA...
    assert actual.cost > optimum.cost  # ...with CPUs provisioned for crops that never come


def test_static_and_per_step_baselines_fix_what_they_say() -> None:
    grid = SyntheticGrid(fanout={"det": 2.0}, **BASE)
    cand = grid.candidates(20)
    problem = build_problem(cand, grid.pipeline_accuracy(), sla_ms=200, rate_rps=20, gateway_reserve_ms=20)
    small = static_variants(problem, most_accurate=False)
    large = static_variants(problem, most_accurate=True)
    assert small.classify["variant"] == "cls-small" and large.classify["variant"] == "cls-large"
    assert small.predicted_p99_ms <= 200 and large.predicted_p99_ms <= 200
    infaas = per_step(problem, Objective(kind="min_cost"), {"detect": 100.0, "classify": 80.0})
    assert infaas.detect["p99_ms"] <= 100 and infaas.classify["p99_ms"] <= 80
    assert evaluate(infaas, cand, problem).predicted_p99_ms == infaas.predicted_p99_ms
