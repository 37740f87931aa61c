"""Statistics of a run on frames built by hand (pure): stability, summary, goodput, errors, the schedule check."""

from __future__ import annotations

import math

import pandas as pd

from milestone_lib.loadgen import is_stable, schedule_check, summarize, window_metrics


def _frame(statuses: list[str], latencies: list[float], *, windows: list[int] | None = None,
           lags: list[float] | None = None, send_s: list[float] | None = None) -> pd.DataFrame:
    n = len(statuses)
    codes = {"ok": "OK", "failed": "UNAVAILABLE", "timeout": "DEADLINE_EXCEEDED"}
    return pd.DataFrame({"request": range(n), "window": windows or [0] * n, "status": statuses,
                         "code": [codes[s] for s in statuses], "latency_ms": latencies,
                         "send_lag_ms": lags or [0.0] * n, "send_s": send_s or [0.1 * i for i in range(n)]})


def test_stability_rule() -> None:
    assert is_stable([50, 100, 101, 99])
    assert not is_stable([100, 100, 125])
    assert not is_stable([100, 100])  # fewer than three windows
    assert is_stable([100, 109, 100], tolerance=0.1)
    assert not is_stable([100, float("nan"), 100])
    assert is_stable([0, 0, 0]) and not is_stable([0, 0, 1])


def test_summary_counts_goodput_within_the_sla_and_errors_by_code() -> None:
    df = _frame(["ok", "ok", "ok", "failed", "timeout", "ok"], [10, 20, 300, 5, 1000, 40],
                windows=[-1, 0, 0, 0, 1, 1])
    s = summarize(df, duration_s=2.0, sla_ms=50, windows=window_metrics(df, window_s=1.0))
    assert s["sent"] == 6 and s["measured"] == 5  # the warm-up row is sent, not measured
    assert (s["ok"], s["failed"], s["timeouts"]) == (3, 1, 1)
    assert s["errors_by_code"] == {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1}
    assert s["throughput_rps"] == 1.5 and s["goodput_rps"] == 1.0  # 20 and 40 ms within 50 ms; 300 is not
    assert s["sla_attainment"] == 2 / 5
    assert s["p50_ms"] == 40 and s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= 300
    assert s["windows"] == 2 and s["stable"] is False


def test_summary_without_answers_has_nan_latency() -> None:
    s = summarize(_frame(["failed", "failed"], [1, 2]), duration_s=1.0)
    assert s["ok"] == 0 and math.isnan(s["p50_ms"]) and s["goodput_rps"] == 0


def test_schedule_check_flags_send_lag_above_the_bound() -> None:
    kept = schedule_check(_frame(["ok"] * 10, [1] * 10, lags=[0.5] * 10), duration_s=1.0, warmup_s=0.0,
                          max_lag_p99_ms=10, max_rate_shortfall=0.05)
    assert kept["schedule_kept"] and kept["schedule_warning"] is None and kept["achieved_rps"] == 10
    late = schedule_check(_frame(["ok"] * 10, [1] * 10, lags=[0.5] * 9 + [50.0]), duration_s=1.0, warmup_s=0.0,
                          max_lag_p99_ms=10, max_rate_shortfall=0.05)
    assert not late["schedule_kept"] and "send lag p99" in late["schedule_warning"]


def test_schedule_check_flags_an_achieved_rate_below_the_asked_one() -> None:
    # 10 requests asked in 1 s, but the last one left at 1.5 s: 6.7 requests/s achieved
    df = _frame(["ok"] * 10, [1] * 10, send_s=[0.15 * i + 0.15 for i in range(10)])
    figures = schedule_check(df, duration_s=1.0, warmup_s=0.0, max_lag_p99_ms=1e9, max_rate_shortfall=0.05)
    assert figures["asked_rps"] == 10 and abs(figures["achieved_rps"] - 10 / 1.5) < 1e-9
    assert not figures["schedule_kept"] and "achieved 6.7 requests/s of the 10.0 asked" in figures["schedule_warning"]
