"""The MILP's optimum equals exhaustive enumeration of the same grid, for every objective, on many grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from milestone_lib.optimize import (
    REGRET_COST_FACTOR,
    REGRET_GAIN,
    Objective,
    better_for_little_more,
    build_problem,
    count_meeting,
    on_front,
    pareto_front,
    random_grid,
    solve_exhaustive,
    solve_milp,
)

OBJECTIVES = [Objective(kind="min_cost"), Objective(kind="min_cost", accuracy_floor=0.6),
              Objective(kind="max_accuracy", cost_cap=3.0), Objective(kind="max_accuracy", cost_cap=6.0),
              Objective(kind="ipa"), Objective(kind="ipa", accuracy_weight=5.0, accuracy_floor=0.4),
              Objective(kind="accurate_within_budget", cost_cap=3.0),
              Objective(kind="accurate_within_budget", cost_cap=6.0, accuracy_tolerance=0.05)]


def _both(grid, objective: Objective, *, sla_ms: float, rate: float = 20.0, reserve: float = 20.0):
    cand, acc = grid.candidates(rate), grid.pipeline_accuracy()
    pruned = build_problem(cand, acc, sla_ms=sla_ms, rate_rps=rate, gateway_reserve_ms=reserve)
    full = build_problem(cand, acc, sla_ms=sla_ms, rate_rps=rate, gateway_reserve_ms=reserve, prune=False)
    return solve_milp(pruned, objective), solve_exhaustive(full, objective), full


@pytest.mark.parametrize("seed", range(12))
def test_milp_equals_enumeration_on_random_grids(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = random_grid(seed, detectors=int(rng.integers(1, 5)), classifiers=int(rng.integers(1, 5)))
    for objective in OBJECTIVES:
        for sla_ms in (60.0, 150.0, 400.0):
            milp, enum, _ = _both(grid, objective, sla_ms=sla_ms)
            assert milp.feasible == enum.feasible, (seed, objective, sla_ms)
            if milp.feasible:
                assert milp.objective_keys == pytest.approx(enum.objective_keys, rel=1e-9, abs=1e-9)
                config = milp.configuration
                assert config.predicted_p99_ms <= sla_ms + 1e-9
                if objective.accuracy_floor is not None:
                    assert config.accuracy >= objective.accuracy_floor
                if objective.cost_cap is not None:
                    assert config.cost <= objective.cost_cap + 1e-9


def test_milp_equals_enumeration_on_the_default_grid() -> None:
    # The milestone's grid: 8 variants per step (2 sizes x 4 formats), 4 CPU values, 4 batch sizes, 1-16 replicas.
    grid = random_grid(42, detectors=8, classifiers=8, cpus=(0.25, 0.5, 1, 2), batches=(1, 2, 4, 8),
                       replicas=range(1, 17))
    for objective in (Objective(kind="min_cost", accuracy_floor=0.7), Objective(kind="max_accuracy", cost_cap=5),
                      Objective(kind="ipa")):
        milp, enum, full = _both(grid, objective, sla_ms=250.0)
        assert milp.feasible and enum.feasible
        assert milp.objective_keys == pytest.approx(enum.objective_keys, rel=1e-9)
    assert count_meeting(full) > 1000  # many configurations meet it: T3's first question


def test_the_classifier_row_follows_the_chosen_detector_and_accuracy_is_the_pair_measurement() -> None:
    grid = random_grid(5, detectors=3, classifiers=3)
    milp, _, _ = _both(grid, Objective(kind="ipa"), sla_ms=300.0)
    config = milp.configuration
    assert config.classify["detector_variant"] == config.detect["variant"]
    assert config.accuracy == grid.pair_accuracy[(config.detect["variant"], config.classify["variant"])]
    # The classifier's load is the pipeline rate times this detector's crops per image.
    assert config.classify["items_per_request"] == pytest.approx(grid.fanout[config.detect["variant"]])


def test_a_pair_without_a_measured_accuracy_is_never_chosen() -> None:
    grid = random_grid(9, detectors=2, classifiers=2)
    best = solve_milp(build_problem(grid.candidates(20), grid.pipeline_accuracy(), sla_ms=400, rate_rps=20),
                      Objective(kind="max_accuracy", cost_cap=8)).configuration
    pair = (best.detect["variant"], best.classify["variant"])
    without = grid.with_changes(pair_accuracy={k: v for k, v in grid.pair_accuracy.items() if k != pair})
    if not without.pair_accuracy:
        pytest.skip("the grid had a single pair")
    again = solve_milp(build_problem(without.candidates(20), without.pipeline_accuracy(), sla_ms=400, rate_rps=20),
                       Objective(kind="max_accuracy", cost_cap=8))
    assert not again.feasible or (again.configuration.detect["variant"],
                                  again.configuration.classify["variant"]) != pair


def test_pruning_keeps_only_rows_that_no_other_row_of_the_same_group_beats() -> None:
    grid = random_grid(3)
    cand = grid.candidates(20)
    pruned = build_problem(cand, grid.pipeline_accuracy(), sla_ms=300, rate_rps=20)
    full = build_problem(cand, grid.pipeline_accuracy(), sla_ms=300, rate_rps=20, prune=False)
    assert len(pruned.classify) < len(full.classify)
    for _, rows in pd.concat([pruned.detect, pruned.classify]).groupby(["step", "variant", "detector_variant"],
                                                                        dropna=False):
        ordered = rows.sort_values("cost")
        # Along rising cost the p99 strictly falls, or the costlier row would be dominated.
        assert (ordered["p99_ms"].diff().dropna() < 0).all()


@pytest.mark.parametrize("seed", range(12))
def test_accurate_within_budget_is_the_cheapest_near_the_best_and_leaves_nothing_better_within_the_budget(
        seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = random_grid(seed, detectors=int(rng.integers(2, 5)), classifiers=int(rng.integers(2, 5)))
    for cap in (1.0, 3.0, 100.0):
        objective = Objective(kind="accurate_within_budget", cost_cap=cap)
        for sla_ms in (150.0, 400.0):
            milp, _, full = _both(grid, objective, sla_ms=sla_ms)
            if not milp.feasible:
                continue
            config, front = milp.configuration, pareto_front(full)
            assert on_front(front, config)
            within = front[front.cost <= cap + 1e-9]
            best = within.accuracy.max()
            assert config.cost <= cap + 1e-9
            assert config.accuracy >= best - objective.accuracy_tolerance - 1e-9
            # Nothing within the tolerance of the best is cheaper.
            assert not ((within.accuracy >= best - objective.accuracy_tolerance - 1e-9)
                        & (within.cost < config.cost - 1e-9)).any()
            # What the regret rule finds (>= 0.05 more accuracy at <= 1.5x the cost) lies beyond the budget.
            regret = better_for_little_more(front, config)
            assert (regret.cost > cap + 1e-9).all()
            if cap >= 100.0:
                assert regret.empty


@pytest.mark.parametrize("seed", [1, 9, 16])
def test_least_cost_can_leave_accuracy_on_the_table_and_the_accuracy_first_objective_does_not(seed: int) -> None:
    grid = random_grid(seed, detectors=4, classifiers=3)
    cheapest, _, full = _both(grid, Objective(kind="min_cost"), sla_ms=400.0)
    front = pareto_front(full)
    regret = better_for_little_more(front, cheapest.configuration)
    assert len(regret) >= 1  # these grids are picked for it: least cost leaves >= 0.05 for <= 1.5x the cost
    assert (regret.accuracy >= cheapest.configuration.accuracy + REGRET_GAIN - 1e-9).all()
    assert (regret.cost <= REGRET_COST_FACTOR * cheapest.configuration.cost + 1e-9).all()
    first, _, _ = _both(grid, Objective(kind="accurate_within_budget", cost_cap=float(full.detect.cost.max() * 8)),
                        sla_ms=400.0)
    assert better_for_little_more(front, first.configuration).empty
