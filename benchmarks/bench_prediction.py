"""Predicted vs measured, for the multi-replica configurations a sweep measured.

    .venv/bin/python benchmarks/bench_prediction.py [--repredict] [REPORTS_DIR ...]
        (default: reports/reference/ and reports/, where each holds a sweep from notebook 04;
        --repredict: predict again from the saved profiles with the current model, measurements unchanged)

The prediction of each configuration comes from the single-replica measurements only
(`profiling.predict_step`: discrete-event simulation of least-outstanding balancing and dynamic
batching driven by the measured service times); the sweep measured the same configuration with
more replicas too. Prints p99 at the SLA rate and max throughput, predicted and measured, the
relative error of each row and the median error per figure (target: at most 20 %).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from milestone_lib.errors import ProfilingError
from milestone_lib.profiling import candidate_table, load_sweep
from milestone_lib.settings import PROJECT_ROOT

TARGET = 0.20


def compare(folder: Path, *, repredict: bool = False) -> pd.DataFrame:
    """Rows measured with more than one replica, with the prediction beside them and the errors."""
    sweep = load_sweep(folder)
    candidates = sweep.candidates
    if repredict:
        measured = candidates[candidates["source"] == "measured"]
        candidates = candidate_table(sweep.profiles, pipeline_rate_rps=sweep.sla.rate_rps, fanout=sweep.fanout,
                                     replicas=sorted(candidates["replicas"].unique()),
                                     step_budget_ms=sweep.sla.step_budgets(), measured=measured)
    rows = candidates[(candidates["source"] == "measured") & (candidates["replicas"] > 1)].copy()
    rows["p99_error"] = (rows["predicted_p99_ms"] / rows["p99_ms"] - 1).abs()
    rows["throughput_error"] = (rows["predicted_max_throughput_rps"] / rows["max_throughput_rps"] - 1).abs()
    return rows[["step", "variant", "cpu", "replicas", "p99_ms", "predicted_p99_ms", "p99_error",
                 "max_throughput_rps", "predicted_max_throughput_rps", "throughput_error"]]


def main(folders: list[Path], *, repredict: bool) -> None:
    pd.set_option("display.width", 200)
    for folder in folders:
        try:
            table = compare(folder, repredict=repredict)
        except ProfilingError as exc:
            print(f"{folder}: {exc}")
            continue
        print(f"\n== {folder} ({len(table)} multi-replica configurations measured)")
        if table.empty:
            print("no multi-replica configuration was measured there (the machine had no room for one)")
            continue
        print(table.round(3).to_string(index=False))
        for name in ("p99_error", "throughput_error"):
            median = float(np.median(table[name]))
            print(f"median {name.replace('_', ' ')}: {median:.1%} (target <= {TARGET:.0%}: "
                  f"{'met' if median <= TARGET else 'NOT met'})")
        by_step = table.groupby("step")[["p99_error", "throughput_error"]].median()
        print("median error by step:\n" + by_step.round(3).to_string())


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--repredict"]
    main([Path(a) for a in arguments] or [PROJECT_ROOT / "reports" / "reference", PROJECT_ROOT / "reports"],
         repredict="--repredict" in sys.argv)
