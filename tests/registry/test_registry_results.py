"""Container images, profiling tables and reports in the registry."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.contracts import sha256_file
from milestone_lib.errors import ChecksumMismatchError, ObjectNotFoundError
from milestone_lib.registry import ModelRegistry

pytest_plugins = ["tests.registry_fixtures"]


def test_images_push_pull_list_and_tamper(registry: ModelRegistry, tmp_path: Path) -> None:
    tarball = tmp_path / "step-server.tar"
    tarball.write_bytes(os.urandom(500_000))
    stored = registry.push_image(tarball)
    assert stored.key == "step-server.tar" and stored.sha256 == sha256_file(tarball)
    pulled = registry.pull_image("step-server.tar", tmp_path / "out")
    assert pulled.path is not None and pulled.path.read_bytes() == tarball.read_bytes()
    table = registry.list_images()
    assert list(table.key) == ["step-server.tar"] and table.sha256.iloc[0] == stored.sha256

    evil = b"evil"
    registry._client.put_object(registry.settings.images_bucket, "step-server.tar", io.BytesIO(evil), len(evil),
                                metadata={"sha256": stored.sha256})
    with pytest.raises(ChecksumMismatchError, match="step-server.tar"):
        registry.pull_image("step-server.tar", tmp_path / "out")
    assert pulled.path.read_bytes() == tarball.read_bytes(), "the earlier pull stays intact"
    with pytest.raises(ObjectNotFoundError, match="'other.tar' is not in bucket 'images-.*push_image"):
        registry.pull_image("other.tar", tmp_path / "out")


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
