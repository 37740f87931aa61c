"""SlaSpec: the split rule and the refusals."""

from __future__ import annotations

import pytest

from milestone_lib.errors import ProfilingError
from milestone_lib.profiling import SlaSpec


def test_budgets_plus_reserve_make_the_sla() -> None:
    sla = SlaSpec(latency_ms=500, gateway_reserve_ms=50)
    budgets = sla.step_budgets()
    assert sum(budgets.values()) + 50 == pytest.approx(500)
    assert budgets["detect"] > budgets["classify"]
    assert sla.quantile_column == "p99_ms"


@pytest.mark.parametrize(("fields", "named"), [
    ({"latency_ms": 0}, "latency_ms=0"),
    ({"rate_rps": -1}, "rate_rps=-1"),
    ({"gateway_reserve_ms": 600}, "gateway_reserve_ms=600"),
    ({"percentile": 90}, "percentile=90"),
    ({"step_weights": {"detect": 0}}, "step_weights"),
])
def test_bad_sla_is_refused_naming_the_value(fields: dict, named: str) -> None:
    with pytest.raises(ProfilingError, match=named):
        SlaSpec(**fields)
