"""What a solve returns: the chosen configuration, or a clear "nothing meets it" with the closest ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Configuration", "Solution", "configuration_from_rows"]

_STEP_FIELDS = ("variant", "cpu", "threads", "batch", "replicas", "cost", "p99_ms", "source")


@dataclass(frozen=True)
class Configuration:
    """One choice for the whole pipeline: a row of each step, and what the rule predicts for it."""

    detect: dict[str, Any]
    classify: dict[str, Any]
    cost: float
    accuracy: float
    predicted_p99_ms: float
    gateway_reserve_ms: float

    @property
    def label(self) -> str:
        return (f"{_short(self.detect)} -> {_short(self.classify)}")

    def to_row(self) -> dict[str, Any]:
        """A flat row: detect_* and classify_* fields, cost, accuracy and predicted p99."""
        row: dict[str, Any] = {}
        for step, values in (("detect", self.detect), ("classify", self.classify)):
            for name in _STEP_FIELDS:
                row[f"{step}_{name}"] = values.get(name)
        row.update(cost=self.cost, accuracy=self.accuracy, predicted_p99_ms=self.predicted_p99_ms)
        return row

    def sentence(self) -> str:
        d, c = self.detect, self.classify
        return (f"{d['variant']} on {int(d['replicas'])} x {d['cpu']:g} CPU (batch {int(d['batch'])}) then "
                f"{c['variant']} on {int(c['replicas'])} x {c['cpu']:g} CPU (batch {int(c['batch'])}): "
                f"cost {self.cost:g} CPUs, end-to-end accuracy {self.accuracy:.3f}, "
                f"p99 by the SLA rule {self.predicted_p99_ms:.0f} ms")


def _short(step: dict[str, Any]) -> str:
    return f"{step['variant']} {int(step['replicas'])}x{step['cpu']:g}cpu b{int(step['batch'])}"


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def configuration_from_rows(detect: pd.Series, classify: pd.Series, *, accuracy: float,
                            gateway_reserve_ms: float) -> Configuration:
    """The configuration of one detect row and one classify row (the end-to-end rule in problem.py)."""
    d = {k: _plain(v) for k, v in detect.items()}
    c = {k: _plain(v) for k, v in classify.items()}
    return Configuration(detect=d, classify=c, cost=float(detect["cost"]) + float(classify["cost"]),
                         accuracy=float(accuracy),
                         predicted_p99_ms=float(detect["p99_ms"]) + float(classify["p99_ms"]) + gateway_reserve_ms,
                         gateway_reserve_ms=gateway_reserve_ms)


@dataclass(frozen=True)
class Solution:
    """A solve's answer. `feasible` False is an answer too: `reason`, `closest` and `what_would_change` say why."""

    feasible: bool
    objective: str
    method: str
    configuration: Configuration | None = None
    objective_keys: tuple[float, ...] = ()
    reason: str = ""
    closest: pd.DataFrame = field(default_factory=pd.DataFrame)
    what_would_change: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def sentence(self) -> str:
        if self.feasible and self.configuration is not None:
            return f"Optimum ({self.objective}): {self.configuration.sentence()}."
        change = "; ".join(self.what_would_change) or "no candidate rows to change"
        return f"Nothing meets it ({self.objective}): {self.reason}. What would have to change: {change}."
