"""A tiny real grpc.aio OIP server for the load-generator tests (loopback, free port), and the accounting check.

The server's behaviour is chosen by the first byte of each image: 0 answers after `delay_ms`,
1 fails with UNAVAILABLE, 2 answers after 2 s (beyond the tests' deadlines).
"""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import numpy as np

from milestone_lib.loadgen import LoadResult
from milestone_lib.serving.protocol import service_pb2, service_pb2_grpc

SERVER_DELAY_MS = 10.0


class _SleepServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, delay_ms: float) -> None:
        self.delay_ms = delay_ms
        self.received = 0

    async def ModelInfer(self, request, context):
        self.received += 1
        start = time.perf_counter()
        mode = request.raw_input_contents[0][0]
        if mode == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "replica gone")
        await asyncio.sleep(2.0 if mode == 2 else self.delay_ms / 1e3)
        response = service_pb2.ModelInferResponse(model_name=request.model_name)
        out = response.outputs.add()
        out.name, out.datatype = "DETECTIONS", "FP32"
        out.shape.extend([0, 6])
        response.raw_output_contents.append(b"")
        elapsed = (time.perf_counter() - start) * 1e3
        response.parameters["detect_queue_ms"].double_param = 0.0
        response.parameters["detect_compute_ms"].double_param = elapsed
        response.parameters["total_ms"].double_param = elapsed
        response.parameters["batch_size"].int64_param = 1
        return response


class SleepServer:
    """The servicer in a grpc.aio server on its own thread and event loop."""

    def __init__(self, delay_ms: float = SERVER_DELAY_MS) -> None:
        self.servicer = _SleepServicer(delay_ms)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.address = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        self.server = grpc.aio.server()
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def images(*modes: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), mode, dtype=np.uint8) for mode in modes]


def assert_accounted(result: LoadResult, *, received: int | None = None) -> None:
    """Every request sent is one row and exactly one of ok / failed / timeout, in the totals and per window."""
    df, s = result.requests, result.summary
    assert df["request"].is_unique and len(df) == s["sent"]
    assert set(df["status"]) <= {"ok", "failed", "timeout"}
    assert df["latency_ms"].notna().all() and df["code"].notna().all()
    counts = df["status"].value_counts()
    assert counts.get("ok", 0) + counts.get("failed", 0) + counts.get("timeout", 0) == s["sent"]
    assert s["ok"] + s["failed"] + s["timeouts"] == s["measured"] == int((df["window"] >= 0).sum())
    assert int(result.windows["sent"].sum()) == s["measured"]
    assert (df.loc[df["status"] == "ok", "code"] == "OK").all()
    assert sum(s["errors_by_code"].values()) == s["failed"] + s["timeouts"]
    assert (df["attempts"] >= 1).all() and s["retried"] == int((df.loc[df["window"] >= 0, "attempts"] > 1).sum())
    if received is not None:
        assert received == int(df["attempts"].sum())  # every attempt reached the server, retries included
