"""Step server vs MLServer 1.7 vs ONNX Runtime in process, on the same ONNX classifier and the same cores.

    .venv/bin/python benchmarks/bench_step_server.py [--requests 300] [--threads 1] [--skip-mlserver]
        [--model resnet-tiny|mobilenetv3-small] [--json FILE]

Fairness: one model file (the project's ResNet "tiny" classifier architecture, random weights,
exported with dynamic batch/H/W; `--model mobilenetv3-small` for a heavier one),
one intra-op thread everywhere, and the very same request bytes over gRPC to both servers: an
Open Inference Protocol `ModelInfer` with one FP32 NCHW tensor in `raw_input_contents` (the step
server runs with `--raw-tensors`, so neither server pre-processes; MLServer gets a small custom
`MLModel` that calls ONNX Runtime, since 1.7 ships no ONNX runtime). Requests: a small one,
1×3×64×64 FP32 (49 KB), and 1×3×224×224 FP32 (602 KB). Latency: one client, back to back;
throughput: 4 concurrent clients for a few seconds (in process: back to back, one session).
The step server runs twice: with the tensor in the gRPC message, and with the tensor in a POSIX
shared-memory region (the protocol's `system_shared_memory` extension; the client copies the tensor
into its region on every request, and that copy is timed), which takes the transport of the 602 KB
off the round trip. MLServer has no shared-memory extension, so it is compared on the message path.

MLServer is installed on first use into `.cache/mlserver-venv` (git-ignored) with pip; when that
fails, the benchmark says so and reports the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from milestone_lib.contracts import TensorSpec, VariantManifest
from milestone_lib.serving.protocol import (
    decode_outputs,
    grpc_channel_options,
    make_infer_request,
    read_parameters,
    service_pb2_grpc,
)
from milestone_lib.settings import ProjectSettings

CACHE = ProjectSettings().cache_dir
MLSERVER_VENV = CACHE / "mlserver-venv"
MLSERVER_PACKAGES = ["mlserver==1.7.*", "onnxruntime==1.31.*", "numpy<2.5", "uvloop<0.22"]
REQUESTS = {"small 1x3x64x64": (1, 3, 64, 64), "1x3x224x224": (1, 3, 224, 224)}

MLSERVER_MODEL = '''
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.settings.parameters.extra["threads"])
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = NumpyCodec.decode_input(payload.inputs[0])
        output = self.session.run(None, {self.input_name: batch})[0]
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("OUTPUT", output)])
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_variant(folder: Path, architecture: str) -> Path:
    """The project's classifier architecture (random weights) as a classify variant folder, 224 input.

    `resnet-tiny` is `milestone_lib.variants.hf`'s ResNet "tiny"; `mobilenetv3-small` is torchvision's.
    Exported with a dynamic batch, height and width so the small request can be smaller.
    """
    folder = folder / architecture
    if (folder / "manifest.json").exists():
        return folder
    import torch

    torch.manual_seed(0)
    if architecture == "resnet-tiny":
        from transformers import ResNetConfig, ResNetForImageClassification

        from milestone_lib.variants.hf import CLASSIFIER_SIZES

        embedding, hidden, depths = CLASSIFIER_SIZES["tiny"]
        inner = ResNetForImageClassification(ResNetConfig(num_channels=3, embedding_size=embedding,
                                                          hidden_sizes=hidden, depths=depths, layer_type="basic",
                                                          num_labels=10)).eval()

        class LogitsOnly(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                return self.inner(pixel_values=pixel_values).logits

        model: torch.nn.Module = LogitsOnly().eval()
        family, size = "resnet", "tiny"
    else:
        import torchvision

        model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10).eval()
        family, size = "mobilenetv3", "small"
    folder.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(folder / "model.onnx"),
                      input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    VariantManifest(
        name=f"{family}{size}-onnx-fp32", step="classify", family=family, size=size, format="onnx",
        precision="fp32", parameters=sum(p.numel() for p in model.parameters()), artifact="model.onnx",
        files=VariantManifest.describe_files(folder, "model.onnx"),
        inputs=[TensorSpec(name="pixel_values", shape=[-1, 3, -1, -1])],
        outputs=[TensorSpec(name="logits", shape=[-1, 10])], class_names=[str(i) for i in range(10)], imgsz=224,
    ).write(folder)
    return folder


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def bench_in_process(model: Path, shape: tuple[int, ...], threads: int, requests: int) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    name = session.get_inputs()[0].name
    for _ in range(20):
        session.run(None, {name: batch})
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        session.run(None, {name: batch})
        samples.append(time.perf_counter() - t0)
    return {**percentiles(samples), "throughput_rps": len(samples) / sum(samples)}


class _Sender:
    """One client's way of sending the request: tensor bytes in the message, or in a shared-memory region."""

    def __init__(self, address: str, model_name: str, batch: np.ndarray, shared_memory: bool) -> None:
        import grpc

        from milestone_lib.serving.protocol import service_pb2, set_parameters

        self.channel = grpc.insecure_channel(address, options=grpc_channel_options())
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(channel=self.channel)
        self.model_name, self.batch, self.region = model_name, batch, None
        if shared_memory:
            from multiprocessing import shared_memory as posix_shm

            self.key = f"bench-{os.getpid()}-{id(self)}"
            self.region = posix_shm.SharedMemory(name=self.key, create=True, size=batch.nbytes)
            self.view = np.ndarray(batch.shape, batch.dtype, buffer=self.region.buf)
            self.stub.SystemSharedMemoryRegister(service_pb2.SystemSharedMemoryRegisterRequest(
                name=self.key, key=f"/{self.key}", offset=0, byte_size=batch.nbytes), timeout=10)
            self.request = service_pb2.ModelInferRequest(model_name=model_name)
            spec = self.request.inputs.add(name="INPUT", datatype="FP32", shape=list(batch.shape))
            set_parameters(spec.parameters, {"shared_memory_region": self.key,
                                             "shared_memory_byte_size": batch.nbytes})

    def __call__(self):
        if self.region is None:
            return self.stub.ModelInfer(make_infer_request(self.model_name, {"INPUT": self.batch}), timeout=30)
        np.copyto(self.view, self.batch)  # the client places this request's tensor in its region
        return self.stub.ModelInfer(self.request, timeout=30)

    def close(self) -> None:
        if self.region is not None:
            from milestone_lib.serving.protocol import service_pb2

            self.stub.SystemSharedMemoryUnregister(service_pb2.SystemSharedMemoryUnregisterRequest(name=self.key))
            del self.view
            self.region.close()
            self.region.unlink()
        self.channel.close()


