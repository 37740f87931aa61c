"""What the gateway hop costs the caller: client round trip minus the gateway's own `total_ms`.

    nice -n 10 .venv/bin/python benchmarks/bench_gateway_hop.py [--requests 60] [--variants-dir DIR]

Deploys the pipeline locally (one replica per step), sends `--requests` images one after another
through the gateway and prints the median gap (the loopback hop to the gateway and the client's
own encode/decode) and the median end-to-end latency. The target the gateway test used to assert:
gap below max(5 ms, 25% of end to end); on a shared CPU it moves with load, hence a benchmark.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from milestone_lib.deploy import LocalBackend, PipelineDeployment
from milestone_lib.settings import PROJECT_ROOT

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--variants-dir", type=Path, default=PROJECT_ROOT / ".cache" / "test-artifacts" / "variants")
    args = parser.parse_args(argv)

    import grpc

    from milestone_lib.serving.protocol import (
        make_infer_request,
        read_parameters,
        service_pb2_grpc,
    )

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(128, 160, 3), dtype=np.uint8) for _ in range(4)]
    gaps, totals = [], []
    with LocalBackend() as backend:
        backend.deploy(PipelineDeployment.for_variants(DETECT, CLASSIFY, variants_dir=args.variants_dir))
        with grpc.insecure_channel(backend.endpoints().gateway) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for index in range(args.requests + 5):
                request = make_infer_request("pipeline", {"IMAGE": images[index % len(images)][None]})
                start = time.perf_counter()
                response = stub.ModelInfer(request, timeout=60)
                end_to_end_ms = 1000 * (time.perf_counter() - start)
                if index >= 5:  # the first calls open channels and warm the sessions
                    gaps.append(end_to_end_ms - float(read_parameters(response.parameters)["total_ms"]))
                    totals.append(end_to_end_ms)
    gap, e2e = statistics.median(gaps), statistics.median(totals)
    result = {"requests": args.requests, "median_gap_ms": round(gap, 2), "median_end_to_end_ms": round(e2e, 2),
              "within_target": gap < max(5.0, 0.25 * e2e)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
