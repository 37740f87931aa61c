"""Soak: the pipeline driven at ~70% of its capacity for a long run; does latency or memory drift?

    .venv/bin/python benchmarks/bench_soak.py [--minutes 30] [--load 0.7] [--variants DIR]
        [--detect NAME] [--classify NAME] [--csv FILE]

One local deployment (one replica per step). Its closed-loop capacity C is measured first; then
Poisson arrivals at `load` x C, one minute after another, each minute its own open-loop run
(seeded), with the resident memory (RSS) of every process sampled at the end of each minute:
the generator (this process), the gateway and each step replica. Printed per minute: requests,
errors, p50 / p99, RSS; at the end the three checks (targets of a 30-minute run):

- 0 errors (failed or timed out) over the whole run;
- the pooled p99 of the last 5 minutes within 20% of the first 5 minutes' (the first and the last
  half when the run is shorter than 10 minutes);
- every process's RSS within 10% from minute 5 (or the first minute of a short run) to the end.

Defaults: the smoke build of the tests (`.cache/test-artifacts/variants`, built by `make test`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
from bench_overload import DEFAULT_VARIANTS, _images

from milestone_lib.deploy import LocalBackend, PipelineDeployment, StepDeployment
from milestone_lib.loadgen import PoissonRate, run_closed_loop, run_open_loop


def _rss_mb(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for label, pid in pids.items():
        try:
            out[label] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            out[label] = float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the closed-loop capacity")
    parser.add_argument("--variants", type=Path, default=DEFAULT_VARIANTS)
    parser.add_argument("--detect", default="yolov8n-onnx-fp32")
    parser.add_argument("--classify", default="resnet-tiny-onnx-fp32")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--csv", type=Path, help="write the per-minute table here")
    args = parser.parse_args(argv)
    if args.minutes < 2 or not 0 < args.load < 1:
        print(f"--minutes {args.minutes} must be at least 2 and --load {args.load} between 0 and 1", file=sys.stderr)
        return 2
    for name in (args.detect, args.classify):
        if not (args.variants / name / "manifest.json").exists():
            print(f"no variant '{name}' in {args.variants}; run `make test` once (it builds the smoke variants) "
                  "or pass --variants / --detect / --classify", file=sys.stderr)
            return 2
    spec = PipelineDeployment(steps=[
        StepDeployment(step="detect", variant=args.detect, folder=args.variants / args.detect),
        StepDeployment(step="classify", variant=args.classify, folder=args.variants / args.classify),
    ])  # type: ignore[arg-type]
    images = _images()
    minutes, latencies = [], []
    with LocalBackend(pin=False, cpu_quota=False) as backend:
        state = backend.deploy(spec)
        address = state.gateway.address
        pids = {"generator": psutil.Process().pid, "gateway": state.gateway.placement["pid"],
                **{r.label: r.placement["pid"] for r in state.replicas}}
        capacity = run_closed_loop(address, images, args.concurrency, warmup_s=2.0, window_s=2.0, min_windows=3,
                                   max_windows=10, measure_overhead=False, progress=False).summary["throughput_rps"]
        rate = args.load * capacity
        print(f"capacity {capacity:.1f} requests/s (closed loop, {args.concurrency} workers); soak at "
              f"{rate:.1f}/s ({args.load:.0%}) for {args.minutes} min; {psutil.cpu_count()} cores", flush=True)
        started = time.monotonic()
        for minute in range(1, args.minutes + 1):
            result = run_open_loop(address, images, PoissonRate(rate, seed=minute), duration_s=60.0, warmup_s=0.0,
                                   timeout_s=5.0, measure_overhead=False, progress=False)
            s = result.summary
            ok = result.requests[result.requests["status"] == "ok"]["latency_ms"]
            latencies.append(ok.to_numpy())
            row = {"minute": minute, "sent": s["sent"], "ok": s["ok"], "errors": s["failed"] + s["timeouts"],
                   "retried": s["retried"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                   **{f"rss_{k}_mb": v for k, v in _rss_mb(pids).items()}}
            minutes.append(row)
            rss = ", ".join(f"{k} {row[f'rss_{k}_mb']:.0f}" for k in pids)
            print(f"min {minute:3d} ({(time.monotonic() - started) / 60:5.1f}): {row['sent']} sent, "
                  f"{row['errors']} errors, p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms; RSS MB: {rss}",
                  flush=True)
        alive = backend.status()
    table = pd.DataFrame(minutes)
    if args.csv:
        table.to_csv(args.csv, index=False)
    span = 5 if args.minutes >= 10 else args.minutes // 2
    first = pd.Series(pd.concat([pd.Series(x) for x in latencies[:span]]))
    last = pd.Series(pd.concat([pd.Series(x) for x in latencies[-span:]]))
    p99_first, p99_last = first.quantile(0.99), last.quantile(0.99)
    drift = p99_last / p99_first - 1
    errors = int(table["errors"].sum())
    base = 5 if args.minutes > 5 else 1
    rss_drift = {k: (table[f"rss_{k}_mb"].iloc[base - 1:].max() / table[f"rss_{k}_mb"].iloc[base - 1] - 1,
                     table[f"rss_{k}_mb"].iloc[base - 1:].min() / table[f"rss_{k}_mb"].iloc[base - 1] - 1)
                 for k in pids}
    print(f"\n{args.minutes} min at {rate:.1f} requests/s: {int(table['sent'].sum())} sent, {errors} errors "
          f"({int(table['retried'].sum())} retried); every process alive at the end: "
          f"{alive.gateway.alive and all(r.alive for r in alive.replicas)}")
    print(f"  errors: {errors}  (target 0: {'met' if errors == 0 else 'NOT met'})")
    print(f"  p99 first {span} min {p99_first:.1f} ms, last {span} min {p99_last:.1f} ms: {drift:+.1%}  "
          f"(target within 20%: {'met' if abs(drift) <= 0.2 else 'NOT met'})")
    for k, (up, down) in rss_drift.items():
        worst = max(abs(up), abs(down))
        print(f"  RSS {k}: {table[f'rss_{k}_mb'].iloc[base - 1]:.0f} MB at minute {base}, range "
              f"{down:+.1%} .. {up:+.1%} to the end  (target within 10%: {'met' if worst <= 0.1 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
