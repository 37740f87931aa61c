"""Load-generator fidelity: our closed-loop p50 at concurrency 1 on a classifier step vs the floor under it.

    .venv/bin/python benchmarks/bench_loadgen.py [--rounds 5] [--windows 3] [--window-s 1.0]
        [--models resnet-tiny,tiny-cnn] [--compare-clients] [--json FILE]

What it checks: every number the load generator reports contains its own cost per request. That
cost is measured against the no-op echo server (`milestone_lib.loadgen.EchoServer`, same request
bytes, the step server's own response bytes); the step server reports its own time per request
(`server_ms`, its whole handler). If the generator adds nothing beyond what the echo floor shows,

    p50(our closed loop, concurrency 1)  ~=  echo floor p50  +  median server_ms

and the target is a ratio within 5% of 1. Beside it, a *busy echo* that works `server_ms` per request
before answering: the p50 a server with nothing outside its own timer would give. Its excess over
floor + server_ms is the client's cost of waking up after an idle wait (the generator's); our p50's
excess over it is the step server's time outside `server_ms` (transport-side work of the server,
not the generator's). Each round measures echo, step server, echo back to
back (the load result's own `generator_overhead_ms` is the second echo), so machine drift falls on
both sides; figures are medians over rounds. The verdict is on the project's classifier
architecture (ResNet "tiny", 224x224 crops, as `bench_step_server.py` builds it); `tiny-cnn` (a
64x64 two-layer CNN whose server time is well under a millisecond, so transport dominates) is
printed beside it as the hard case.

`--compare-clients` also times the echo floor of the client paths considered for cutting the
generator's cost (protobuf stub per call, as before; prebuilt bytes, as now; uvloop where importable;
blocking calls on threads), interleaved the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "serving"), str(ROOT / "benchmarks")]

from milestone_lib.loadgen import (
    EchoServer,
    LoadClient,
    make_request,
    measure_overhead,
    run_closed_loop,
)
from milestone_lib.loadgen.overhead import closed_burst
from milestone_lib.settings import ProjectSettings

TARGET_RATIO = 0.05
CACHE = ProjectSettings().cache_dir / "bench-loadgen"


def build_classifier(model: str) -> Path:
    """A classify variant folder: the project's ResNet tiny (random weights), or a tiny CNN."""
    if model == "resnet-tiny":
        from bench_step_server import build_variant

        return build_variant(CACHE, "resnet-tiny")
    from serving_tiny_variants import build_tiny_variant

    return build_tiny_variant("classify", CACHE / "tiny-cnn", imgsz=64, name="tiny-cnn-onnx-fp32")


def crops(variant: Path) -> list[np.ndarray]:
    from milestone_lib.contracts import load_manifest

    size = load_manifest(variant).imgsz
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(4)]


def step_response(address: str, payload: bytes) -> bytes:
    """The step server's answer to `payload`, as bytes: what the echo server answers with."""
    import grpc

    from milestone_lib.loadgen.client import MODEL_INFER

    with grpc.insecure_channel(address) as channel:
        return channel.unary_unary(MODEL_INFER)(payload, timeout=30.0)


def one_round(address: str, images: list[np.ndarray], args: argparse.Namespace) -> dict[str, float]:
    """Echo floor, the step server at concurrency 1 (its result measures the echo floor again), as figures."""
    payloads = [make_request(i, model="classify", input_name="CROPS").SerializeToString() for i in images]
    before = measure_overhead(payloads, step_response(address, payloads[0]), requests=args.echo_requests)
    result = run_closed_loop(address, images, 1, model="classify", input_name="CROPS", warmup_s=0.5,
                             window_s=args.window_s, min_windows=args.windows, max_windows=args.windows,
                             overhead_requests=args.echo_requests)
    s, ok = result.summary, result.requests.query("window >= 0 and status == 'ok'")
    assert s["sent"] == s["ok"] + s["failed"] + s["timeouts"] + int((result.requests["window"] < 0).sum()), s
    floor = statistics.median([s["generator_overhead_ms"], before["generator_overhead_ms"]])
    server_ms = float(ok["server_ms"].median())
    # An echo that works server_ms per request: what the step server would measure with nothing untimed.
    calibrated = measure_overhead(payloads, step_response(address, payloads[0]), requests=args.echo_requests // 3,
                                  delay_ms=server_ms)["generator_overhead_ms"]
    return {"p50_ms": s["p50_ms"], "echo_floor_ms": floor, "echo_before_ms": before["generator_overhead_ms"],
            "echo_after_ms": s["generator_overhead_ms"], "server_ms": server_ms,
            "calibrated_echo_ms": calibrated, "ratio": s["p50_ms"] / (floor + server_ms),
            "ratio_to_calibrated": s["p50_ms"] / calibrated, "requests": s["ok"], "failed": s["failed"] + s["timeouts"]}


