"""The registry tests import helpers from tests/registry_fixtures.py: let pytest rewrite their asserts."""

import pytest

pytest.register_assert_rewrite("tests.registry_fixtures")
