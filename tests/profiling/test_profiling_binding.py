"""binding_constraint: which of the SLA's halves (the rate, the latency bound) decides what a step needs."""

from __future__ import annotations

import pandas as pd

from milestone_lib.profiling import SlaSpec, binding_constraint


def _rows(detect_p99: dict[tuple[int, float], float | None], classify_p99: float = 10.0) -> pd.DataFrame:
    """Detector 'big' (accurate) at (replicas, cpu) -> p99 (None: unstable); 'small' always 5 ms; one classifier."""
    rows = []
    for (replicas, cpu), p99 in detect_p99.items():
        rows.append({"step": "detect", "variant": "big", "replicas": replicas, "cpu": cpu, "cost": replicas * cpu,
                     "accuracy": 0.6, "p99_ms": p99 if p99 is not None else float("inf"), "stable": p99 is not None,
                     "detector_variant": None})
        rows.append({"step": "detect", "variant": "small", "replicas": replicas, "cpu": cpu, "cost": replicas * cpu,
                     "accuracy": 0.3, "p99_ms": 5.0, "stable": True, "detector_variant": None})
    rows.append({"step": "classify", "variant": "cls", "replicas": 1, "cpu": 0.5, "cost": 0.5, "accuracy": 0.8,
                 "p99_ms": classify_p99, "stable": True, "detector_variant": "big"})
    return pd.DataFrame(rows)


SLA = SlaSpec(latency_ms=300, rate_rps=20)  # detect's budget is 0.6 x (300 - reserve)


def test_nothing_binds_when_the_most_accurate_variants_fit_on_the_smallest_allocation() -> None:
    text = binding_constraint(_rows({(1, 0.5): 20.0, (2, 0.5): 15.0}), SLA)
    assert "does not bind (every step's" in text and "detect does not bind" in text


def test_the_latency_bound_binds_when_a_stable_allocation_is_too_slow() -> None:
    budget = SLA.step_budgets()["detect"]
    text = binding_constraint(_rows({(1, 0.5): budget + 50, (2, 0.5): budget - 10}), SLA)
    assert "on detect the latency bound binds: big needs 2x0.5 CPU" in text
    assert "classify does not bind" in text


def test_the_rate_binds_when_the_smallest_allocation_is_unstable() -> None:
    text = binding_constraint(_rows({(1, 0.5): None, (2, 0.5): 30.0}), SLA)
    assert "on detect the rate binds (capacity, not latency): big needs 2x0.5 CPU" in text


def test_a_variant_ruled_out_names_the_most_accurate_that_fits() -> None:
    budget = SLA.step_budgets()["detect"]
    text = binding_constraint(_rows({(1, 0.5): None, (2, 0.5): budget + 1}), SLA)
    assert "rules out the most accurate variant big" in text and "the most accurate that fits is small" in text
