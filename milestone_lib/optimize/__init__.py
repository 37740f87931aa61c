"""Optimization (T3): which variant, CPU, batching and replicas per step meet the pipeline SLA best.

    problem.py    Objective, PipelineProblem (build_problem): the candidate rows and the e2e p99 rule
    milp.py       solve_milp: the mixed-integer program (HiGHS), fan-out and pair accuracy included
    pairs.py      every (detect row, classify row) pair per detector variant, as numpy blocks
    enumerate.py  solve_exhaustive, count_meeting, meeting_table: every pair tried (the cross-check)
    diagnose.py   nothing meets it: why, the closest configurations, what would have to change
    solution.py   Configuration, Solution
    pareto.py     pareto_front, hypervolume, cost_accuracy_cloud, better_for_little_more (the regret rule)
    baselines.py  static smallest / most accurate, INFaaS-style per step, IPA-style (no fan-out)
    source.py     SweepSource (notebook 04's profiles at any rate), SyntheticSource, load_pipeline_accuracy
    t3.py         t3_answers: every T3 question answered with numbers
    words.py      the sentences, built from those numbers
    answers.py    T3Answers (.to_markdown, .save -> 05_t3_answers.{json,md}), load_t3_answers
    rule.py       rule_against_pipeline: the e2e rule vs notebook 04's measured pipeline rows; gateway_overhead_ms
    check.py      deploy, drive with Poisson load, compare measured p99 / goodput / attainment with the prediction
    plots.py      plot_pareto, plot_prediction_check
    synthetic.py  SyntheticGrid / random_grid: candidate tables from a few numbers (tests, benchmarks)
"""

from __future__ import annotations

from .answers import ANSWER_FILES, T3Answers, load_t3_answers
from .baselines import evaluate, ipa_style, per_step, static_variants
from .check import (
    CheckPlan,
    check_plan,
    check_summary,
    deployment_for,
    forecast_p99_ms,
    mean_ci,
    measure_configurations,
)
from .diagnose import closest_configurations, infeasible_solution
from .enumerate import count_meeting, meeting_table, objective_keys, solve_exhaustive
from .milp import solve_milp
from .pareto import (
    REGRET_COST_FACTOR,
    REGRET_GAIN,
    better_for_little_more,
    cost_accuracy_cloud,
    front_steps,
    hypervolume,
    on_front,
    pair_frontier,
    pareto_front,
)
from .plots import plot_pareto, plot_prediction_check
from .problem import (
    KEY,
    Objective,
    PipelineProblem,
    build_problem,
    machine_cpus,
    objective_from,
    pair_accuracy_map,
    prune_dominated,
)
from .rule import gateway_overhead_ms, rule_against_pipeline
from .solution import Configuration, Solution, configuration_from_rows
from .source import (
    CandidateSource,
    SweepSource,
    SyntheticSource,
    load_pipeline_accuracy,
)
from .synthetic import SyntheticGrid, random_grid
from .t3 import RULE, t3_answers

__all__ = [
    "ANSWER_FILES",
    "KEY",
    "REGRET_COST_FACTOR",
    "REGRET_GAIN",
    "RULE",
    "CandidateSource",
    "CheckPlan",
    "Configuration",
    "Objective",
    "PipelineProblem",
    "Solution",
    "SweepSource",
    "SyntheticGrid",
    "SyntheticSource",
    "T3Answers",
    "better_for_little_more",
    "build_problem",
    "check_plan",
    "check_summary",
    "closest_configurations",
    "configuration_from_rows",
    "cost_accuracy_cloud",
    "count_meeting",
    "deployment_for",
    "evaluate",
    "forecast_p99_ms",
    "front_steps",
    "gateway_overhead_ms",
    "hypervolume",
    "infeasible_solution",
    "ipa_style",
    "load_pipeline_accuracy",
    "load_t3_answers",
    "machine_cpus",
    "mean_ci",
    "measure_configurations",
    "meeting_table",
    "objective_from",
    "objective_keys",
    "on_front",
    "pair_accuracy_map",
    "pair_frontier",
    "pareto_front",
    "per_step",
    "plot_pareto",
    "plot_prediction_check",
    "prune_dominated",
    "random_grid",
    "rule_against_pipeline",
    "solve_exhaustive",
    "solve_milp",
    "static_variants",
    "t3_answers",
]
