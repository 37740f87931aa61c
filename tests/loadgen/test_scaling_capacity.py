"""Notebook 03's capacity: what a real closed loop on loopback answered, and no capacity from a dead server."""

from __future__ import annotations

import pytest
from loadgen_helpers import SERVER_DELAY_MS, SleepServer, images

from milestone_lib.errors import MilestoneError
from milestone_lib.loadgen import run_closed_loop
from milestone_lib.report import capacity_rps, overload_rate


def test_capacity_is_what_the_closed_loop_answered_and_the_overload_lies_above_it(server: SleepServer) -> None:
    result = run_closed_loop(server.address, images(0), 2, warmup_s=0.3, window_s=0.5, max_windows=4,
                             timeout_s=1.0, tolerance=0.5, measure_overhead=False)
    capacity = capacity_rps(result.summary)
    assert capacity == result.summary["throughput_rps"] == result.summary["ok"] / result.summary["duration_s"]
    # two workers against a 10 ms server: at most 200 answers a second, and well above a quarter of that
    assert 50 < capacity <= 2 * 1000 / SERVER_DELAY_MS
    assert overload_rate(capacity, overload=1.5) == pytest.approx(1.5 * capacity, abs=0.05)


def test_no_capacity_from_a_server_that_answers_nothing(server: SleepServer) -> None:
    result = run_closed_loop(server.address, images(1), 1, warmup_s=0.2, window_s=0.3, min_windows=1, max_windows=1,
                             timeout_s=0.5, retry_unavailable=False, measure_overhead=False)
    with pytest.raises(MilestoneError, match="answered no request.*UNAVAILABLE"):
        capacity_rps(result.summary)
