"""Per-step breakdown tables on a requests frame shaped like `LoadResult.requests`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from milestone_lib.errors import MilestoneError
from milestone_lib.report import breakdown as lr
from milestone_lib.report import plot_step_breakdown, save_figure, write_table


def _requests(n: int = 50, detect_compute: float = 20.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "request": range(n), "window": [0] * n, "status": ["ok"] * n, "code": ["OK"] * n,
        "detect_queue_ms": rng.uniform(1, 3, n), "detect_compute_ms": rng.uniform(0.9, 1.1, n) * detect_compute,
        "detect_network_ms": rng.uniform(0.5, 1, n), "classify_queue_ms": rng.uniform(0, 1, n),
        "classify_compute_ms": rng.uniform(4, 6, n), "classify_network_ms": rng.uniform(0.5, 1, n),
        "gateway_ms": rng.uniform(1, 2, n),
    })
    frame["total_ms"] = frame[lr.step_columns()].sum(axis=1) + 0.1
    frame["latency_ms"] = frame["total_ms"] + 1.5
    warmup = frame.iloc[:5].assign(window=-1, latency_ms=1000.0)
    failed = frame.iloc[:3].assign(status="failed", code="UNAVAILABLE", latency_ms=1.0)
    return pd.concat([frame, warmup, failed], ignore_index=True)


def test_breakdown_adds_up_to_the_mean_latency_and_names_the_slowest_step() -> None:
    requests = _requests()
    table = lr.step_breakdown(requests)
    assert list(table.index) == ["client", "gateway", "detect", "classify"]
    measured_ok = requests[(requests.status == "ok") & (requests.window >= 0)]
    assert table["total_ms"].sum() == pytest.approx(measured_ok["latency_ms"].mean(), abs=0.11)
    assert table["share"].sum() == pytest.approx(1.0, abs=0.01)
    assert table.loc["client", "network_ms"] == pytest.approx(1.5)
    assert lr.slowest_step(table) == "detect"
    assert lr.slowest_step(lr.step_breakdown(_requests(detect_compute=1.0))) == "classify"
    gaps = lr.timing_residuals(requests)
    assert np.allclose(gaps["parts_gap_ms"], 0.1) and np.allclose(gaps["client_ms"], 1.5)


def test_breakdown_without_gateway_timings_says_where_to_send_load() -> None:
    requests = _requests().drop(columns=["gateway_ms"])
    with pytest.raises(MilestoneError, match="send the load to the pipeline gateway"):
        lr.step_breakdown(requests)


def test_compare_runs_and_outputs(tmp_path) -> None:
    before, after = lr.step_breakdown(_requests()), lr.step_breakdown(_requests(detect_compute=10.0))
    summary = {"p50_ms": 30.0, "p99_ms": 40.0, "throughput_rps": 10.0, "failed": 0}
    table = lr.compare_runs({"before": (summary, before), "after": (dict(summary, p50_ms=15.0), after)})
    assert list(table.columns) == ["before", "after", "change"]
    assert table.loc["p50_ms", "change"] == pytest.approx(-0.5)
    assert table.loc["detect_mean_ms", "after"] < table.loc["detect_mean_ms", "before"]
    paths = write_table(table, "compare", reports_dir=tmp_path)
    assert "| metric" in paths["md"].read_text() and paths["csv"].exists()
    figure = plot_step_breakdown({"before": before, "after": after}, title="t")
    png = save_figure(figure, "breakdown", reports_dir=tmp_path)
    assert png.stat().st_size > 1000
