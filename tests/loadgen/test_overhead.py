"""The echo server and the generator's own overhead that every load result carries."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from loadgen_helpers import SleepServer, assert_accounted, images

from milestone_lib.loadgen import (
    ConstantRate,
    EchoServer,
    LoadClient,
    make_request,
    run_closed_loop,
    run_open_loop,
)
from milestone_lib.loadgen.overhead import closed_burst
from milestone_lib.serving.protocol import service_pb2


def test_echo_answers_with_the_given_response_bytes() -> None:
    response = service_pb2.ModelInferResponse(model_name="classify")
    response.parameters["server_ms"].double_param = 1.5
    payload = make_request(images(0)[0], model="classify", input_name="CROPS").SerializeToString()

    async def send_two() -> list[dict]:
        client = LoadClient(echo.address, [payload])
        rows: list[dict] = [{}, {}]
        try:
            for number, row in enumerate(rows):
                await client.send(number, row, 5.0, 0.0)
        finally:
            await client.close()
        return rows

    with EchoServer(response.SerializeToString()) as echo:
        assert echo.address.startswith("127.0.0.1:")
        rows = asyncio.run(send_two())
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [r["_response"] for r in rows] == [response.SerializeToString()] * 2
    assert echo.proc.poll() is not None  # stopped on exit


def test_every_result_carries_the_generator_overhead(server: SleepServer) -> None:
    closed = run_closed_loop(server.address, images(0), 2, warmup_s=0.2, window_s=0.3, max_windows=3,
                             overhead_requests=50)
    opened = run_open_loop(server.address, images(0), ConstantRate(20), duration_s=0.5, warmup_s=0.0)
    for result, pace in ((closed, "concurrency 2"), (opened, "20/s")):
        s = result.summary
        assert_accounted(result, received=None)
        assert s["generator_overhead_pace"] == pace and "generator_overhead_error" not in s
        assert 0 < s["generator_overhead_ms"] <= s["generator_overhead_p99_ms"]
        # the echo answers at once; this server sleeps 10 ms on every request
        assert s["generator_overhead_ms"] < s["p50_ms"]
    assert server.servicer.received == closed.summary["sent"] + opened.summary["sent"]  # none to the echo


def test_overhead_off_leaves_no_figure(server: SleepServer) -> None:
    result = run_open_loop(server.address, images(0), ConstantRate(10), duration_s=0.3, warmup_s=0.0,
                           measure_overhead=False)
    assert "generator_overhead_ms" not in result.summary


def test_echo_command_line_says_what_is_wrong_with_its_file(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-m", "milestone_lib.loadgen.echo", "--response", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "error:" in done.stderr and "none" in done.stderr


def test_a_busy_echo_is_a_server_of_known_service_time() -> None:
    payload = make_request(images(0)[0]).SerializeToString()
    with EchoServer(b"", delay_ms=20.0) as echo:
        async def send() -> list[dict]:
            client = LoadClient(echo.address, [payload])
            try:
                return await closed_burst(client, requests=5)
            finally:
                await client.close()

        rows = asyncio.run(send())
    assert [r["status"] for r in rows] == ["ok"] * 5
    assert all(r["latency_ms"] >= 20.0 for r in rows)  # it works 20 ms on each before answering
