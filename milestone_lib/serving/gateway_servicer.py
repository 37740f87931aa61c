"""The gateway's gRPC edge: Open Inference Protocol calls mapped onto a `PipelineGateway`.

Health and metadata answer from the gateway's state; `ModelConfig("pipeline")` carries the
membership in force (`serving/membership.py`), the policy, and `admission` (JSON: step -> replica ->
the requests it holds, null until its ModelConfig answered); `ModelInfer` counts every outcome by code.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Protocol

from ..errors import ModelNotFoundError, ServingError
from .membership import PIPELINE_MODEL, Membership, encode_membership
from .metrics import GatewayMetrics
from .protocol import map_errors, model_config_pb2, service_pb2, service_pb2_grpc

__all__ = ["GatewayServicer", "Pipeline"]


class Pipeline(Protocol):
    """What the servicer needs of the gateway (`gateway.PipelineGateway`), without importing it."""

    ready: bool
    policy: str
    generation: int
    instance: str
    membership: dict[str, list[str]]
    metrics: GatewayMetrics

    def admission_limits(self) -> dict[str, dict[str, int | None]]: ...

    async def infer(self, request: service_pb2.ModelInferRequest, time_remaining: float | None,
                    started: float) -> service_pb2.ModelInferResponse: ...


class GatewayServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Serves model `pipeline` of one `PipelineGateway`."""

    def __init__(self, owner: Pipeline) -> None:
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
        encode_membership(config.parameters, Membership(self.owner.generation, self.owner.membership, self.owner.instance))
        config.parameters["policy"].string_value = self.owner.policy
        config.parameters["admission"].string_value = json.dumps(self.owner.admission_limits())
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
