"""The open loop against a real grpc.aio OIP server on loopback."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from loadgen_helpers import SERVER_DELAY_MS, SleepServer, assert_accounted, images

from milestone_lib.errors import LoadGenError
from milestone_lib.loadgen import ConstantRate, LoadOptions, LoadResult, run_open_loop


def test_open_loop_accounts_every_request_on_schedule(server: SleepServer) -> None:
    result = run_open_loop(server.address, images(0), ConstantRate(40), duration_s=2.0, warmup_s=0.5,
                           window_s=0.5, timeout_s=1.0, sla_ms=1000, measure_overhead=False)
    df, s = result.requests, result.summary
    assert_accounted(result, received=server.servicer.received)
    assert len(df) == 100 and s["ok"] == s["measured"] == 80
    assert (df[df.phase == "warmup"]["scheduled_s"] < 0.5).all()
    assert s["offered_rps"] == s["asked_rps"] == 40
    assert (df["send_lag_ms"] >= 0).all()  # nothing leaves before its time
    assert df["send_s"].is_monotonic_increasing and df["scheduled_s"].is_monotonic_increasing
    assert s["send_lag_p50_ms"] <= s["send_lag_p99_ms"] <= s["max_send_lag_ms"]
    assert s["schedule_kept"] == (s["send_lag_p99_ms"] <= 10.0 and s["achieved_rps"] >= 0.95 * 40)
    assert (df["latency_ms"] >= SERVER_DELAY_MS).all()  # the server sleeps that long on each
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert s["goodput_rps"] == s["throughput_rps"] == 40
    assert {"detect_compute_ms", "total_ms", "batch_size", "outputs_rows"} <= set(df.columns)
    assert (df["total_ms"] <= df["latency_ms"]).all()
    assert len(result.windows) == 4 and result.windows["sent"].tolist() == [20] * 4


def test_failures_and_timeouts_are_counted_by_code(server: SleepServer) -> None:
    sent = images(0, 1, 2, 0)  # requests cycle: ok, UNAVAILABLE, past the deadline, ok
    result = run_open_loop(server.address, sent, ConstantRate(20), duration_s=1.0, warmup_s=0.0, window_s=0.5,
                           timeout_s=0.3, sla_ms=100, measure_overhead=False)
    df, s = result.requests, result.summary
    assert_accounted(result, received=server.servicer.received)
    assert s["ok"] == 10 and s["failed"] == 5 and s["timeouts"] == 5
    assert s["errors_by_code"] == {"UNAVAILABLE": 5, "DEADLINE_EXCEEDED": 5}
    failed = df[df.status == "failed"]
    assert (failed["error"] == "replica gone").all()
    assert (failed["attempts"] > 1).all() and (failed["latency_ms"] < 300).all()  # retried until the deadline was near
    assert (df[df.status != "failed"]["attempts"] == 1).all()
    timed_out = df[df.status == "timeout"]["latency_ms"]
    assert ((timed_out >= 290) & (timed_out < 2000)).all()  # the client's 0.3 s deadline, not the 2 s sleep
    # Only the ok half can meet the SLA; which of them did is this machine's timing, the rule is not.
    within = ((df["status"] == "ok") & (df["latency_ms"] <= 100)).sum()
    assert s["sla_attainment"] == within / s["measured"] <= 0.5


def test_unavailable_is_not_retried_when_asked_not_to(server: SleepServer) -> None:
    result = run_open_loop(server.address, images(1), ConstantRate(20), duration_s=0.5, warmup_s=0.0,
                           timeout_s=1.0, retry_unavailable=False, measure_overhead=False)
    assert_accounted(result, received=server.servicer.received)
    assert (result.requests["attempts"] == 1).all() and result.summary["errors_by_code"] == {"UNAVAILABLE": 10}


def test_goodput_counts_only_answers_within_the_sla(server: SleepServer) -> None:
    result = run_open_loop(server.address, images(0), ConstantRate(20), duration_s=1.0, warmup_s=0.0,
                           timeout_s=1.0, sla_ms=1.0, measure_overhead=False)  # nothing answers within 1 ms
    assert result.summary["ok"] == 20 and result.summary["goodput_rps"] == 0


def test_unreachable_target_is_accounted_as_failed() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_open_loop(f"127.0.0.1:{port}", images(0), ConstantRate(10), duration_s=0.5, warmup_s=0.0,
                           timeout_s=0.5, measure_overhead=False)
    assert_accounted(result)
    assert len(result.requests) == 5 and result.summary["ok"] == 0
    assert set(result.requests["code"]) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


def test_a_generator_that_falls_behind_flags_its_run(server: SleepServer) -> None:
    # on_start blocks the event loop for 0.3 s: the first six requests leave that much late
    result = run_open_loop(server.address, images(0), ConstantRate(20), duration_s=1.0, warmup_s=0.0,
                           on_start=lambda: time.sleep(0.3), measure_overhead=False)
    s = result.summary
    assert_accounted(result, received=server.servicer.received)
    assert s["max_send_lag_ms"] >= 250 and s["send_lag_p99_ms"] > s["max_lag_p99_ms"]
    assert s["schedule_kept"] is False and "send lag p99" in s["schedule_warning"]


def test_options_object_and_keywords_agree_and_unknown_ones_are_named(server: SleepServer) -> None:
    opts = LoadOptions(warmup_s=0.0, timeout_s=1.0, measure_overhead=False)
    result = run_open_loop(server.address, images(0), ConstantRate(10), duration_s=0.5, options=opts,
                           window_s=0.25)
    assert result.summary["warmup_s"] == 0.0 and len(result.windows) == 2
    with pytest.raises(LoadGenError, match=r"unknown load option\(s\) warmup; the options are .*warmup_s"):
        run_open_loop(server.address, images(0), ConstantRate(10), duration_s=0.5, warmup=1.0)


def test_run_open_loop_works_inside_a_running_event_loop(server: SleepServer) -> None:
    async def main() -> LoadResult:  # as in a Jupyter cell, where a loop already runs
        return run_open_loop(server.address, images(0), ConstantRate(10), duration_s=0.5, warmup_s=0,
                             measure_overhead=False)

    assert asyncio.run(main()).summary["ok"] == 5
