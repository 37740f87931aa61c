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
Admission: when every replica of the first step has as many calls outstanding as its queue holds
(from its ModelConfig), a request is refused RESOURCE_EXHAUSTED before it is decoded or forwarded.
The caller's deadline is passed on to each step call (with no deadline: `--step-timeout-s`).

Membership: `--endpoints FILE` (`serving/membership.py` holds the whole contract: write, watch,
query); the gateway polls it every `--poll-s` and applies a change without dropping requests (a
removed replica takes no new request, its in-flight ones finish); a file that does not parse is
logged and ignored until it changes. `ModelConfig("pipeline")` reports the membership in force and
its `generation` (with the gateway's `instance`, new at every start); each change is also logged to stderr as `MEMBERSHIP {"generation": n, ...}`.
ServerReady / ModelReady("pipeline") are true while both steps have at least one replica.

CLI:
    python -m milestone_lib.serving.gateway --endpoints FILE --host 127.0.0.1 --port P \
        [--metrics-port M] [--policy least-outstanding|round-robin]
prints `READY <host>:<port>`; SIGTERM/SIGINT stop it gracefully (exit 0).
Also serves `grpc.health.v1.Health` (`health.py`): SERVING while both steps have a replica.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from ..data.geometry import cut_crops
from ..errors import InvalidInputError, ServingError
from .balancer import POLICIES, Policy, Replica, ReplicaPool
from .gateway_servicer import GatewayServicer
from .gateway_steps import StepCall, StepFailedError, call_step
from .health import add_health_service
from .membership import PIPELINE_MODEL, STEPS, EndpointsWatcher, read_endpoints
from .metrics import GatewayMetrics, start_metrics_server
from .protocol import (
    MAX_MESSAGE_BYTES,
    add_output,
    check_request,
    decode_inputs,
    grpc_channel_options,
    make_infer_request,
    service_pb2,
    service_pb2_grpc,
    set_parameters,
)
from .service import run_service, serve_until_signal, service_parser

__all__ = ["PIPELINE_MODEL", "PipelineGateway", "StepFailedError", "main", "read_endpoints", "serve_gateway"]

log = logging.getLogger(__name__)


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
        self.instance = secrets.token_hex(6)
        """New at every start: a deployer tells a restarted gateway (generations from 1 again) by it."""
        self._endpoints = EndpointsWatcher(self.endpoints_file)
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

    def admission_limits(self) -> dict[str, dict[str, int | None]]:
        """Step -> replica -> requests it holds before the gateway refuses for it (None: not known yet)."""
        return {step: {r.address: r.holds for r in pool.replicas} for step, pool in self.pools.items()}

    def reload_endpoints(self) -> bool:
        """Apply the endpoints file if it changed since the last good read; True when applied."""
        endpoints = self._endpoints.poll()
        if endpoints is None:
            return False
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

    def _health(self, service: str) -> bool | None:
        """grpc.health.v1: the gateway and `pipeline` while both steps have a replica; a step while it has one."""
        if service in ("", PIPELINE_MODEL):
            return self.ready
        return bool(self.pools[service].replicas) if service in self.pools else None

    # lifecycle ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        for step in STEPS:
            self.pools[step] = ReplicaPool(step, policy=self.policy, max_message_bytes=self.max_message_bytes)
        self.reload_endpoints()
        self._server = grpc.aio.server(options=grpc_channel_options(self.max_message_bytes))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(GatewayServicer(self), self._server)
        add_health_service(self._server, self._health)
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
        self.pools[STEPS[0]].refuse_if_full()  # before any work: a refusal under overload costs ~nothing
        check_request(request, inputs=("IMAGE",), outputs=("DETECTIONS",), shared_memory=False)
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

        detect = await call_step(self.pools["detect"], self.metrics, detect_request, deadline)
        detections = detect.outputs["DETECTIONS"]
        classify: StepCall | None = None
        result = np.zeros((0, 6), dtype=np.float32)
        if len(detections):
            loop = asyncio.get_running_loop()

            async def classify_request(replica: Replica) -> service_pb2.ModelInferRequest:
                size = await self._classifier_imgsz(replica, deadline)
                crops = await loop.run_in_executor(None, cut_crops, image[0], detections, size)
                return make_infer_request("classify", {"CROPS": crops}, request_id=request.id)

            classify = await call_step(self.pools["classify"], self.metrics, classify_request, deadline)
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
