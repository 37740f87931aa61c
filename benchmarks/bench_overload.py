"""Overload: does the pipeline keep its goodput when offered 3x what it can serve?

    .venv/bin/python benchmarks/bench_overload.py [--variants DIR] [--detect NAME] [--classify NAME]
        [--factor 3] [--repeats 3] [--duration-s 15] [--pipeline-cpus 0] [--generator-cpus 1] [--json FILE]

One local deployment (one replica per step, the given batching and queue), measured in rounds,
each round interleaving: the closed-loop capacity C (workers until three windows agree), then an
open loop of Poisson arrivals at `factor` x C. Printed per round and as medians:

- goodput at overload / C (target >= 0.9);
- the refusals' latency (RESOURCE_EXHAUSTED, p50; target <= 10 ms);
- the accepted requests' p99 against its bound: a request waits at most for the detect queue
  ahead of it plus its own batch, (max_queue_size + max_batch_size) / C, plus the classify step's
  share, taken as the same again (bound = 2 (queue + batch) / C);
- where the CPU went: each process's CPU seconds per second of the run (generator, gateway,
  each step), and CPU milliseconds per answered and per refused request, under capacity load and
  under overload, side by side. On this 2-core machine all of them share the same two cores.

The floor under a refusal: a bare gRPC server in Python (`loadgen.echo --refuse`) offered the same
rate, its CPU ms per refusal printed beside the gateway's (the gateway's CPU at overload less what
its answered requests cost at capacity, per refusal). At 3x, two refusals come per answer, so a
refusal's cost r takes 2 x C x r CPU seconds per second from the steps.

`--pipeline-cpus` / `--generator-cpus` (core lists, e.g. `0` and `1`) pin every thread of the
deployment and of the generator to separate cores, as clients on other machines would be: the
difference between the two runs is what the generator's own CPU costs the pipeline at overload.

Defaults: the smoke build of the tests (`.cache/test-artifacts/variants`, built by `make test`);
pass `--variants artifacts/variants --detect yolov8s-128-onnx-fp32` for the notebooks' build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import psutil

from milestone_lib.deploy import LocalBackend, PipelineDeployment, StepDeployment
from milestone_lib.deploy.options import Batching
from milestone_lib.loadgen import PoissonRate, run_closed_loop, run_open_loop
from milestone_lib.loadgen.echo import EchoServer
from milestone_lib.settings import PROJECT_ROOT

DEFAULT_VARIANTS = PROJECT_ROOT / ".cache" / "test-artifacts" / "variants"


def _images(count: int = 8) -> list[np.ndarray]:
    from milestone_lib.data.yolo import load_dataset, read_image

    datasets = sorted((PROJECT_ROOT / ".cache" / "test-artifacts" / "datasets").glob("*/data.yaml"))
    if datasets:
        return [read_image(p) for p in load_dataset(datasets[0]).val_images[:count]]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(160, 160, 3), dtype=np.uint8) for _ in range(count)]


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for label, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
            out[label] = times.user + times.system
        except psutil.NoSuchProcess:
            out[label] = float("nan")
    return out


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` onto `cpus` (threads started later inherit their creator's cores)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:  # a thread that just ended
            pass


def _cores(text: str | None) -> set[int] | None:
    return None if text is None else {int(c) for c in text.split(",") if c.strip()}


def _measured(run, pids: dict[str, int]) -> tuple[object, dict[str, float]]:
    before = _cpu_seconds(pids)
    result = run()
    after = _cpu_seconds(pids)
    return result, {k: after[k] - before[k] for k in pids}


def _count(result, outcome: str) -> int:
    """Requests of a whole run (warm-up included) that were answered ok, or refused with that code."""
    df = result.requests
    return int((df["status"] == "ok").sum() if outcome == "ok" else (df["code"] == outcome).sum())


def _round(address: str, images: list[np.ndarray], pids: dict[str, int], *, factor: float, duration_s: float,
           concurrency: int, seed: int) -> dict[str, float]:
    closed, closed_cpu = _measured(lambda: run_closed_loop(
        address, images, concurrency, warmup_s=2.0, window_s=2.0, min_windows=3, max_windows=8,
        measure_overhead=False, progress=False), pids)
    capacity = closed.summary["throughput_rps"]
    rate = factor * capacity
    over, over_cpu = _measured(lambda: run_open_loop(
        address, images, PoissonRate(rate, seed=seed), duration_s=duration_s, warmup_s=2.0, timeout_s=10.0,
        retry_unavailable=False, measure_overhead=False, progress=False), pids)
    df = over.requests[over.requests["window"] >= 0]
    refused = df[df["code"] == "RESOURCE_EXHAUSTED"]
    ok = df[df["status"] == "ok"]
    closed_s = closed.summary["duration_s"] + 2.0
    over_s = duration_s + 2.0
    return {
        "capacity_rps": capacity, "offered_rps": over.summary["offered_rps"],
        "goodput_rps": over.summary["throughput_rps"], "goodput_ratio": over.summary["throughput_rps"] / capacity,
        "refused": len(refused), "other_errors": int(len(df) - len(ok) - len(refused)),
        "refusal_p50_ms": float(refused["latency_ms"].quantile(0.5)) if len(refused) else float("nan"),
        "accepted_p99_ms": float(ok["latency_ms"].quantile(0.99)), "closed_p99_ms": closed.summary["p99_ms"],
        "schedule_kept": bool(over.summary["schedule_kept"]),
        **{f"cpu_closed_{k}": v / closed_s for k, v in closed_cpu.items()},
        **{f"cpu_over_{k}": v / over_s for k, v in over_cpu.items()},
        "cpu_ms_per_answer_closed": 1e3 * sum(closed_cpu.values()) / max(closed.summary["ok"], 1),
        # the gateway's CPU at overload beyond what its answers cost at capacity, per refusal
        # (CPU and counts over the whole runs, warm-up included)
        "gateway_ms_per_refusal": 1e3 * (over_cpu["gateway"] - closed_cpu["gateway"] / max(_count(closed, "ok"), 1)
                                         * _count(over, "ok")) / max(_count(over, "RESOURCE_EXHAUSTED"), 1),
        "cpu_ms_per_request_over": 1e3 * sum(over_cpu.values()) / max(len(over.requests), 1),
    }


def _refusal_floor(images: list[np.ndarray], rate: float, duration_s: float, cpus: set[int] | None) -> float:
    """CPU ms per refusal of a bare gRPC server in Python offered `rate` requests/s of the same images."""
    with EchoServer(refuse=True) as echo:
        if cpus:
            _pin(echo.proc.pid, cpus)
        result, cpu = _measured(lambda: run_open_loop(
            echo.address, images, PoissonRate(rate, seed=99), duration_s=duration_s, warmup_s=0.0, timeout_s=10.0,
            retry_unavailable=False, measure_overhead=False, progress=False), {"echo": echo.proc.pid})
    refused = int((result.requests["code"] == "RESOURCE_EXHAUSTED").sum())
    return 1e3 * cpu["echo"] / max(refused, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=Path, default=DEFAULT_VARIANTS)
    parser.add_argument("--detect", default="yolov8n-onnx-fp32")
    parser.add_argument("--classify", default="resnet-tiny-onnx-fp32")
    parser.add_argument("--factor", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-batch-size", type=int, default=4)
    parser.add_argument("--max-queue-size", type=int, default=16)
    parser.add_argument("--pipeline-cpus", help="cores for the gateway and the steps, e.g. 0 (default: all)")
    parser.add_argument("--generator-cpus", help="cores for the load generator, e.g. 1 (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    pipeline_cpus, generator_cpus = _cores(args.pipeline_cpus), _cores(args.generator_cpus)
    for name in (args.detect, args.classify):
        if not (args.variants / name / "manifest.json").exists():
            print(f"no variant '{name}' in {args.variants}; run `make test` once (it builds the smoke variants) "
                  "or pass --variants / --detect / --classify", file=sys.stderr)
            return 2
    batching = Batching(max_batch_size=args.max_batch_size, max_queue_size=args.max_queue_size)
    spec = PipelineDeployment(steps=[
        StepDeployment(step="detect", variant=args.detect, folder=args.variants / args.detect, batching=batching),
        StepDeployment(step="classify", variant=args.classify, folder=args.variants / args.classify,
                       batching=batching),
    ])  # type: ignore[arg-type]
    images = _images()
    rounds = []
    with LocalBackend(pin=False, cpu_quota=False) as backend:
        state = backend.deploy(spec)
        pids = {"generator": psutil.Process().pid, "gateway": state.gateway.placement["pid"],
                **{r.label: r.placement["pid"] for r in state.replicas}}
        if pipeline_cpus:
            for label, pid in pids.items():
                if label != "generator":
                    _pin(pid, pipeline_cpus)
        if generator_cpus:
            _pin(os.getpid(), generator_cpus)
        run_closed_loop(state.gateway.address, images, args.concurrency, warmup_s=1.0, window_s=1.0,
                        max_windows=3, measure_overhead=False, progress=False)  # warm every session
        for repeat in range(args.repeats):
            row = _round(state.gateway.address, images, pids, factor=args.factor, duration_s=args.duration_s,
                         concurrency=args.concurrency, seed=repeat)
            rounds.append(row)
            print(f"round {repeat + 1}: capacity {row['capacity_rps']:.1f}/s, offered {row['offered_rps']:.1f}/s, "
                  f"goodput {row['goodput_rps']:.1f}/s ({row['goodput_ratio']:.2f} of capacity), "
                  f"{row['refused']} refused in {row['refusal_p50_ms']:.1f} ms p50, accepted p99 "
                  f"{row['accepted_p99_ms']:.0f} ms, other errors {row['other_errors']}", flush=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if not isinstance(rounds[0][k], bool)}
    floor_ms = _refusal_floor(images, med["offered_rps"], min(args.duration_s, 10.0), pipeline_cpus)
    bound_ms = 2e3 * (args.max_queue_size + args.max_batch_size) / med["capacity_rps"]
    print(f"\nmedians of {args.repeats} rounds ({args.detect} -> {args.classify}, batch {args.max_batch_size}, "
          f"queue {args.max_queue_size}, one replica each, " + (
              f"pipeline on cores {sorted(pipeline_cpus or [])}, generator on {sorted(generator_cpus or [])}):"
              if pipeline_cpus or generator_cpus else f"{len(os.sched_getaffinity(0))} cores shared by all):"))
    print(f"  goodput at {args.factor:g}x / capacity: {med['goodput_ratio']:.3f}  (target >= 0.9: "
          f"{'met' if med['goodput_ratio'] >= 0.9 else 'NOT met'})")
    print(f"  refusal p50: {med['refusal_p50_ms']:.2f} ms  (target <= 10 ms: "
          f"{'met' if med['refusal_p50_ms'] <= 10 else 'NOT met'})")
    print(f"  accepted p99: {med['accepted_p99_ms']:.0f} ms, bound 2 x (queue + batch) / capacity = {bound_ms:.0f} ms "
          f"({'within' if med['accepted_p99_ms'] <= bound_ms else 'ABOVE'}); closed-loop p99 {med['closed_p99_ms']:.0f} ms")
    labels = list(pids)
    print("  CPU seconds per second, capacity load -> overload: " + ", ".join(
        f"{k} {med[f'cpu_closed_{k}']:.2f} -> {med[f'cpu_over_{k}']:.2f}" for k in labels))
    print(f"  CPU ms per answered request at capacity {med['cpu_ms_per_answer_closed']:.2f}; "
          f"per request sent at overload {med['cpu_ms_per_request_over']:.2f}")
    print(f"  CPU ms per refusal: gateway {med['gateway_ms_per_refusal']:.2f}, a bare gRPC server refusing the same "
          f"requests {floor_ms:.2f} (floor); at {args.factor:g}x the refusals take "
          f"{(args.factor - 1) * med['capacity_rps'] * med['gateway_ms_per_refusal'] / 1e3:.2f} CPU s/s from the steps "
          f"(floor {(args.factor - 1) * med['capacity_rps'] * floor_ms / 1e3:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "medians": med, "bound_ms": bound_ms,
                                         "refusal_floor_ms": floor_ms}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
