"""Throughput per CPU: one step replica at saturation vs the same model in process, per step, batch and threads.

    .venv/bin/python benchmarks/bench_throughput_per_cpu.py [--steps detect classify] [--threads 1 2 4]
        [--batch-sizes 1 4 8 16] [--duration-s 3] [--classify-rows 4] [--json FILE]

For each step, intra-op thread count T and batch size B:
- in process: `milestone_lib.inference.Detector` / `Classifier` (threads=T) called back to back on
  batches of B, the calling thread pinned to T cores;
- replica: `python -m milestone_lib.serving.server --threads T --max-batch-size B`, the whole
  process pinned to the same T cores, driven to saturation by client processes pinned to other
  cores that keep 2B + 4 rows in flight. Detect requests carry one image (as the gateway sends
  them), classify requests `--classify-rows` crops (the crops of one image).
Rows per second of both, and their ratio; the target is a replica at >= 0.85x in process for
every B and T measured. T runs only where the machine has T + max(1, T/2) cores (4 threads: 6).
Each replica row also gives the mean batch the server formed and, from the responses' timing
parameters, where its time per batch went (model stages vs its own handling), which is the
floor when the target is not met.

Models: `--detect` / `--classify` variant folders, else the project's yolov8n (128 px) and
ResNet-tiny (64 px) classifier with random weights (`bench_support.py`): throughput depends on the
architecture and input size, not on trained weights.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_support import serving_process, variant_folder

TARGET = 0.85
_WARMUP_S = 1.0


def _rows(step: str, count: int, imgsz: int, seed: int = 0) -> np.ndarray:
    """`count` images (detect: 240x320) or crops (classify: imgsz square), uint8 RGB."""
    shape = (240, 320, 3) if step == "detect" else (imgsz, imgsz, 3)
    return np.random.default_rng(seed).integers(0, 255, (count, *shape), dtype=np.uint8)


def bench_in_process(step: str, folder: Path, threads: int, batch: int, cores: list[int], duration_s: float) -> float:
    """Rows per second of the library's own Detector / Classifier on batches of `batch`, pinned to `cores`."""
    from milestone_lib.contracts import load_manifest
    from milestone_lib.inference import Classifier, Detector

    manifest = load_manifest(folder)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)  # this thread, and the runtime's threads it creates from now on
    try:
        model = (Detector if step == "detect" else Classifier)(manifest, folder, threads=threads)
        rows = _rows(step, batch, manifest.imgsz)
        payload = list(rows) if step == "detect" else rows
        end = time.perf_counter() + _WARMUP_S / 2
        while time.perf_counter() < end:
            model(payload)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < duration_s:
            model(payload)
            done += batch
        return done / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, before)


def _client(address: str, requests: list[bytes], rows: int, in_flight: int, cores: list[int], duration_s: float,
            out: multiprocessing.Queue) -> None:
    """One load process: `in_flight` callers back to back; counts rows answered inside the window."""
    os.sched_setaffinity(0, cores)
    import grpc

    from milestone_lib.serving.protocol import (
        grpc_channel_options,
        read_parameters,
        service_pb2,
    )

    async def run() -> dict:
        async with grpc.aio.insecure_channel(address, options=grpc_channel_options()) as channel:
            # Prebuilt request bytes: the client's own work stays small and off the server's cores.
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            start = time.monotonic() + _WARMUP_S
            end = start + duration_s
            figures = {"rows": 0, "samples": []}

            async def caller(index: int) -> None:
                sent = 0
                while time.monotonic() < end:
                    raw = await call(requests[(index + sent) % len(requests)], timeout=60)
                    sent += 1
                    if start <= time.monotonic() < end:
                        figures["rows"] += rows
                        if sent % 8 == 0:
                            figures["samples"].append(read_parameters(
                                service_pb2.ModelInferResponse.FromString(raw).parameters))

            await asyncio.gather(*(caller(i) for i in range(in_flight)))
            return figures

    out.put(asyncio.run(run()))


