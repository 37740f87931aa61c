"""Arrival profiles and the send schedule (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from milestone_lib.errors import LoadGenError, MilestoneError
from milestone_lib.loadgen import ConstantRate, PoissonRate, TraceRate, schedule


def test_constant_schedule_is_evenly_spaced_and_covers_warmup() -> None:
    times = schedule(ConstantRate(20), duration_s=2.0, warmup_s=0.5)
    assert len(times) == 50
    assert np.allclose(np.diff(times), 0.05)
    assert times[0] == 0 and times[-1] < 2.5


def test_poisson_schedule_has_the_mean_rate_and_is_reproducible() -> None:
    times = schedule(PoissonRate(100, seed=3), duration_s=50.0)
    assert abs(len(times) / 50.0 - 100) < 5
    gaps = np.diff(times)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1  # exponential gaps: coefficient of variation 1
    assert np.array_equal(times, schedule(PoissonRate(100, seed=3), duration_s=50.0))
    assert not np.array_equal(times[:50], schedule(PoissonRate(100, seed=4), duration_s=50.0)[:50])


def test_trace_from_csv_sends_each_seconds_rate(tmp_path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("second,rate\n0,5\n1,20\n2,0\n3,10\n")
    trace = TraceRate.from_csv(path)
    times = schedule(trace, duration_s=None, warmup_s=1.0)
    per_second = np.bincount(np.floor(times).astype(int), minlength=5)
    assert per_second.tolist() == [5, 5, 20, 0, 10]  # the warm-up second runs at the first rate


def test_trace_without_rate_column_names_it(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("qps\n5\n")
    with pytest.raises(LoadGenError, match="has no column 'rate'.*pass `column=`"):
        TraceRate.from_csv(path)
    assert TraceRate.from_csv(path, column="qps").rates == (5.0,)


def test_negative_trace_rate_is_refused(tmp_path) -> None:
    path = tmp_path / "neg.csv"
    path.write_text("rate\n5\n-1\n")
    with pytest.raises(MilestoneError, match="non-negative rate"):
        TraceRate.from_csv(path)


def test_a_profile_without_a_duration_is_refused() -> None:
    with pytest.raises(LoadGenError, match=r"duration_s=None is not a positive duration"):
        schedule(ConstantRate(10), duration_s=None)
