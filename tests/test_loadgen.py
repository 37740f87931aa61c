"""The load generator against a tiny real grpc.aio OIP server started in the test (loopback, free port).

The server's behaviour is chosen by the first byte of each image: 0 answers after `delay_ms`,
1 fails with UNAVAILABLE, 2 answers after 2 s (beyond the tests' deadlines).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from milestone_lib import loadgen
from milestone_lib.errors import MilestoneError
from milestone_lib.loadgen import ConstantRate, PoissonRate, TraceRate


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
        response = pb.ModelInferResponse(model_name=request.model_name)
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


class _Server:
    """A grpc.aio server in its own thread and event loop."""

    def __init__(self, delay_ms: float) -> None:
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


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(delay_ms=10)
    try:
        yield srv
    finally:
        srv.stop()


def _images(*modes: int) -> list[np.ndarray]:
    return [np.full((8, 8, 3), mode, dtype=np.uint8) for mode in modes]


def _accounted(result: loadgen.LoadResult) -> None:
    df = result.requests
    assert df["request"].is_unique
    assert set(df["status"]) <= {"ok", "failed", "timeout"}
    assert df["status"].notna().all() and df["latency_ms"].notna().all()


# ---------------------------------------------------------------- schedules (pure)


def test_constant_schedule_is_evenly_spaced_and_covers_warmup() -> None:
    times = loadgen.schedule(ConstantRate(20), duration_s=2.0, warmup_s=0.5)
    assert len(times) == 50
    assert np.allclose(np.diff(times), 0.05)
    assert times[0] == 0 and times[-1] < 2.5


def test_poisson_schedule_has_the_mean_rate_and_is_reproducible() -> None:
    times = loadgen.schedule(PoissonRate(100, seed=3), duration_s=50.0)
    assert abs(len(times) / 50.0 - 100) < 5
    gaps = np.diff(times)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1  # exponential gaps: coefficient of variation 1
    assert np.array_equal(times, loadgen.schedule(PoissonRate(100, seed=3), duration_s=50.0))


def test_trace_from_csv_sends_each_seconds_rate(tmp_path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("second,rate\n0,5\n1,20\n2,0\n3,10\n")
    trace = TraceRate.from_csv(path)
    times = loadgen.schedule(trace, duration_s=None, warmup_s=1.0)
    per_second = np.bincount(np.floor(times).astype(int), minlength=5)
    assert per_second.tolist() == [5, 5, 20, 0, 10]  # the warm-up second runs at the first rate


def test_trace_without_rate_column_names_it(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("qps\n5\n")
    with pytest.raises(MilestoneError, match="has no column 'rate'"):
        TraceRate.from_csv(path)


def test_stability_rule() -> None:
    assert loadgen.is_stable([50, 100, 101, 99])
    assert not loadgen.is_stable([100, 100, 125])
    assert not loadgen.is_stable([100, 100])  # fewer than three windows
    assert loadgen.is_stable([100, 109, 100], tolerance=0.1)
    assert not loadgen.is_stable([100, float("nan"), 100])


# ---------------------------------------------------------------- against the real server


def test_open_loop_accounts_every_request_and_keeps_the_rate(server: _Server) -> None:
    result = loadgen.run_open_loop(server.address, _images(0), ConstantRate(40), duration_s=2.0, warmup_s=0.5,
                                   window_s=0.5, timeout_s=1.0, sla_ms=1000)
    df, s = result.requests, result.summary
    _accounted(result)
    assert len(df) == 100 == server.servicer.received
    assert s["ok"] == s["measured"] == 80 and s["failed"] == s["timeouts"] == 0
    assert (df[df.phase == "warmup"]["scheduled_s"] < 0.5).all()
    assert abs(s["offered_rps"] - 40) < 1e-9
    assert s["max_send_lag_ms"] < 200  # generous: the test machine's two cores are shared
    assert 9 <= s["p50_ms"] < 200  # the server sleeps 10 ms
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert s["goodput_rps"] == s["throughput_rps"] == 40
    assert {"detect_compute_ms", "total_ms", "batch_size"} <= set(df.columns)
    assert (df["total_ms"] <= df["latency_ms"]).all()
    assert len(result.windows) == 4


def test_failures_and_timeouts_are_counted_by_code(server: _Server) -> None:
    images = _images(0, 1, 2, 0)  # requests cycle: ok, UNAVAILABLE, past the deadline, ok
    result = loadgen.run_open_loop(server.address, images, ConstantRate(20), duration_s=1.0, warmup_s=0.0,
                                   window_s=0.5, timeout_s=0.3, sla_ms=100)
    df, s = result.requests, result.summary
    _accounted(result)
    assert len(df) == 20
    assert s["ok"] == 10 and s["failed"] == 5 and s["timeouts"] == 5
    assert s["errors_by_code"] == {"UNAVAILABLE": 5, "DEADLINE_EXCEEDED": 5}
    timed_out = df[df.status == "timeout"]["latency_ms"]
    assert ((timed_out > 250) & (timed_out < 1000)).all()  # the client's 0.3 s deadline, not the 2 s sleep
    assert s["sla_attainment"] == 0.5


def test_goodput_counts_only_answers_within_the_sla(server: _Server) -> None:
    result = loadgen.run_open_loop(server.address, _images(0), ConstantRate(20), duration_s=1.0, warmup_s=0.0,
                                   timeout_s=1.0, sla_ms=1.0)  # nothing answers within 1 ms
    assert result.summary["ok"] == 20 and result.summary["goodput_rps"] == 0


def test_unreachable_target_is_accounted_as_failed() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = loadgen.run_open_loop(f"127.0.0.1:{port}", _images(0), ConstantRate(10), duration_s=0.5,
                                   warmup_s=0.0, timeout_s=0.5)
    assert len(result.requests) == 5
    assert set(result.requests["status"]) <= {"failed", "timeout"} and result.summary["ok"] == 0


def test_closed_loop_reaches_a_stable_result_and_sweeps(server: _Server) -> None:
    # 25% rather than perf_analyzer's 10%: the test shares two CPU cores with whatever else runs
    sweep = loadgen.sweep_concurrency(server.address, _images(0), [1, 4], warmup_s=0.3, window_s=0.5,
                                      max_windows=12, timeout_s=1.0, tolerance=0.25)
    table = sweep.table.set_index("concurrency")
    assert table["stable"].all(), sweep.table
    assert (table["windows"] >= 3).all()
    assert (table["failed"] == 0).all() and (table["timeouts"] == 0).all()
    # a 10 ms server: at most 1 / 10 ms per worker; four workers give well over twice the throughput
    assert 20 < table.loc[1, "throughput_rps"] <= 100
    assert table.loc[4, "throughput_rps"] > 2 * table.loc[1, "throughput_rps"]
    for result in sweep.results.values():
        _accounted(result)
        windows = result.windows
        assert result.stable == (loadgen.is_stable(windows["throughput_rps"].tolist(), tolerance=0.25)
                                 and loadgen.is_stable(windows["mean_ms"].tolist(), tolerance=0.25))
        assert result.summary["sent"] == len(result.requests)
        assert set(result.requests["phase"]) <= {"warmup", "measure", "cooldown"}
    assert server.servicer.received == len(sweep.requests)


def test_run_open_loop_works_inside_a_running_event_loop(server: _Server) -> None:
    async def main() -> loadgen.LoadResult:  # as in a Jupyter cell, where a loop already runs
        return loadgen.run_open_loop(server.address, _images(0), ConstantRate(10), duration_s=0.5, warmup_s=0)

    assert asyncio.run(main()).summary["ok"] == 5
