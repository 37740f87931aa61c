"""Step server: one variant of one step behind `inference.GRPCInferenceService` (Open Inference Protocol).

The model answers under its variant name and under its step name (`detect` / `classify`).
Requests go through a `DynamicBatcher` (bounded queue, dynamic batching, deadline drop); each
response carries `queue_ms`, `preprocess_ms`, `inference_ms`, `postprocess_ms`, `server_ms` (the
whole handler, transport excluded; double) and `batch_size` (int64) in its parameters. Tensors
may come and go through system shared memory (`shared_memory.py`) instead of the message.

Strict edges (`protocol.check_request`): duplicate inputs, unknown inputs or requested outputs,
typed `contents`, and a request of more rows than ModelConfig's `max_batch_size` (the server's
`max_request_rows`) get INVALID_ARGUMENT naming the value. ModelConfig's
`dynamic_batching.preferred_batch_size` is the batcher's batch; a request above it is computed in
slices of it. Batching flags left out take the step's defaults (`defaults.py`).

CLI:
    python -m milestone_lib.serving.server --variant DIR --host 127.0.0.1 --port P --threads N \
        [--max-batch-size B] [--max-queue-delay-ms D] [--max-queue-size Q] [--max-request-rows R] \
        [--metrics-port M] [--raw-tensors]
prints `READY <host>:<port>` once serving; SIGTERM/SIGINT stop it gracefully (exit 0).
Also serves `grpc.health.v1.Health` (`health.py`) for Docker health checks and Kubernetes probes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import grpc

from ..errors import ModelNotFoundError, ServingError
from .batcher import DynamicBatcher, split_oversized
from .defaults import step_defaults
from .health import add_health_service
from .metrics import StepMetrics, start_metrics_server
from .protocol import (
    MAX_MESSAGE_BYTES,
    add_output,
    check_request,
    decode_inputs,
    grpc_channel_options,
    map_errors,
    model_config_pb2,
    requested_output_regions,
    service_pb2,
    service_pb2_grpc,
    set_parameters,
)
from .service import run_service, serve_until_signal, service_parser
from .shared_memory import SharedMemoryRegions
from .step_model import StepModel, load_step_model

__all__ = ["SERVER_NAME", "StepServer", "main", "serve_step"]

log = logging.getLogger(__name__)
SERVER_NAME = "milestone-step-server"
_TRANSPORT_SLACK_BYTES = 1024 * 1024


class _StepServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, owner: StepServer) -> None:
        self.owner = owner

    def _model(self, name: str) -> StepModel:
        model = self.owner.model
        if name not in (model.name, model.step):
            raise ModelNotFoundError(
                f"model '{name}' is not served here; this server serves '{model.name}' (also as '{model.step}')"
            )
        return model

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=self.owner.ready)

    async def ModelReady(self, request, context):
        model = self.owner.model
        return service_pb2.ModelReadyResponse(ready=self.owner.ready and request.name in (model.name, model.step))

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version="1", extensions=["system_shared_memory"])

    @map_errors
    async def SystemSharedMemoryRegister(self, request, context):
        self.owner.shared_memory.register(request.name, request.key, request.offset, request.byte_size)
        return service_pb2.SystemSharedMemoryRegisterResponse()

    @map_errors
    async def SystemSharedMemoryUnregister(self, request, context):
        self.owner.shared_memory.unregister(request.name)
        return service_pb2.SystemSharedMemoryUnregisterResponse()

    @map_errors
    async def SystemSharedMemoryStatus(self, request, context):
        response = service_pb2.SystemSharedMemoryStatusResponse()
        for region in self.owner.shared_memory.status(request.name):
            status = response.regions[region.name]
            status.name, status.key, status.offset, status.byte_size = (region.name, region.key, region.offset,
                                                                         region.byte_size)
        return response

    @map_errors
    async def ModelMetadata(self, request, context):
        model = self._model(request.name)
        response = service_pb2.ModelMetadataResponse(name=model.name, versions=["1"], platform=model.platform)
        for spec in model.inputs:
            response.inputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        for spec in model.outputs:
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        return response

    @map_errors
    async def ModelConfig(self, request, context):
        model = self._model(request.name)
        batcher = self.owner.batcher
        config = model_config_pb2.ModelConfig(name=model.name, platform=model.platform,
                                              max_batch_size=self.owner.max_request_rows)
        config.dynamic_batching.preferred_batch_size.append(batcher.max_batch_size)
        config.dynamic_batching.max_queue_delay_microseconds = int(batcher.max_queue_delay_s * 1e6)
        config.dynamic_batching.default_queue_policy.max_queue_size = batcher.max_queue_size
        for key, value in {"step": model.step, "imgsz": str(model.manifest.imgsz),
                           "threads": str(self.owner.threads)}.items():
            config.parameters[key].string_value = value
        return service_pb2.ModelConfigResponse(config=config)

    @map_errors
    async def ModelInfer(self, request, context):
        started = time.perf_counter()
        metrics = self.owner.metrics
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            model = self._model(request.model_name)
            check_request(request, inputs=[spec.name for spec in model.inputs],
                          outputs=[spec.name for spec in model.outputs], max_batch_size=self.owner.max_request_rows)
            # Refuse before decoding: no await from here to submit(), so the queue cannot fill meanwhile.
            self.owner.batcher.refuse_if_full()
            shared_memory = self.owner.shared_memory
            inputs = decode_inputs(request, max_bytes=self.owner.max_request_bytes, shared_memory=shared_memory)
            to_regions = requested_output_regions(request, [spec.name for spec in model.outputs], shared_memory)
            payload, rows = model.validate(inputs)
            outputs, timing = await self.owner.batcher.submit(payload, size=rows, deadline=deadline)
        except ServingError as exc:
            metrics.served(exc.code.lower())
            raise
        except asyncio.CancelledError:
            expired = deadline is not None and time.monotonic() >= deadline
            metrics.served("deadline_exceeded" if expired else "cancelled")
            raise
        except Exception:
            metrics.served("internal")
            raise
        response = service_pb2.ModelInferResponse(model_name=model.name, model_version="1", id=request.id)
        for name, array in outputs.items():
            add_output(response, name, array, shared_memory=shared_memory, reference=to_regions.get(name))
        # server_ms: the handler from decoding the request to a built response (the transport excluded).
        set_parameters(response.parameters, {**timing.stages_ms, "queue_ms": timing.queue_ms,
                                             "batch_size": timing.batch_size,
                                             "server_ms": 1000 * (time.perf_counter() - started)})
        metrics.served("ok", time.perf_counter() - started, timing.queue_ms / 1000)
        return response


class StepServer:
    """One variant of one step, served over gRPC with a bounded, batching queue.

    Usage (inside an event loop): `port = await server.start(host, port)`, then `await server.stop()`.
    """

    def __init__(self, variant_dir: Path, *, threads: int = 1, max_batch_size: int | None = None,
                 max_queue_delay_ms: float | None = None, max_queue_size: int | None = None,
                 max_request_rows: int | None = None, metrics_port: int | None = None,
                 raw_tensors: bool = False, max_request_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.threads = threads
        self.model = load_step_model(Path(variant_dir), threads=threads, raw_tensors=raw_tensors)
        defaults = step_defaults(self.model.step)
        batch = max_batch_size or defaults.max_batch_size
        self.max_request_rows = max(max_request_rows or defaults.max_request_rows, batch)
        self.metrics = StepMetrics(self.model.name)
        self.batcher: DynamicBatcher = DynamicBatcher(
            split_oversized(self.model.run_batch, batch), max_batch_size=batch,
            max_queue_delay_s=(defaults.max_queue_delay_ms if max_queue_delay_ms is None else max_queue_delay_ms) / 1000,
            max_queue_size=max_queue_size or defaults.max_queue_size, observer=self.metrics, name=self.model.name,
        )
        self.shared_memory = SharedMemoryRegions()
        self.metrics_port = metrics_port
        self.max_request_bytes = max_request_bytes
        self.ready = False
        self.address: str | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind and serve; returns the bound port (port 0 picks a free one)."""
        # The transport limit sits above ours, so an oversized tensor gets our INVALID_ARGUMENT
        # message; only a message past the transport limit gets gRPC's own RESOURCE_EXHAUSTED.
        self._server = grpc.aio.server(options=grpc_channel_options(self.max_request_bytes + _TRANSPORT_SLACK_BYTES))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_StepServicer(self), self._server)
        add_health_service(self._server, self._health)
        bound = self._server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot bind {host}:{port}")
        self.batcher.start()
        await self._server.start()
        self.metrics_port = start_metrics_server(self.metrics.registry, self.metrics_port, host=host)
        self.address = f"{host}:{bound}"
        self.ready = True
        return bound

    def _health(self, service: str) -> bool | None:
        """grpc.health.v1: the server ("") and its model under either name."""
        return self.ready if service in ("", self.model.name, self.model.step) else None

    async def stop(self, grace: float = 5.0) -> None:
        """Refuse new requests, finish those in flight (up to `grace` seconds), then stop."""
        self.ready = False
        if self._server is not None:
            await self._server.stop(grace)
        await self.batcher.stop()

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve_step(variant_dir: Path, *, host: str = "127.0.0.1", port: int = 0, grace: float = 5.0,
                     **options) -> None:
    """Serve a variant until SIGTERM/SIGINT (the CLI's body)."""
    server = StepServer(variant_dir, **options)
    await serve_until_signal(server.start, server.stop, host=host, port=port, grace=grace)


