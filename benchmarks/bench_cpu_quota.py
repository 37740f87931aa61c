"""Local CPU enforcement: a detect replica allocated 0.5 CPU against one allocated 1 CPU.

    nice -n 10 .venv/bin/python benchmarks/bench_cpu_quota.py [--requests 40] [--repeats 5]
        [--concurrency 2] [--image 480x640] [--variants-dir DIR] [--json FILE]

Two deployments run side by side (LocalBackend, cgroup CPU quotas on), identical but for the
detect step's `cpu`. Each round sends the same fixed CPU-bound load (N large images straight to
the detect replica from `--concurrency` clients in a closed loop, request bytes built once) to both
replicas, in alternating order; the figures are medians over the rounds. Expect a wall-clock ratio
(0.5 CPU / 1 CPU) of about 2 (1.6-2.4) where the 1-CPU replica really gets a whole core; on a
machine busy with other work the 1-CPU replica is held back by contention instead of its quota and
the ratio shrinks: the per-round CPU rate (the cgroup's cpuacct usage / wall) shows which it was.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from milestone_lib.deploy import LocalBackend, PipelineDeployment
from milestone_lib.settings import PROJECT_ROOT

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"


def closed_loop(address: str, requests: int, concurrency: int, image: np.ndarray) -> float:
    """Wall seconds for `requests` detect calls from `concurrency` clients; raises on any failure."""
    import grpc

    from milestone_lib.serving.protocol import make_infer_request, service_pb2_grpc

    request = make_infer_request("detect", {"IMAGES": image[None]})
    left = iter(range(requests))
    lock, errors = threading.Lock(), []

    def client() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                try:
                    stub.ModelInfer(request, timeout=120)
                except grpc.RpcError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--image", default="480x640", help="HxW of the image every request carries")
    parser.add_argument("--variants-dir", type=Path, default=PROJECT_ROOT / ".cache" / "test-artifacts" / "variants")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.image.split("x"))
    image = np.random.default_rng(0).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    cpus = (0.5, 1.0)
    walls: dict[float, list[float]] = {cpu: [] for cpu in cpus}
    rates: dict[float, list[float]] = {cpu: [] for cpu in cpus}
    throttled: dict[float, float] = dict.fromkeys(cpus, 0.0)
    backends = {cpu: LocalBackend() for cpu in cpus}
    try:
        for cpu, backend in backends.items():
            spec = PipelineDeployment.for_variants(DETECT, CLASSIFY, cpu={"detect": cpu}, variants_dir=args.variants_dir,
                                                   name=f"bench-cpu-{cpu:g}")
            state = backend.deploy(spec)
            if "detect-0" not in backend.cgroups():
                print(f"CPU quotas are not enforced here: {state.warnings}", file=sys.stderr)
                return 1
        addresses = {cpu: backends[cpu].endpoints().steps["detect"][0] for cpu in cpus}
        for cpu in cpus:  # warm-up: sessions, threads and caches, not measured
            closed_loop(addresses[cpu], args.concurrency * 2, args.concurrency, image)
        for round_ in range(args.repeats):
            for cpu in cpus if round_ % 2 == 0 else cpus[::-1]:
                group = backends[cpu].cgroups()["detect-0"]
                before = group.stats()  # type: ignore[attr-defined]
                wall = closed_loop(addresses[cpu], args.requests, args.concurrency, image)
                after = group.stats()  # type: ignore[attr-defined]
                walls[cpu].append(wall)
                rates[cpu].append((after.get("usage_s", 0.0) - before.get("usage_s", 0.0)) / wall)
                throttled[cpu] += after["nr_throttled"] - before["nr_throttled"]
    finally:
        for backend in backends.values():
            backend.teardown()
    median = {cpu: statistics.median(walls[cpu]) for cpu in cpus}
    ratio = median[0.5] / median[1.0]
    result = {
        "requests": args.requests, "repeats": args.repeats, "concurrency": args.concurrency, "image": args.image,
        "median_wall_s": {f"{cpu:g}": round(median[cpu], 3) for cpu in cpus},
        "median_cpu_rate": {f"{cpu:g}": round(statistics.median(rates[cpu]), 3) for cpu in cpus},
        "throttled_periods": {f"{cpu:g}": throttled[cpu] for cpu in cpus},
        "ratio_half_over_one": round(ratio, 2),
        "within_1.6_2.4": 1.6 <= ratio <= 2.4,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
