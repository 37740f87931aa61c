"""The scaling sweep: notebook 04's wall time, or the full grid as the 16-core reference run.

    nice -n 10 .venv/bin/python benchmarks/bench_sweep.py --notebook [--smoke] [--variants-dir DIR]
        time notebook 04 under papermill with its defaults (target: 8 min on 2 cores; smoke: 90 s)
    python benchmarks/bench_sweep.py --reference OUT [--variants-dir DIR] [--dataset YAML]
        [--cpus 1 2 4 8] [--replicas 8] [--variants ...]
        the full grid (CPU 1/2/4/8 per replica, 1-8 replicas; what fits beside the load generator and
        the gateway measured, the rest predicted), its tables written to OUT with the machine's
        description and this command; prints throughput efficiency throughput(r) / (r x throughput(1))
        at 1 CPU per replica for each r.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import pandas as pd

from milestone_lib.profiling import (
    SweepSpec,
    best_configurations,
    pipeline_table,
    run_sweep,
    save_sweep,
    scaling_efficiency,
    step_table,
    sweep_candidates,
    sweep_data,
)
from milestone_lib.settings import PROJECT_ROOT


def _notebook(args: argparse.Namespace) -> None:
    from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook

    parameters: dict = {"smoke": args.smoke}
    if args.variants_dir:
        parameters["variants_dir"] = str(args.variants_dir)
    started = time.perf_counter()
    run_notebook(NOTEBOOKS_DIR / "04_scaling_sweep.ipynb", parameters=parameters,
                 output_dir=PROJECT_ROOT / "notebooks" / "executed" / "bench")
    seconds = time.perf_counter() - started
    target = 90 if args.smoke else 480
    print(f"notebook 04 ({'smoke' if args.smoke else 'defaults'}): {seconds:.0f} s; target <= {target} s: "
          f"{'met' if seconds <= target else 'NOT met'} (machine load from other work counts too)")


def _reference(args: argparse.Namespace) -> None:
    out = Path(args.reference)
    out.mkdir(parents=True, exist_ok=True)
    variants = {"detect": [v for v in args.variants if v.startswith("yolo")],
                "classify": [v for v in args.variants if not v.startswith("yolo")]}
    spec = SweepSpec(cpus=args.cpus, replicas=list(range(1, args.replicas + 1)), multi_replica_per_step=args.multi,
                     detect={"variants": variants["detect"]}, classify={"variants": variants["classify"]},
                     duration_s=args.duration, max_windows=args.max_windows, images=24)
    result = run_sweep(spec, variants_dir=args.variants_dir, dataset=args.dataset)
    candidates = sweep_candidates(result)
    best, sentences = best_configurations(candidates, result.spec.sla)
    save_sweep(sweep_data(result, candidates), out)
    tables = {"detect_table": step_table(candidates, "detect"),
              "classify_table": step_table(candidates, "classify",
                                           detector_variant=best["detect"]["variant"] if best["detect"] is not None
                                           else None),
              "pipeline_table": pipeline_table(candidates, result.spec.sla,
                                               measured_pipeline=result.pipeline_measured),
              "runs": result.runs}
    lines = []
    for step in ("detect", "classify"):
        for variant in result.spec.step(step).variants:
            eff = scaling_efficiency(candidates, step=step, variant=variant, cpu=1.0)
            tables[f"efficiency_{step}_{variant}"] = eff
            lines.append(f"{step} {variant} at {eff['cpu'].iloc[0]:g} CPU per replica: " + ", ".join(
                f"r={int(r.replicas)} {r.max_throughput_rps:.0f}/s eff {r.efficiency:.2f} ({r.source[0]})"
                for r in eff.itertuples()))
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "machine.json").write_text(json.dumps(result.machine, indent=2) + "\n")
    (out / "summary.txt").write_text("\n".join([f"command: {' '.join(map(shlex.quote, sys.argv))}",
                                                f"seconds: {result.seconds:.0f}", *sentences, *lines,
                                                *result.warnings]) + "\n")
    print("\n".join(sentences + lines))
    print(f"sweep {result.seconds:.0f} s; {len(candidates)} rows, {(candidates.source == 'measured').sum()} measured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--variants-dir", type=Path, default=None)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--cpus", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--multi", type=int, default=9, help="multi-replica configurations measured per step")
    parser.add_argument("--variants", nargs="*", default=[])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--max-windows", type=int, default=4)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    if args.reference:
        if args.variants_dir is None:
            parser.error("--reference needs --variants-dir")
        _reference(args)
    elif args.notebook:
        _notebook(args)
    else:
        parser.error("choose --notebook or --reference OUT")


if __name__ == "__main__":
    main()