def _parser() -> argparse.ArgumentParser:
    parser = service_parser("python -m milestone_lib.serving.server", __doc__.split("\n")[0])
    parser.add_argument("--variant", type=Path, required=True, help="variant folder holding manifest.json")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of the runtime")
    parser.add_argument("--max-batch-size", type=int, help="rows per model call (default: the step's, defaults.py)")
    parser.add_argument("--max-queue-delay-ms", type=float, help="default: the step's")
    parser.add_argument("--max-queue-size", type=int, help="default: the step's")
    parser.add_argument("--max-request-rows", type=int, help="most rows per request, ModelConfig max_batch_size")
    parser.add_argument("--raw-tensors", action="store_true", help="serve FP32 NCHW `INPUT` -> `OUTPUT` as is")
    parser.add_argument("--max-request-mb", type=float, default=MAX_MESSAGE_BYTES / 2**20)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_service(serve_step(
        args.variant, host=args.host, port=args.port, grace=args.grace_s, threads=args.threads,
        max_batch_size=args.max_batch_size, max_queue_delay_ms=args.max_queue_delay_ms,
        max_queue_size=args.max_queue_size, max_request_rows=args.max_request_rows,
        metrics_port=args.metrics_port, raw_tensors=args.raw_tensors,
        max_request_bytes=int(args.max_request_mb * 2**20),
    ))


if __name__ == "__main__":
    sys.exit(main())
