"""The generator's gRPC client: prebuilt request bytes out, response bytes in, parsed after the run.

Why bytes: the client's own cost per request lands in every latency it measures. Each request
is serialized once per image when the run starts, and responses are parsed only after the last
one came back, so the timed path of a request is the gRPC call and two clock reads.

A request that fails with UNAVAILABLE (the gateway restarting, a connection reset) is sent again
after a short backoff while its deadline allows, as a production client does: inference is
idempotent. Its latency then counts from the first send, and its row says how many `attempts` it
took; one that runs out of time is reported with the last error, never dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import grpc
import numpy as np

from ..errors import LoadGenError
from ..serving.protocol import grpc_channel_options, service_pb2

__all__ = ["MODEL_INFER", "LoadClient", "make_request", "parse_responses", "response_columns"]

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
"""The Open Inference Protocol's inference method (KServe V2 / Triton)."""

_RESPONSE = "_response"  # a row's raw response bytes until `parse_responses`
_RETRY_FIRST_S, _RETRY_MAX_S = 0.02, 0.25  # backoff between attempts: doubles from the first to the cap
# Reconnect soon after a restarted server is back (gRPC's default waits 1 s, then 1.6 s, ...).
_RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]


def make_request(image: np.ndarray, *, model: str = "pipeline", input_name: str = "IMAGE") -> Any:
    """An OIP ModelInferRequest carrying one uint8 image as a [1, H, W, 3] tensor."""
    array = np.ascontiguousarray(image, dtype=np.uint8)
    if array.ndim == 3:
        array = array[None]
    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = input_name, "UINT8"
    tensor.shape.extend(array.shape)
    request.raw_input_contents.append(array.tobytes())
    return request


def response_columns(raw: bytes) -> dict[str, float | str]:
    """A response's parameters as columns (numbers as float, e.g. timings in ms; strings as is) and its
    first output's row count (`outputs_rows`)."""
    response = service_pb2.ModelInferResponse.FromString(raw)
    out: dict[str, float | str] = {}
    for key, param in response.parameters.items():
        kind = param.WhichOneof("parameter_choice")
        if kind in ("double_param", "int64_param", "uint64_param"):
            out[key] = float(getattr(param, kind))
        elif kind == "string_param":
            out[key] = param.string_param
    if len(response.outputs):
        out["outputs_rows"] = int(response.outputs[0].shape[0]) if response.outputs[0].shape else 0
    return out


def parse_responses(rows: list[dict[str, Any]]) -> bytes | None:
    """Move each row's response bytes into its columns; the first ok response's bytes (None if none was ok)."""
    first = None
    for row in rows:
        raw = row.pop(_RESPONSE, None)
        if raw is not None:
            first = raw if first is None else first
            row.update(response_columns(raw))
    return first


class LoadClient:
    """One grpc.aio channel to `target` sending `payloads[number % len(payloads)]` as request `number`.

    `retry_unavailable`: send a request that failed with UNAVAILABLE again within its deadline.
    """

    def __init__(self, target: str, payloads: Sequence[bytes], *, retry_unavailable: bool = True) -> None:
        if not len(payloads):
            raise LoadGenError("no images to send; pass a non-empty list of uint8 (H, W, 3) arrays")
        self.target = target
        self.payloads = list(payloads)
        self.retry_unavailable = retry_unavailable
        self.channel = grpc.aio.insecure_channel(target, options=grpc_channel_options() + _RECONNECT_OPTIONS)
        # No (de)serializers: the call takes and returns bytes.
        self._infer = self.channel.unary_unary(MODEL_INFER)

    @classmethod
    def for_images(cls, target: str, images: Sequence[np.ndarray], *, model: str, input_name: str,
                   retry_unavailable: bool = True) -> LoadClient:
        if not len(images):
            raise LoadGenError("no images to send; pass a non-empty list of uint8 (H, W, 3) arrays")
        return cls(target, [make_request(i, model=model, input_name=input_name).SerializeToString() for i in images],
                   retry_unavailable=retry_unavailable)

    async def send(self, number: int, row: dict[str, Any], timeout_s: float, t0: float) -> None:
        """Send request `number`, filling `row`; never raises but on cancellation (every outcome is a status)."""
        payload = self.payloads[number % len(self.payloads)]
        start = time.perf_counter()
        row["send_s"] = start - t0
        row["attempts"] = 0
        deadline, backoff = start + timeout_s, _RETRY_FIRST_S
        try:
            while True:
                row["attempts"] += 1
                try:
                    # A retry waits for the channel to reconnect (up to the deadline) instead of failing fast.
                    raw = await self._infer(payload, timeout=max(deadline - time.perf_counter(), 1e-3),
                                            wait_for_ready=row["attempts"] > 1)
                except grpc.aio.AioRpcError as exc:
                    code = exc.code()
                    if (self.retry_unavailable and code == grpc.StatusCode.UNAVAILABLE
                            and deadline - time.perf_counter() > backoff):
                        await asyncio.sleep(backoff)
                        backoff = min(2 * backoff, _RETRY_MAX_S)
                        continue
                    row["latency_ms"] = (time.perf_counter() - start) * 1e3
                    row["code"] = code.name
                    row["status"] = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "failed"
                    row["error"] = (exc.details() or "")[:300]
                    return
                row["latency_ms"] = (time.perf_counter() - start) * 1e3
                row["status"], row["code"], row[_RESPONSE] = "ok", "OK", raw
                return
        except asyncio.CancelledError:
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            row["status"], row["code"], row["error"] = "failed", "CANCELLED", "the load run was cancelled"
            raise
        except Exception as exc:  # noqa: BLE001 - a client-side failure is still an accounted request
            row["latency_ms"] = (time.perf_counter() - start) * 1e3
            row["status"], row["code"], row["error"] = "failed", "CLIENT_ERROR", repr(exc)[:300]

    async def close(self) -> None:
        await self.channel.close()
