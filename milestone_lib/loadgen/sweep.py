"""Concurrency sweeps: the closed loop at each level in turn (perf_analyzer's --concurrency-range)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .closed_loop import run_closed_loop
from .stats import LoadResult

__all__ = ["SWEEP_COLUMNS", "SweepResult", "sweep_concurrency"]

SWEEP_COLUMNS = ["concurrency", "stable", "windows", "sent", "measured", "ok", "failed", "timeouts",
                 "throughput_rps", "goodput_rps", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "generator_overhead_ms"]


@dataclass
class SweepResult:
    """A concurrency sweep: one summary row per level, and every request with its level."""

    table: pd.DataFrame
    results: dict[int, LoadResult] = field(default_factory=dict)

    @property
    def requests(self) -> pd.DataFrame:
        return pd.concat([r.requests.assign(concurrency=c) for c, r in self.results.items()], ignore_index=True)


def sweep_concurrency(target: str, images: Sequence[np.ndarray], concurrencies: Sequence[int],
                      **kwargs: Any) -> SweepResult:
    """`run_closed_loop` at each level of `concurrencies`; `kwargs` go to every level."""
    results = {c: run_closed_loop(target, images, c, **kwargs) for c in concurrencies}
    table = pd.DataFrame([{k: r.summary.get(k) for k in SWEEP_COLUMNS} for r in results.values()])
    return SweepResult(table=table, results=results)
