"""Pipeline gateway: model `pipeline` = detect on one replica, crop, classify all crops in one call.

Same protocol as the step servers (`inference.GRPCInferenceService`). For each `IMAGE` UINT8
[1, H, W, 3] it calls a detect replica, cuts the crops at the classifier's imgsz (read from that
replica's ModelMetadata, `CROPS` shape [-1, S, S, 3]), sends them in one request to a classify
replica (no call when nothing was detected), and answers `DETECTIONS` FP32 [K, 6] with the
classifier's class id and score = detector score × class probability.

Response parameters (double, ms): `detect_queue_ms`, `detect_compute_ms`, `detect_network_ms`,
the same for `classify_`, `gateway_ms` and `total_ms`; they add up: total = sum of the six step
figures + gateway. network = round trip (retries included) minus the time the server reported.
Also `detect_replica` / `classify_replica` (string) and `detections` (int64).

Errors: a replica that fails with UNAVAILABLE (killed, stopping, unreachable) is retried once
on another replica; any other step error (RESOURCE_EXHAUSTED when a step refuses, DEADLINE_EXCEEDED,
INVALID_ARGUMENT, ...) comes back to the caller with its code, naming the step and replica.
The caller's deadline is passed on to each step call (with no deadline: `--step-timeout-s`).

Membership: `--endpoints FILE` holds `{"detect": ["host:port", ...], "classify": [...]}`; the
gateway polls its mtime every 0.2 s and applies a change without dropping requests (a removed
replica takes no new request, its in-flight ones finish). Write the file atomically (write a
temporary file, then rename); a file that does not parse is logged and ignored until it changes.
The membership in force is queryable:
- `ModelConfig("pipeline")` -> `config.parameters["endpoints"].string_value` is the JSON
  `{"detect": [...], "classify": [...]}` in force and `parameters["generation"]` counts the
  reloads (tritonclient: `client.get_model_config("pipeline", as_json=True)["config"]["parameters"]`);
- each change is also logged to stderr as one line `MEMBERSHIP {"generation": n, "detect": [...], "classify": [...]}`.
ServerReady / ModelReady("pipeline") are true while both steps have at least one replica.

CLI:
    python -m milestone_lib.serving.gateway --endpoints FILE --host 127.0.0.1 --port P \
        [--metrics-port M] [--policy least-outstanding|round-robin]
prints `READY <host>:<port>`; SIGTERM/SIGINT stop it gracefully (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np

from ..contracts import STEPS
from ..errors import InvalidInputError, ModelNotFoundError, ServingError
from ..inference import cut_crops
from .balancer import POLICIES, Policy, Replica, ReplicaPool
from .metrics import GatewayMetrics, start_metrics_server
from .protocol import (
    MAX_MESSAGE_BYTES,
    add_output,
    decode_inputs,
    decode_outputs,
    grpc_channel_options,
    make_infer_request,
    map_errors,
    model_config_pb2,
    read_parameters,
    service_pb2,
    service_pb2_grpc,
    set_parameters,
)
from .service import run_service, serve_until_signal, service_parser

__all__ = ["PIPELINE_MODEL", "PipelineGateway", "StepFailedError", "main", "read_endpoints", "serve_gateway"]

log = logging.getLogger(__name__)
PIPELINE_MODEL = "pipeline"
_COMPUTE_KEYS = ("preprocess_ms", "inference_ms", "postprocess_ms")


class StepFailedError(ServingError):
    """A step call that failed with a gRPC status; `code` is that status, passed on to the caller."""

    def __init__(self, step: str, address: str, code: grpc.StatusCode, details: str | None) -> None:
        self.code = code.name  # type: ignore[misc]  # instance-level: the step's own status
        self.step = step
        self.address = address
        super().__init__(f"step '{step}' (replica {address}) answered {code.name}: {details}")


def read_endpoints(path: Path) -> dict[str, list[str]]:
    """Parse an endpoints file; raises ValueError naming the problem."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        # ValueError, not TypeError: the CLI turns ValueError into one `error:` line and exit 2.
        raise ValueError(f"endpoints file '{path}' holds {type(data).__name__}, not an object")  # noqa: TRY004
    out: dict[str, list[str]] = {}
    for step in STEPS:
        addresses = data.get(step, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(f"endpoints file '{path}': '{step}' must be a list of 'host:port' strings")
        out[step] = addresses
    return out


class _StepCall:
    """Outcome of one step call: outputs, the server-reported times, the round trip."""

    def __init__(self, outputs: dict[str, np.ndarray], parameters: dict, round_trip_ms: float, replica: str) -> None:
        self.outputs = outputs
        self.replica = replica
        self.round_trip_ms = round_trip_ms
        self.queue_ms = float(parameters.get("queue_ms", 0.0))  # type: ignore[arg-type]
        self.compute_ms = sum(float(parameters.get(k, 0.0)) for k in _COMPUTE_KEYS)  # type: ignore[arg-type]

    @property
    def network_ms(self) -> float:
        return self.round_trip_ms - self.queue_ms - self.compute_ms


class _GatewayServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, owner: PipelineGateway) -> None:
        self.owner = owner

    @staticmethod
    def _check_model(name: str) -> None:
        if name != PIPELINE_MODEL:
            raise ModelNotFoundError(f"model '{name}' is not served here; the gateway serves '{PIPELINE_MODEL}'")

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.owner.ready)

    async def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=self.owner.ready and request.name == PIPELINE_MODEL)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name="milestone-pipeline-gateway", version="1", extensions=[])

    @map_errors
    async def ModelMetadata(self, request, context):
        self._check_model(request.name)
        response = service_pb2.ModelMetadataResponse(name=PIPELINE_MODEL, versions=["1"], platform="ensemble")
        response.inputs.add(name="IMAGE", datatype="UINT8", shape=[1, -1, -1, 3])
        response.outputs.add(name="DETECTIONS", datatype="FP32", shape=[-1, 6])
        return response

    @map_errors
    async def ModelConfig(self, request, context):
        self._check_model(request.name)
        config = model_config_pb2.ModelConfig(name=PIPELINE_MODEL, platform="ensemble")
        config.parameters["endpoints"].string_value = json.dumps(self.owner.membership)
        config.parameters["generation"].string_value = str(self.owner.generation)
        config.parameters["policy"].string_value = self.owner.policy
        return service_pb2.ModelConfigResponse(config=config)

    @map_errors
    async def ModelInfer(self, request, context):
        started = time.perf_counter()
        metrics = self.owner.metrics
        try:
            self._check_model(request.model_name)
            response = await self.owner.infer(request, context.time_remaining(), started)
        except ServingError as exc:
            metrics.requests.labels(exc.code.lower()).inc()
            raise
        except asyncio.CancelledError:
            metrics.requests.labels("cancelled").inc()
            raise
        except Exception:
            metrics.requests.labels("internal").inc()
            raise
        metrics.requests.labels("ok").inc()
        metrics.latency.observe(time.perf_counter() - started)
        return response