def bench_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    from serving_helpers import spawn, step_server_args

    variant = build_classifier(model)
    images = crops(variant)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp, \
            spawn("milestone_lib.serving.server", step_server_args(variant, max_queue_delay_ms=0), Path(tmp)) as server:
        one_round(server.address, images, args)  # warm-up: sessions, channels, caches
        for index in range(args.rounds):
            rounds.append(one_round(server.address, images, args))
            print(f"  {model} round {index + 1}: " + "  ".join(f"{k} {v:.3f}" for k, v in rounds[-1].items()),
                  flush=True)
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    return {"model": model, "rounds": rounds, "median": medians}


# --------------------------------------------------------------------------- client paths (--compare-clients)


class _StubClient:
    """The previous client path: a protobuf request serialized on every call, the response parsed inline."""

    def __init__(self, target: str, requests: list[Any]) -> None:
        import grpc

        from milestone_lib.serving.protocol import (
            grpc_channel_options,
            read_parameters,
            service_pb2_grpc,
        )

        self.channel = grpc.aio.insecure_channel(target, options=grpc_channel_options())
        self.stub, self.requests, self.read = service_pb2_grpc.GRPCInferenceServiceStub(self.channel), requests, \
            read_parameters

    async def send(self, number: int, row: dict[str, Any], timeout_s: float, t0: float) -> None:
        start = time.perf_counter()
        response = await self.stub.ModelInfer(self.requests[number % len(self.requests)], timeout=timeout_s)
        row.update(self.read(response.parameters), latency_ms=(time.perf_counter() - start) * 1e3, status="ok")

    async def close(self) -> None:
        await self.channel.close()


def _threads_floor(address: str, payload: bytes, requests: int) -> float:
    import grpc

    from milestone_lib.loadgen.client import MODEL_INFER

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(MODEL_INFER)
        samples = []
        for index in range(requests + 20):
            start = time.perf_counter()
            call(payload, timeout=5.0)
            samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples[20:]))


def compare_clients(images: list[np.ndarray], args: argparse.Namespace) -> dict[str, float]:
    """Echo floor (p50 ms, concurrency 1) of each client path, interleaved over rounds; medians."""
    request = make_request(images[0], model="classify", input_name="CROPS")
    payload = request.SerializeToString()

    async def floor(make_client: Any) -> float:
        client = make_client()  # a grpc.aio channel belongs to the loop it is made in
        try:
            await closed_burst(client, requests=20)
            rows = await closed_burst(client, requests=args.echo_requests)
        finally:
            await client.close()
        return float(np.median([r["latency_ms"] for r in rows]))

    paths: dict[str, Any] = {
        "protobuf stub (before)": lambda a: asyncio.run(floor(lambda: _StubClient(a, [request]))),
        "prebuilt bytes (now)": lambda a: asyncio.run(floor(lambda: LoadClient(a, [payload]))),
        "blocking calls, one thread": lambda a: _threads_floor(a, payload, args.echo_requests),
    }
    try:
        import uvloop

        paths["prebuilt bytes + uvloop"] = lambda a: uvloop.run(floor(lambda: LoadClient(a, [payload])))
    except ImportError:
        print("  (uvloop is not installed: not compared)")
    samples: dict[str, list[float]] = {name: [] for name in paths}
    with EchoServer() as echo:
        for _ in range(args.rounds):
            for name, run in paths.items():
                samples[name].append(run(echo.address))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=3, help="measurement windows per step-server run")
    parser.add_argument("--window-s", type=float, default=1.0)
    parser.add_argument("--echo-requests", type=int, default=300)
    parser.add_argument("--models", default="resnet-tiny,tiny-cnn")
    parser.add_argument("--compare-clients", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = [bench_model(model, args) for model in models]
    figures: dict[str, Any] = {"models": results}
    if args.compare_clients:
        figures["client_paths"] = compare_clients(crops(build_classifier(models[-1])), args)
        print("\nEcho floor per client path (p50 ms, concurrency 1, medians):")
        for name, value in figures["client_paths"].items():
            print(f"  {name:<28} {value:.3f}")
    print(f"\nConcurrency 1, medians of {args.rounds} rounds (ms):")
    print(f"  {'model':<12} {'our p50':>8} {'echo floor':>11} {'server_ms':>10} {'floor+server':>13} {'ratio':>7} "
          f"{'busy echo':>10} {'p50/busy echo':>14}")
    for r in results:
        m = r["median"]
        print(f"  {r['model']:<12} {m['p50_ms']:>8.3f} {m['echo_floor_ms']:>11.3f} {m['server_ms']:>10.3f} "
              f"{m['echo_floor_ms'] + m['server_ms']:>13.3f} {m['ratio']:>7.3f} {m['calibrated_echo_ms']:>10.3f} "
              f"{m['ratio_to_calibrated']:>14.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    verdict = results[0]["median"]["ratio"]
    met = abs(verdict - 1.0) <= TARGET_RATIO
    print(f"{results[0]['model']}: p50 / (echo floor + server_ms) = {verdict:.3f}, target within "
          f"{TARGET_RATIO:.0%} of 1: {'met' if met else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