def bench_replica(step: str, folder: Path, threads: int, batch: int, cores: list[int], client_cores: list[int],
                  duration_s: float, classify_rows: int) -> dict[str, float]:
    """Rows per second of a step server at saturation, pinned to `cores`, and how it spent its time."""
    from milestone_lib.contracts import load_manifest
    from milestone_lib.serving.protocol import make_infer_request

    rows = 1 if step == "detect" else classify_rows
    name = "IMAGES" if step == "detect" else "CROPS"
    data = _rows(step, 16 * rows, load_manifest(folder).imgsz)
    requests = [make_infer_request(step, {name: data[i * rows:(i + 1) * rows]}).SerializeToString() for i in range(16)]
    cmd = [sys.executable, "-m", "milestone_lib.serving.server", "--variant", str(folder), "--port", "0",
           "--threads", str(threads), "--max-batch-size", str(batch), "--max-queue-delay-ms", "2",
           "--max-queue-size", "1024"]
    with serving_process(cmd, cores=cores) as address:
        in_flight = -(-(2 * batch + 4) // rows)
        processes = min(2, len(client_cores))
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [context.Process(target=_client, args=(address, requests, rows, -(-in_flight // processes),
                                                         client_cores[i::processes], duration_s, queue))
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        results = [queue.get(timeout=duration_s + 120) for _ in workers]
        for worker in workers:
            worker.join(30)
    samples = [s for r in results for s in r["samples"]]
    figures = {"rows_per_s": sum(r["rows"] for r in results) / duration_s}
    if samples:
        mean = {key: float(np.mean([s.get(key, 0.0) for s in samples]))
                for key in ("batch_size", "preprocess_ms", "inference_ms", "postprocess_ms", "server_ms", "queue_ms")}
        compute_ms = mean["preprocess_ms"] + mean["inference_ms"] + mean["postprocess_ms"]
        figures.update(mean_batch=mean["batch_size"], compute_ms_per_batch=compute_ms,
                       # the handler's own time per request: decoding, queue hand-off, building the response
                       handler_ms_per_request=mean["server_ms"] - mean["queue_ms"] - compute_ms,
                       # rows per second if the pinned cores did nothing but the model stages
                       compute_bound_rows_per_s=1000 * mean["batch_size"] / compute_ms if compute_ms else 0.0)
    return figures


def _cores_needed(threads: int) -> int:
    """The model's cores plus room for the load clients (4 threads: 6 cores)."""
    return threads + max(1, threads // 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", nargs="+", default=["detect", "classify"], choices=["detect", "classify"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--classify-rows", type=int, default=4, help="crops per classify request")
    parser.add_argument("--detect", type=Path, help="detect variant folder (default: yolov8n, random weights)")
    parser.add_argument("--classify", type=Path, help="classify variant folder (default: ResNet-tiny, random weights)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    cores = sorted(os.sched_getaffinity(0))
    folders = {"detect": variant_folder("detect", prefer=args.detect),
               "classify": variant_folder("classify", prefer=args.classify)}
    rows: list[dict] = []
    skipped = [t for t in args.threads if len(cores) < _cores_needed(t)]
    for step in args.steps:
        for threads in (t for t in args.threads if t not in skipped):
            model_cores, client_cores = cores[:threads], cores[threads:]
            for batch in args.batch_sizes:
                # In process before and after the replica: a machine whose speed drifts weighs on both sides.
                before = bench_in_process(step, folders[step], threads, batch, model_cores, args.duration_s / 2)
                served = bench_replica(step, folders[step], threads, batch, model_cores, client_cores,
                                       args.duration_s, args.classify_rows)
                after = bench_in_process(step, folders[step], threads, batch, model_cores, args.duration_s / 2)
                local = (before + after) / 2
                per_request = 1 if step == "detect" else args.classify_rows
                rows.append({"step": step, "threads": threads, "batch": batch, "rows_per_request": per_request,
                             "in_process_rows_per_s": local, "in_process_spread": abs(before - after) / local,
                             **served, "ratio": served["rows_per_s"] / local,
                             # what each request costs the replica's cores beyond the model, at saturation
                             "extra_ms_per_request": 1000 * per_request * (1 / served["rows_per_s"] - 1 / local)})
                print(json.dumps(rows[-1]), flush=True)

    print(f"\n{len(cores)} cores; model pinned to the first T, clients on the rest; {args.duration_s:.0f} s windows")
    print(f"{'step':<9}{'T':>3}{'B':>4}{'rows/req':>9}{'in-proc/s':>11}{'spread':>7}{'replica/s':>11}{'ratio':>7}"
          f"{'batch':>7}{'compute ms':>11}{'handler ms':>11}{'extra ms/req':>13}")
    for r in rows:
        print(f"{r['step']:<9}{r['threads']:>3}{r['batch']:>4}{r['rows_per_request']:>9}"
              f"{r['in_process_rows_per_s']:>11.1f}{r['in_process_spread']:>7.0%}"
              f"{r['rows_per_s']:>11.1f}{r['ratio']:>7.2f}{r.get('mean_batch', 0):>7.1f}"
              f"{r.get('compute_ms_per_batch', 0):>11.2f}{r.get('handler_ms_per_request', 0):>11.2f}"
              f"{r['extra_ms_per_request']:>13.2f}")
    print("spread: in-process before vs after the replica; compute: model stages per batch in the replica; "
          "handler: per request, server_ms - queue - compute; extra: replica time per request beyond in-process")
    if skipped:
        print(f"threads {skipped} skipped: this machine has {len(cores)} cores "
              f"(T threads need {', '.join(f'{t}: {_cores_needed(t)}' for t in skipped)})")
    for step in args.steps:
        mine = [r for r in rows if r["step"] == step]
        if not mine:
            continue
        worst = min(mine, key=lambda r: r["ratio"])
        verdict = "MET" if worst["ratio"] >= TARGET else "NOT MET"
        print(f"target {step}: replica >= {TARGET}x in-process throughput at the same batch and threads: {verdict} "
              f"(lowest {worst['ratio']:.2f}x at T={worst['threads']}, B={worst['batch']})")
        for threads in sorted({r["threads"] for r in mine}):
            by_batch = [r for r in mine if r["threads"] == threads]
            best = max(r["rows_per_s"] for r in by_batch)
            pick = min((r for r in by_batch if r["rows_per_s"] >= 0.9 * best), key=lambda r: r["batch"])
            print(f"  {step} T={threads}: smallest batch within 10% of the best replica throughput: {pick['batch']}")
    if args.json:
        args.json.write_text(json.dumps({"cores": len(cores), "rows": rows, "skipped_threads": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
