"""Bad input gives an answer that says nothing meets it, the closest configurations and what would change."""

from __future__ import annotations

import pandas as pd

from milestone_lib.optimize import (
    Objective,
    build_problem,
    random_grid,
    solve_exhaustive,
    solve_milp,
    t3_answers,
)

GRID = random_grid(11, detectors=2, classifiers=2)


def _solve(objective: Objective, *, sla_ms: float = 300.0, candidates: pd.DataFrame | None = None):
    cand = GRID.candidates(20) if candidates is None else candidates
    problem = build_problem(cand, GRID.pipeline_accuracy(), sla_ms=sla_ms, rate_rps=20, gateway_reserve_ms=20)
    return solve_milp(problem, objective), solve_exhaustive(problem, objective)


def test_an_sla_no_configuration_meets() -> None:
    for solution in _solve(Objective(), sla_ms=21.0):
        assert not solution.feasible
        assert "within the SLA of 21 ms" in solution.reason
        assert "the SLA would have to be at least" in solution.what_would_change[0]
        assert len(solution.closest) == 5 and (solution.closest["predicted_p99_ms"] > 21).all()
        assert "Nothing meets it" in solution.sentence()


def test_an_accuracy_floor_above_every_option() -> None:
    best = max(GRID.pair_accuracy.values())
    for solution in _solve(Objective(kind="min_cost", accuracy_floor=best + 0.05)):
        assert not solution.feasible
        assert f"below the floor {best + 0.05:.3f}" in solution.reason
        assert "accuracy floor would have to be at most" in solution.what_would_change[0]
        assert "accuracy" in solution.closest["misses"].iloc[0]


def test_a_cost_cap_below_the_cheapest() -> None:
    for solution in _solve(Objective(kind="max_accuracy", cost_cap=0.1)):
        assert not solution.feasible
        assert "the cost cap would have to be at least" in solution.what_would_change[0]


def test_an_empty_profile() -> None:
    for solution in _solve(Objective(), candidates=pd.DataFrame()):
        assert not solution.feasible
        assert "no configuration to choose from" in solution.reason
        assert "notebook 04" in solution.what_would_change[0]


def test_t3_answers_on_bad_input_say_so_without_raising() -> None:
    answers = t3_answers(GRID.candidates(20), GRID.pipeline_accuracy(), sla_ms=21.0, rate_rps=20,
                         gateway_reserve_ms=20)
    assert not answers.feasible and answers.recommendation == {}
    assert answers.sentences["recommendation"].startswith("Nothing meets it")
    assert answers.figures["meeting_count"] == 0
    assert len(answers.tables["closest"]) > 0
    assert "Closest configurations" in answers.to_markdown()
    empty = t3_answers(pd.DataFrame(), pd.DataFrame(), sla_ms=500, rate_rps=20, gateway_reserve_ms=50)
    assert not empty.feasible and "no configuration to choose from" in empty.sentences["recommendation"]
