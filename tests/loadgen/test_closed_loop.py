"""The closed loop and the concurrency sweep against a real grpc.aio OIP server on loopback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from loadgen_helpers import SERVER_DELAY_MS, SleepServer, assert_accounted, images

from milestone_lib.errors import LoadGenError
from milestone_lib.loadgen import run_closed_loop, sweep_concurrency
from milestone_lib.loadgen.stats import windows_stable


def _most_in_flight(requests: pd.DataFrame) -> int:
    """The largest number of requests in flight at once, from send times and latencies."""
    start = requests["send_s"].to_numpy()
    end = start + requests["latency_ms"].to_numpy() / 1e3
    events = sorted([(t, 1) for t in start] + [(t, -1) for t in end], key=lambda e: (e[0], e[1]))
    return int(np.max(np.cumsum([delta for _, delta in events])))


def test_sweep_runs_each_level_with_that_many_in_flight(server: SleepServer) -> None:
    sweep = sweep_concurrency(server.address, images(0), [1, 4], warmup_s=0.3, window_s=0.5, max_windows=6,
                              timeout_s=1.0, tolerance=0.25, measure_overhead=False)
    table = sweep.table.set_index("concurrency")
    assert (table["windows"] >= 3).all() and (table["windows"] <= 6).all()
    assert (table["failed"] == 0).all() and (table["timeouts"] == 0).all()
    # a 10 ms server: at most 100 answers per second per worker
    assert (table["throughput_rps"] <= table.index * 1000 / SERVER_DELAY_MS).all()
    for concurrency, result in sweep.results.items():
        assert_accounted(result)
        assert _most_in_flight(result.requests) == concurrency
        assert result.stable == windows_stable(result.windows, 0.25)
        assert result.stable or result.summary["windows"] == 6  # it stops early only when stable
        assert set(result.requests["phase"]) <= {"warmup", "measure", "cooldown"}
        assert (result.requests.loc[result.requests["phase"] == "cooldown", "window"] == -2).all()
        assert result.summary["mode"] == "closed" and result.summary["concurrency"] == concurrency
    assert server.servicer.received == len(sweep.requests) == sweep.table["sent"].sum()


def test_closed_loop_needs_a_worker(server: SleepServer) -> None:
    with pytest.raises(LoadGenError, match="concurrency 0 must be at least 1"):
        run_closed_loop(server.address, images(0), 0)