class PipelineGateway:
    """The `pipeline` model over replica pools of `detect` and `classify`.

    Usage (inside an event loop): `port = await gateway.start(host, port)`, then `await gateway.stop()`.
    """

    def __init__(self, endpoints_file: Path, *, policy: Policy = "least-outstanding", metrics_port: int | None = None,
                 poll_s: float = 0.2, step_timeout_s: float = 30.0, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.endpoints_file = Path(endpoints_file)
        if not self.endpoints_file.exists():
            raise FileNotFoundError(
                f"endpoints file '{self.endpoints_file}' does not exist; write "
                '{"detect": ["127.0.0.1:PORT"], "classify": ["127.0.0.1:PORT"]} there first'
            )
        self.policy = policy
        self.metrics = GatewayMetrics()
        self.metrics_port = metrics_port
        self.poll_s = poll_s
        self.step_timeout_s = step_timeout_s
        self.max_message_bytes = max_message_bytes
        self.pools: dict[str, ReplicaPool] = {}
        self.generation = 0
        self._stamp: tuple[int, int] | None = None
        self._watcher: asyncio.Task | None = None
        self._server: grpc.aio.Server | None = None
        self.address: str | None = None

    # membership ---------------------------------------------------------------------------
    @property
    def membership(self) -> dict[str, list[str]]:
        return {step: pool.addresses for step, pool in self.pools.items()}

    @property
    def ready(self) -> bool:
        return bool(self.pools) and all(pool.replicas for pool in self.pools.values())

    def reload_endpoints(self) -> bool:
        """Apply the endpoints file if it changed since the last good read; True when applied."""
        try:
            stat = os.stat(self.endpoints_file)
        except FileNotFoundError:
            return False  # keep the membership in force; the deployer may be replacing the file
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        try:
            endpoints = read_endpoints(self.endpoints_file)
        except (OSError, ValueError) as exc:
            log.warning("endpoints file not applied: %s", exc)
            self._stamp = stamp  # retried once the file changes again
            return False
        self._stamp = stamp
        for step in STEPS:
            self.pools[step].update(endpoints[step])
            self.metrics.replicas.labels(step).set(len(endpoints[step]))
        self.generation += 1
        print("MEMBERSHIP " + json.dumps({"generation": self.generation, **self.membership}), file=sys.stderr, flush=True)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self.reload_endpoints()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("reloading endpoints failed")

    # lifecycle ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        for step in STEPS:
            self.pools[step] = ReplicaPool(step, policy=self.policy, max_message_bytes=self.max_message_bytes)
        self.reload_endpoints()
        self._server = grpc.aio.server(options=grpc_channel_options(self.max_message_bytes))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_GatewayServicer(self), self._server)
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot bind {host}:{port}")
        await self._server.start()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="endpoints-watcher")
        self.metrics_port = start_metrics_server(self.metrics.registry, self.metrics_port, host=host)
        self.address = f"{host}:{bound}"
        return bound

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        if self._watcher is not None:
            self._watcher.cancel()
        for pool in self.pools.values():
            await pool.close()

    # the pipeline -------------------------------------------------------------------------
    async def infer(self, request: service_pb2.ModelInferRequest, time_remaining: float | None,
                    started: float) -> service_pb2.ModelInferResponse:
        inputs = decode_inputs(request, max_bytes=self.max_message_bytes)
        image = inputs.get("IMAGE")
        if image is None:
            raise InvalidInputError(f"model '{PIPELINE_MODEL}' takes input 'IMAGE'; the request has {list(inputs)}")
        if image.dtype != np.uint8 or image.ndim != 4 or image.shape[0] != 1 or image.shape[3] != 3 or image.size == 0:
            raise InvalidInputError(
                f"input 'IMAGE' is {image.dtype} of shape {list(image.shape)}; send one UINT8 image as [1, H, W, 3]"
            )
        budget = self.step_timeout_s if time_remaining is None else time_remaining
        deadline = time.monotonic() + budget

        async def detect_request(replica: Replica) -> service_pb2.ModelInferRequest:
            return make_infer_request("detect", {"IMAGES": image}, request_id=request.id)

        detect = await self._call("detect", detect_request, deadline)
        detections = detect.outputs["DETECTIONS"]
        classify: _StepCall | None = None
        result = np.zeros((0, 6), dtype=np.float32)
        if len(detections):
            loop = asyncio.get_running_loop()

            async def classify_request(replica: Replica) -> service_pb2.ModelInferRequest:
                size = await self._classifier_imgsz(replica, deadline)
                crops = await loop.run_in_executor(None, cut_crops, image[0], detections, size)
                return make_infer_request("classify", {"CROPS": crops}, request_id=request.id)

            classify = await self._call("classify", classify_request, deadline)
            probabilities = classify.outputs["PROBABILITIES"]
            classes = probabilities.argmax(axis=1)
            result = detections.copy()
            result[:, 4] = detections[:, 4] * probabilities[np.arange(len(classes)), classes]
            result[:, 5] = classes
        self.metrics.crops.observe(len(detections))

        response = service_pb2.ModelInferResponse(model_name=PIPELINE_MODEL, model_version="1", id=request.id)
        add_output(response, "DETECTIONS", result.astype(np.float32))
        timing: dict[str, float | int | str] = {}
        step_total = 0.0
        for step, call in (("detect", detect), ("classify", classify)):
            timing[f"{step}_queue_ms"] = call.queue_ms if call else 0.0
            timing[f"{step}_compute_ms"] = call.compute_ms if call else 0.0
            timing[f"{step}_network_ms"] = call.network_ms if call else 0.0
            timing[f"{step}_replica"] = call.replica if call else ""
            step_total += call.round_trip_ms if call else 0.0
        total_ms = 1000 * (time.perf_counter() - started)
        timing["gateway_ms"] = total_ms - step_total
        timing["total_ms"] = total_ms
        timing["detections"] = len(result)
        set_parameters(response.parameters, timing)
        return response

    async def _classifier_imgsz(self, replica: Replica, deadline: float) -> int:
        if "imgsz" not in replica.metadata:
            meta = await replica.stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="classify"),
                                                    timeout=max(deadline - time.monotonic(), 0.001))
            crops = next((t for t in meta.inputs if t.name == "CROPS"), None)
            if crops is None or len(crops.shape) != 4 or crops.shape[1] <= 0:
                raise ServingError(f"classify replica {replica.address} has no CROPS [K, S, S, 3] input; "
                                   "serve a classify variant there without --raw-tensors")
            replica.metadata["imgsz"] = int(crops.shape[1])
        return int(replica.metadata["imgsz"])  # type: ignore[arg-type]

    async def _call(self, step: str, build: Callable[[Replica], Awaitable[service_pb2.ModelInferRequest]],
                    deadline: float) -> _StepCall:
        """Call a replica of `step`; on UNAVAILABLE retry once on another; other errors pass through."""
        pool = self.pools[step]
        tried: list[Replica] = []
        round_trip_ms = 0.0  # the calls themselves, retries included; building requests is gateway time
        while True:
            replica = pool.pick(exclude=tuple(tried))
            tried.append(replica)
            with pool.track(replica):
                self.metrics.outstanding.labels(step, replica.address).set(replica.outstanding)
                sent: float | None = None
                try:
                    request = await build(replica)
                    sent = time.perf_counter()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StepFailedError(step, replica.address, grpc.StatusCode.DEADLINE_EXCEEDED,
                                              "the caller's deadline passed before the call")
                    response = await replica.stub.ModelInfer(request, timeout=remaining)
                except grpc.aio.AioRpcError as exc:
                    if sent is not None:
                        round_trip_ms += 1000 * (time.perf_counter() - sent)
                    others = [r for r in pool.replicas if r not in tried]
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and len(tried) < 2 and others:
                        pool.mark_down(replica)
                        self.metrics.retries.labels(step).inc()
                        log.warning("%s replica %s unavailable (%s); retrying on another", step, replica.address,
                                    exc.details())
                        continue
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        pool.mark_down(replica)
                    raise StepFailedError(step, replica.address, exc.code(), exc.details()) from None
                finally:
                    self.metrics.outstanding.labels(step, replica.address).set(replica.outstanding - 1)
            round_trip_ms += 1000 * (time.perf_counter() - sent)  # type: ignore[operator]
            self.metrics.step_latency.labels(step).observe(round_trip_ms / 1000)
            return _StepCall(decode_outputs(response), read_parameters(response.parameters), round_trip_ms,
                             replica.address)


async def serve_gateway(endpoints_file: Path, *, host: str = "127.0.0.1", port: int = 0, grace: float = 5.0,
                        **options) -> None:
    """Serve the pipeline until SIGTERM/SIGINT (the CLI's body)."""
    gateway = PipelineGateway(endpoints_file, **options)
    await serve_until_signal(gateway.start, gateway.stop, host=host, port=port, grace=grace)


def _parser() -> argparse.ArgumentParser:
    parser = service_parser("python -m milestone_lib.serving.gateway", __doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=Path, required=True, help='JSON {"detect": [...], "classify": [...]}')
    parser.add_argument("--policy", choices=POLICIES, default="least-outstanding")
    parser.add_argument("--step-timeout-s", type=float, default=30.0, help="step deadline when the caller sets none")
    parser.add_argument("--poll-s", type=float, default=0.2, help="how often the endpoints file is checked")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_service(serve_gateway(
        args.endpoints, host=args.host, port=args.port, grace=args.grace_s, policy=args.policy,
        metrics_port=args.metrics_port, step_timeout_s=args.step_timeout_s, poll_s=args.poll_s,
    ))


if __name__ == "__main__":
    sys.exit(main())
