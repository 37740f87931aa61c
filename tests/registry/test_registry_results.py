"""Profiling tables and reports in the registry (container images: tests/containers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.errors import ObjectNotFoundError
from milestone_lib.registry import ModelRegistry

pytest_plugins = ["tests.registry_fixtures"]


def test_profiles_and_reports_round_trip(registry: ModelRegistry, tmp_path: Path) -> None:
    table = pd.DataFrame({"variant": ["a", "b"], "p50_ms": [1.5, 2.25], "batch": [1, 4]})
    registry.push_profile(table, name="latency", run="run-1")
    newer = table.assign(p50_ms=[1.0, 2.0])
    registry.push_profile(newer, name="latency", run="run-2")
    pd.testing.assert_frame_equal(registry.pull_profile("latency"), newer)
    pd.testing.assert_frame_equal(registry.pull_profile("latency", run="run-1"), table)
    with pytest.raises(ObjectNotFoundError, match="profiles/<run>/throughput.csv"):
        registry.pull_profile("throughput")

    report = tmp_path / "summary.md"
    report.write_text("# results\n")
    registry.push_report(report, run="run-2")
    got = registry.pull_report("summary.md", tmp_path / "back")
    assert got.path is not None and got.path.read_text() == "# results\n"
    results = registry.list_results()
    assert sorted(zip(results.kind, results.run, results.name)) == [
        ("profiles", "run-1", "latency.csv"), ("profiles", "run-2", "latency.csv"), ("reports", "run-2", "summary.md")]
