"""The sweep's tables reach a real registry's results store, and a missing registry is a visible skip."""

from __future__ import annotations

import pandas as pd
from profiling_helpers import synthetic_profiles

from milestone_lib.profiling import push_results
from milestone_lib.registry.client import ModelRegistry

pytest_plugins = ["tests.registry_fixtures"]


def test_tables_are_pushed_and_read_back(registry: ModelRegistry) -> None:
    table = synthetic_profiles()
    note = push_results({"04_service_profiles": table}, run="04-test", registry=registry)
    assert note.startswith("pushed 1 tables")
    back = registry.pull_profile("04_service_profiles", run="04-test")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_an_unreachable_registry_is_skipped_with_a_note(registry: ModelRegistry) -> None:
    unreachable = ModelRegistry(registry.settings.model_copy(update={"endpoint": "http://127.0.0.1:9"}))
    note = push_results({"x": pd.DataFrame({"a": [1]})}, run="04-test", registry=unreachable)
    assert note.startswith("registry push skipped") and "127.0.0.1:9" in note