def bench_grpc(address: str, model_name: str, shape: tuple[int, ...], requests: int, *, clients: int = 4,
               throughput_s: float = 3.0, shared_memory: bool = False) -> dict[str, float]:
    """Same OIP request to any server: FP32 `INPUT` in raw_input_contents (built from numpy each call), or
    with `shared_memory`, copied into a registered region each call and named in the input's parameters."""
    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    send = _Sender(address, model_name, batch, shared_memory)
    for _ in range(20):
        decode_outputs(send())
    samples, own = [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = send()
        _ = decode_outputs(response) if response.raw_output_contents else response.outputs[0].contents.fp32_contents
        samples.append(time.perf_counter() - t0)
        timing = read_parameters(response.parameters)
        if "server_ms" in timing:  # the step server's own time on this request: its handler minus the model
            own.append((timing["server_ms"] - timing["inference_ms"]) / 1000)
    send.close()

    done = [0] * clients
    end = time.perf_counter() + throughput_s

    def worker(index: int) -> None:
        own = _Sender(address, model_name, batch, shared_memory)
        while time.perf_counter() < end:
            own()
            done[index] += 1
        own.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures = {**percentiles(samples), "throughput_rps": sum(done) / (time.perf_counter() - start)}
    if own:
        figures["server_own_p50_ms"] = percentiles(own)["p50_ms"]
    return figures


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    found: list[str] = []

    def read() -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            line = raw.decode(errors="replace")
            if line.startswith(prefix):
                found.append(line.strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        raise RuntimeError(f"no '{prefix}' line within {timeout} s")
    return found[0]


def wait_for_grpc(address: str, timeout: float) -> None:
    import grpc

    from milestone_lib.serving.protocol import service_pb2

    end = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < end:
            try:
                if stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=1).ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise RuntimeError(f"server at {address} not ready within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def serve_echo() -> None:
    """The transport floor: an OIP gRPC server (grpc.aio, like the step server) that answers at once."""

    import grpc

    from milestone_lib.serving.protocol import add_output, service_pb2

    output = np.zeros((1, 10), dtype=np.float32)

    class Echo(service_pb2_grpc.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            response = service_pb2.ModelInferResponse(model_name=request.model_name)
            add_output(response, "OUTPUT", output)
            return response

    server = grpc.aio.server(options=grpc_channel_options())
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"READY 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def bench_server_process(cmd: list[str], requests: int, *, shared_memory: bool = False) -> dict[str, dict[str, float]]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        address = wait_for_line(proc, "READY ", 120).split()[1]
        return {label: bench_grpc(address, "classify", shape, requests, shared_memory=shared_memory)
                for label, shape in REQUESTS.items()}
    finally:
        stop(proc)


def bench_step_server(variant: Path, threads: int, requests: int, *,
                      shared_memory: bool = False) -> dict[str, dict[str, float]]:
    cmd = [sys.executable, "-m", "milestone_lib.serving.server", "--variant", str(variant), "--host", "127.0.0.1",
           "--port", "0", "--threads", str(threads), "--max-batch-size", "8", "--max-queue-delay-ms", "0",
           "--max-queue-size", "64", "--raw-tensors"]
    return bench_server_process(cmd, requests, shared_memory=shared_memory)


def install_mlserver() -> Path:
    """The venv's python, installing MLServer 1.7 there on first use; raises RuntimeError on failure."""
    python = MLSERVER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import mlserver, onnxruntime; print(mlserver.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(MLSERVER_VENV)],
             [str(python), "-m", "pip", "install", "-q", *MLSERVER_PACKAGES]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(step)}` failed:\n{done.stderr[-2000:]}")
    return python


def bench_mlserver(model: Path, threads: int, requests: int) -> dict[str, dict[str, float]]:
    python = install_mlserver()
    with tempfile.TemporaryDirectory(prefix="bench-mlserver-") as tmp:
        folder = Path(tmp)
        (folder / "onnx_model.py").write_text(MLSERVER_MODEL)
        grpc_port = free_port()
        (folder / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": free_port(), "grpc_port": grpc_port, "metrics_port": free_port(),
            "parallel_workers": 0, "debug": False, "grpc_max_message_length": 64 * 2**20,
        }))
        (folder / "model-settings.json").write_text(json.dumps({
            "name": "classify", "implementation": "onnx_model.OnnxModel",
            "parameters": {"uri": str(model), "extra": {"threads": threads}},
        }))
        env = {**os.environ, "PYTHONPATH": str(folder)}
        proc = subprocess.Popen([str(python.parent / "mlserver"), "start", str(folder)], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(folder / "mlserver.log", "wb"))  # noqa: SIM115
        try:
            address = f"127.0.0.1:{grpc_port}"
            try:
                wait_for_grpc(address, 120)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{(folder / 'mlserver.log').read_text()[-2000:]}") from None
            return {label: bench_grpc(address, "classify", shape, requests) for label, shape in REQUESTS.items()}
        finally:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per latency figure")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for every contender")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--model", choices=["resnet-tiny", "mobilenetv3-small"], default="resnet-tiny")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        import asyncio

        asyncio.run(serve_echo())
        return 0

    from milestone_lib.variants.hf import CLASSIFIER_SIZES

    # The folder names the architecture, so a changed "tiny" is rebuilt rather than read stale.
    tag = hashlib.sha256(repr(CLASSIFIER_SIZES["tiny"]).encode()).hexdigest()[:8]
    variant = build_variant(CACHE / "bench-step-server" / tag, args.model)
    model = variant / "model.onnx"
    results: dict[str, dict[str, dict[str, float]]] = {
        "onnxruntime in process": {label: bench_in_process(model, shape, args.threads, args.requests)
                                   for label, shape in REQUESTS.items()},
        "grpc echo (no model)": bench_server_process([sys.executable, __file__, "--serve-echo"], args.requests),
        "step server": bench_step_server(variant, args.threads, args.requests),
        "step server, shm input": bench_step_server(variant, args.threads, args.requests, shared_memory=True),
    }
    mlserver_note = ""
    if args.skip_mlserver:
        mlserver_note = "MLServer: skipped (--skip-mlserver)"
    else:
        try:
            results["mlserver 1.7"] = bench_mlserver(model, args.threads, args.requests)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not measure, and goes on
            mlserver_note = f"MLServer: NOT MEASURED: {exc}"

    print(f"\nSame ONNX model ({args.model}, random weights), {args.threads} intra-op thread(s), "
          f"{args.requests} sequential requests; throughput with 4 concurrent clients (in process: 1 caller)")
    print(f"{'contender':<24}{'request':<18}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for contender, by_request in results.items():
        for label, figures in by_request.items():
            print(f"{contender:<24}{label:<18}{figures['p50_ms']:>9.2f}{figures['p99_ms']:>9.2f}"
                  f"{figures['throughput_rps']:>9.1f}")
    print()
    ort_, step = results["onnxruntime in process"], results["step server"]
    for label in REQUESTS:
        overhead = step[label]["p50_ms"] - ort_[label]["p50_ms"]
        line = f"{label}: step server overhead over in-process ORT p50 {overhead:+.2f} ms " \
               f"(x{step[label]['p50_ms'] / ort_[label]['p50_ms']:.2f})"
        if "mlserver 1.7" in results:
            ml = results["mlserver 1.7"][label]
            line += f"; MLServer p50 / step server p50 = {ml['p50_ms'] / step[label]['p50_ms']:.2f}x, " \
                    f"p99 {ml['p99_ms'] / step[label]['p99_ms']:.2f}x, " \
                    f"throughput step/MLServer {step[label]['throughput_rps'] / ml['throughput_rps']:.2f}x"
        print(line)
    echo = results["grpc echo (no model)"]
    for label in REQUESTS:
        own = step[label]["p50_ms"] - echo[label]["p50_ms"] - ort_[label]["p50_ms"]
        print(f"{label}: step server p50 - (gRPC transport floor p50 + in-process ORT p50) = {own:+.2f} ms "
              "(what the server adds beyond moving the bytes and running the model)")
    shm = results["step server, shm input"]
    for label in REQUESTS:
        overhead = shm[label]["p50_ms"] - ort_[label]["p50_ms"]
        print(f"{label}: step server with the tensor in shared memory: overhead over in-process ORT p50 "
              f"{overhead:+.2f} ms (x{shm[label]['p50_ms'] / ort_[label]['p50_ms']:.2f})")
    for label in REQUESTS:
        print(f"{label}: the step server's own time per request (server_ms - inference_ms, from each response), "
              f"p50 {step[label]['server_own_p50_ms']:.2f} ms with the tensor in the message, "
              f"{shm[label]['server_own_p50_ms']:.2f} ms in shared memory")
    big = "1x3x224x224"
    overhead = step[big]["p50_ms"] - ort_[big]["p50_ms"]
    shm_overhead = shm[big]["p50_ms"] - ort_[big]["p50_ms"]
    own = step[big]["server_own_p50_ms"]
    floor = echo[big]["p50_ms"]
    print(f"target: step-server overhead over in-process ORT <= 1 ms p50 on {big}: "
          f"in the gRPC message {'MET' if overhead <= 1.0 else 'NOT MET'} ({overhead:.2f} ms), "
          f"tensor in shared memory {'MET' if shm_overhead <= 1.0 else 'NOT MET'} ({shm_overhead:.2f} ms). "
          f"Of that, the server's own time per request is {own:.2f} ms; a bare gRPC echo takes "
          f"{echo[next(iter(REQUESTS))]['p50_ms']:.2f} ms for the small request and {floor:.2f} ms for {big} on "
          f"this machine{' (the transport alone is over the target)' if floor > 1.0 else ''}")
    if "mlserver 1.7" in results:
        ml_p50 = results["mlserver 1.7"][big]["p50_ms"]
        ratio = ml_p50 / step[big]["p50_ms"]
        print(f"target: >= 3x lower p50 than MLServer on {big}: {'MET' if ratio >= 3 else 'NOT MET'} ({ratio:.2f}x); "
              f"3x asks the step server for <= {ml_p50 / 3:.2f} ms, and ONNX Runtime alone takes "
              f"{ort_[big]['p50_ms']:.2f} ms in process")
    if mlserver_note:
        print(mlserver_note)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "note": mlserver_note}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
