"""The optimizer on the full grid: MILP (HiGHS) against exhaustive enumeration, side by side.

    nice -n 10 .venv/bin/python benchmarks/bench_optimize.py [--repeats 5] [--seeds 3] [--json FILE]

Grid: 2 steps x 8 variants x 4 CPU values (1, 2, 4, 8) x 4 batch sizes (1, 2, 4, 8) x 1-16 replicas,
the classifier once per detector variant (fan-out): 2,048 detect rows and 16,384 classify rows,
about 4 million pipeline configurations. Candidate tables are synthetic (`optimize.random_grid`,
one per seed), so the figures measure the solver, not the profiles. Each round times, in alternating
order, the MILP (problem build with dominance pruning + the lexicographic solves) and the
enumeration of every pair; the figures are medians over the rounds. Target: the MILP under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from milestone_lib.optimize import (
    Objective,
    build_problem,
    random_grid,
    solve_exhaustive,
    solve_milp,
)

OBJECTIVES = {"min_cost (floor 0.7)": Objective(kind="min_cost", accuracy_floor=0.7),
              "max_accuracy (cap 12)": Objective(kind="max_accuracy", cost_cap=12),
              "ipa": Objective(kind="ipa")}


def _milp(cand, acc, objective: Objective) -> tuple[float, tuple]:
    start = time.perf_counter()
    solution = solve_milp(build_problem(cand, acc, sla_ms=200, rate_rps=20, gateway_reserve_ms=20), objective)
    return time.perf_counter() - start, solution.objective_keys


def _enumerate(cand, acc, objective: Objective) -> tuple[float, tuple]:
    start = time.perf_counter()
    problem = build_problem(cand, acc, sla_ms=200, rate_rps=20, gateway_reserve_ms=20, prune=False)
    solution = solve_exhaustive(problem, objective)
    return time.perf_counter() - start, solution.objective_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for seed in range(args.seeds):
        grid = random_grid(seed, detectors=8, classifiers=8, cpus=(1, 2, 4, 8), batches=(1, 2, 4, 8),
                           replicas=range(1, 17))
        cand, acc = grid.candidates(20), grid.pipeline_accuracy()
        for name, objective in OBJECTIVES.items():
            milp, enum, agree = [], [], True
            for round_ in range(args.repeats):
                order = (_milp, _enumerate) if round_ % 2 == 0 else (_enumerate, _milp)
                timed = {fn: fn(cand, acc, objective) for fn in order}
                milp.append(timed[_milp][0])
                enum.append(timed[_enumerate][0])
                agree &= timed[_milp][1] == timed[_enumerate][1]
            row = {"seed": seed, "objective": name, "rows": len(cand), "milp_s": statistics.median(milp),
                   "enumeration_s": statistics.median(enum), "same_optimum": agree}
            results.append(row)
            print(f"seed {seed}  {name:22s}  rows {len(cand):6d}  MILP {row['milp_s']:.3f} s  "
                  f"enumeration {row['enumeration_s']:.3f} s  same optimum: {agree}")
    worst = max(r["milp_s"] for r in results)
    print(f"\nMILP median per solve: worst {worst:.3f} s over {len(results)} grid x objective cases "
          f"({'met' if worst < 1.0 else 'NOT met'}: target under 1 s); "
          f"optimum equal to enumeration in {sum(r['same_optimum'] for r in results)}/{len(results)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
