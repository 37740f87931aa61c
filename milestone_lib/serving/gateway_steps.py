"""One step call of the gateway: pick a replica, call it, retry once elsewhere on UNAVAILABLE.

Any other step error (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, INVALID_ARGUMENT, ...) comes back
as `StepFailedError` carrying the step's own status code, naming the step and the replica.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import grpc
import numpy as np

from ..errors import ServingError
from .balancer import Replica, ReplicaPool
from .metrics import GatewayMetrics
from .protocol import decode_outputs, read_parameters, service_pb2

__all__ = ["StepCall", "StepFailedError", "call_step"]

log = logging.getLogger(__name__)
_COMPUTE_KEYS = ("preprocess_ms", "inference_ms", "postprocess_ms")
RequestBuilder = Callable[[Replica], Awaitable[service_pb2.ModelInferRequest]]


class StepFailedError(ServingError):
    """A step call that failed with a gRPC status; `code` is that status, passed on to the caller."""

    def __init__(self, step: str, address: str, code: grpc.StatusCode, details: str | None) -> None:
        self.code = code.name  # type: ignore[misc]  # instance-level: the step's own status
        self.step = step
        self.address = address
        super().__init__(f"step '{step}' (replica {address}) answered {code.name}: {details}")


class StepCall:
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


async def call_step(pool: ReplicaPool, metrics: GatewayMetrics, build: RequestBuilder, deadline: float) -> StepCall:
    """Call a replica of `pool`'s step; on UNAVAILABLE retry once on another; other errors pass through."""
    step = pool.step
    tried: list[Replica] = []
    round_trip_ms = 0.0  # the calls themselves, retries included; building requests is gateway time
    while True:
        replica = pool.pick(exclude=tuple(tried))
        tried.append(replica)
        with pool.track(replica):
            metrics.outstanding.labels(step, replica.address).set(replica.outstanding)
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
                    metrics.retries.labels(step).inc()
                    log.warning("%s replica %s unavailable (%s); retrying on another", step, replica.address,
                                exc.details())
                    continue
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    pool.mark_down(replica)
                raise StepFailedError(step, replica.address, exc.code(), exc.details()) from None
            finally:
                metrics.outstanding.labels(step, replica.address).set(replica.outstanding - 1)
        round_trip_ms += 1000 * (time.perf_counter() - sent)  # type: ignore[operator]
        metrics.step_latency.labels(step).observe(round_trip_ms / 1000)
        return StepCall(decode_outputs(response), read_parameters(response.parameters), round_trip_ms,
                        replica.address)
