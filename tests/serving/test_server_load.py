"""Step server under pressure, as a real subprocess: deadlines in the queue, overload, graceful stop.

Checked by order and accounting (what was computed, refused, answered before what), never by
wall-clock thresholds.
"""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import numpy as np
import pytest
from serving_helpers import free_port, scrape, spawn, step_server_args, stub_for

from milestone_lib.serving.protocol import (
    decode_outputs,
    grpc_channel_options,
    make_infer_request,
    read_parameters,
    service_pb2_grpc,
)

pytestmark = pytest.mark.slow
SERVER = "milestone_lib.serving.server"


def test_a_request_whose_deadline_passes_while_queued_is_dropped_and_not_computed(serving_variants, tmp_path):
    metrics_port = free_port()
    # A lone request waits the whole 600 ms queue delay: long past the first caller's 150 ms deadline.
    args = step_server_args(serving_variants["tiny-classify"], max_batch_size=8, max_queue_delay_ms=600,
                            metrics_port=metrics_port)
    crops = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    with spawn(SERVER, args, tmp_path) as server:
        channel, stub = stub_for(server.address)
        with channel:
            stub.ModelInfer(make_infer_request("classify", {"CROPS": crops}), timeout=10)  # warm-up
            late = stub.ModelInfer.future(make_infer_request("classify", {"CROPS": crops}), timeout=0.15)
            time.sleep(0.05)
            patient = stub.ModelInfer.future(make_infer_request("classify", {"CROPS": crops}), timeout=10)
            with pytest.raises(grpc.RpcError) as info:
                late.result()
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            params = read_parameters(patient.result().parameters)
        assert params["batch_size"] == 1, "the expired request must not have been computed with the other"
        time.sleep(0.2)
        values = scrape(metrics_port)
        model = "tiny-classify-onnx-fp32"
        assert values[f'milestone_step_computed_requests_total{{model="{model}"}}'] == 2  # warm-up + patient
        assert values[f'milestone_step_requests_total{{model="{model}",status="deadline_exceeded"}}'] == 1


async def _open_loop(address: str, crops: np.ndarray, rate: float, duration: float) -> list[tuple[str, int, int, dict]]:
    """Send at `rate` per second for `duration` s, not waiting for answers.

    One row per request: (status, index in sending order, index in answering order, parameters).
    """
    results: list[tuple[str, int, int, dict]] = []
    async with grpc.aio.insecure_channel(address, options=grpc_channel_options()) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = make_infer_request("classify", {"CROPS": crops})
        await stub.ModelInfer(request, timeout=10)  # connect first: a new channel's set-up is not queueing

        async def one(sent: int) -> None:
            try:
                response = await stub.ModelInfer(request, timeout=10)
                results.append(("OK", sent, len(results), read_parameters(response.parameters)))
            except grpc.aio.AioRpcError as exc:
                results.append((exc.code().name, sent, len(results), {}))

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * duration)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i)))
        await asyncio.gather(*tasks)
    return results


async def _closed_loop(address: str, crops: np.ndarray, clients: int, duration: float) -> float:
    """Requests per second that `clients` back-to-back callers get."""
    done = 0
    async with grpc.aio.insecure_channel(address, options=grpc_channel_options()) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = make_infer_request("classify", {"CROPS": crops})
        end = time.perf_counter() + duration

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await stub.ModelInfer(request, timeout=10)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        return done / (time.perf_counter() - start)


def test_at_three_times_capacity_the_queue_stays_bounded_and_excess_is_refused_fast(serving_variants, tmp_path):
    batch, queue = 4, 8
    metrics_port = free_port()
    args = step_server_args(serving_variants["slow-classify"], max_batch_size=batch, max_queue_delay_ms=2,
                            max_queue_size=queue, metrics_port=metrics_port)
    crops = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    with spawn(SERVER, args, tmp_path) as server:
        capacity = asyncio.run(_closed_loop(server.address, crops, clients=batch * 2, duration=2.0))
        results = asyncio.run(_open_loop(server.address, crops, rate=3 * capacity, duration=2.0))
        values = scrape(metrics_port)

    ok = [r for r in results if r[0] == "OK"]
    refused = [r for r in results if r[0] == "RESOURCE_EXHAUSTED"]
    assert len(ok) + len(refused) == len(results), {r[0] for r in results}
    # Two thirds of the offered load cannot be served: some of it must be refused, not queued,
    # and the step keeps serving while it refuses.
    assert refused and len(ok) >= 10, (len(ok), len(refused), capacity)
    # Refused at once, not after waiting its turn: each refusal is answered before some request
    # that was accepted earlier (still queued behind the full queue).
    for status, sent, answered, _ in refused:
        assert any(o_sent < sent and o_answered > answered for _, o_sent, o_answered, _ in ok), (sent, answered)
    # Bounded queue: when a request was accepted, at most queue + batch accepted requests sent
    # before it were still unanswered (waiting or being computed), whatever the offered rate.
    for _, sent, answered, _ in ok:
        ahead = sum(1 for _, o_sent, o_answered, _ in ok if o_sent < sent and o_answered > answered)
        assert ahead <= queue + batch, (sent, ahead)
    model = "slow-classify-onnx-fp32"
    assert values[f'milestone_step_dropped_total{{model="{model}",reason="queue_full"}}'] == len(refused)
    assert values[f'milestone_step_batch_size_bucket{{le="4.0",model="{model}"}}'] == \
        values[f'milestone_step_batch_size_count{{model="{model}"}}']


def test_sigterm_finishes_the_request_in_flight_then_exits_0(serving_variants, tmp_path):
    args = step_server_args(serving_variants["tiny-classify"], max_queue_delay_ms=400)
    crops = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    with spawn(SERVER, args, tmp_path) as server:
        channel, stub = stub_for(server.address)
        with channel:
            pending = stub.ModelInfer.future(make_infer_request("classify", {"CROPS": crops}), timeout=10)
            time.sleep(0.1)
            server.proc.send_signal(signal.SIGTERM)
            response = pending.result()
            assert decode_outputs(response)["PROBABILITIES"].shape[0] == 2
        assert server.proc.wait(10) == 0
