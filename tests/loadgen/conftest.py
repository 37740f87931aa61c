"""Fixtures of the load-generator tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loadgen_helpers import SleepServer


@pytest.fixture
def server() -> Iterator[SleepServer]:
    srv = SleepServer()
    try:
        yield srv
    finally:
        srv.stop()
