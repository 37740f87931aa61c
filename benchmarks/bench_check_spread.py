"""How far apart two checks of the same deployed configuration land: the floor under "forecast within 25%".

    .venv/bin/python benchmarks/bench_check_spread.py [--rounds 4] [--reports reports] [--backend local]

Takes notebook 05's optimum and its "static smallest" baseline from a finished run of notebooks 04 and 05
(the same solver calls, on `reports/`), then, round after round and alternating the two, deploys each
afresh and measures it exactly as notebook 05's check does (3 Poisson repeats, about 1,000 requests, the
p99 pooled over them). Prints every round's pooled p99, the median, min and max per configuration and the
ratio max/min: a forecast can be within 25% of every run only where max/min <= 1.25/0.75 = 1.67. Beside
them, the check's forecast (`optimize.forecast_p99_ms`) and the candidate rows' p99 added (what the optimizer
used), each with its error against every round.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from milestone_lib.optimize import (
    build_problem,
    check_plan,
    forecast_p99_ms,
    gateway_overhead_ms,
    load_pipeline_accuracy,
    measure_configurations,
    objective_from,
    rule_against_pipeline,
    solve_milp,
    static_variants,
)
from milestone_lib.profiling import load_sweep
from milestone_lib.settings import PROJECT_ROOT, run_settings

TOLERANCE = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reports", type=Path, default=PROJECT_ROOT / "reports")
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()

    sweep = load_sweep(args.reports)
    sla, rate = sweep.sla.latency_ms, sweep.sla.rate_rps
    problem = build_problem(sweep.candidates, load_pipeline_accuracy(args.reports), sla_ms=sla, rate_rps=rate,
                            gateway_reserve_ms=sweep.sla.gateway_reserve_ms)
    configs = {"optimum": solve_milp(problem, objective_from("accurate_within_budget")).configuration,
               "static smallest": static_variants(problem, most_accurate=False)}
    overhead = gateway_overhead_ms(rule_against_pipeline(sweep.candidates, args.reports,
                                                         gateway_reserve_ms=sweep.sla.gateway_reserve_ms))
    forecasts = {name: {"check": forecast_p99_ms(c, sweep, rate_rps=rate) + overhead,
                        "candidate_rows": c.predicted_p99_ms - c.gateway_reserve_ms + overhead}
                 for name, c in configs.items()}
    plan = check_plan(smoke=False, rate_rps=rate)
    print(f"SLA {sla:g} ms at {rate:g} req/s; {plan.repeats} repeats x {plan.duration_s:g} s per check; "
          f"gateway overhead {overhead:.1f} ms; {args.rounds} rounds, alternating")
    rows = []
    for round_ in range(args.rounds):
        order = list(configs) if round_ % 2 == 0 else list(configs)[::-1]
        for name in order:
            runs = measure_configurations({name: configs[name]}, rate_rps=rate, sla_ms=sla,
                                          duration_s=plan.duration_s, warmup_s=plan.warmup_s, repeats=plan.repeats,
                                          backend=args.backend, variants_dir=run_settings(smoke=False).variants_dir,
                                          log=lambda _m: None)
            pooled = float(runs["pooled_p99_ms"].iloc[0])
            rows.append({"round": round_, "configuration": name, "pooled_p99_ms": pooled,
                         "requests": int(runs["sent"].sum()),
                         "repeat_p99s": "/".join(f"{v:.0f}" for v in runs["p99_ms"])})
            print(f"round {round_} {name:16s} pooled p99 {pooled:6.1f} ms over {rows[-1]['requests']} requests "
                  f"(repeats {rows[-1]['repeat_p99s']})", flush=True)
    table = pd.DataFrame(rows)
    print()
    for name, part in table.groupby("configuration", sort=False):
        p = part["pooled_p99_ms"].to_numpy()
        ratio = float(p.max() / p.min()) if p.min() > 0 else math.inf
        print(f"{name}: {configs[name].label}")
        print(f"  pooled p99 median {np.median(p):.1f} ms, min {p.min():.1f}, max {p.max():.1f}, max/min {ratio:.2f} "
              f"({'no' if ratio > (1 + TOLERANCE) / (1 - TOLERANCE) else 'some'} single forecast can be within "
              f"{TOLERANCE:.0%} of every run)")
        for kind, value in forecasts[name].items():
            errors = (p - value) / value
            within = int((np.abs(errors) <= TOLERANCE).sum())
            print(f"  forecast {kind:15s} {value:6.1f} ms: errors {', '.join(f'{e:+.0%}' for e in errors)}; "
                  f"within {TOLERANCE:.0%} in {within} of {len(p)}; median error {np.median(errors):+.0%}")


if __name__ == "__main__":
    main()
