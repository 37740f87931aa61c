"""Fixtures of the deployment tests: a backend that always stops, and images to send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import assert_no_process_left

from milestone_lib.deploy import LocalBackend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    """A LocalBackend whose processes are stopped (and checked gone) even when the test fails."""
    instance = LocalBackend(workdir=tmp_path / "deploy", startup_timeout_s=120)
    try:
        yield instance
    finally:
        pids = instance.pids()
        instance.teardown()
        assert_no_process_left(pids)


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(128, 160, 3), dtype=np.uint8) for _ in range(4)]
