"""The pipeline's SLA and its split into per-step latency budgets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ProfilingError

__all__ = ["DEFAULT_STEP_WEIGHTS", "SlaSpec"]

DEFAULT_STEP_WEIGHTS: dict[str, float] = {"detect": 0.6, "classify": 0.4}
"""The detector gets the larger share: it sees full images, the classifier only small crops."""


class SlaSpec(BaseModel):
    """The pipeline SLA: `percentile` latency at most `latency_ms` while `rate_rps` requests arrive.

    The split rule (`step_budgets`): first `gateway_reserve_ms` is set aside for what is neither
    step (the gateway's own work, cutting crops, the network hops client -> gateway -> steps);
    what is left is shared between the steps in proportion to `step_weights`. A step meets its
    budget when its own p`percentile` latency, measured at the step on its own, is within it; the
    sum of the budgets plus the reserve is the SLA, so two steps that each meet their budget
    leave the pipeline within the SLA up to how their tails combine (the end-to-end table checks it).
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = 500.0
    """End-to-end latency bound at `percentile`."""
    rate_rps: float = 20.0
    """Pipeline requests (images) per second the SLA holds at."""
    percentile: int = 99
    """Which latency percentile the SLA bounds: 50, 95 or 99 (the columns every table carries)."""
    gateway_reserve_ms: float = 50.0
    """Time kept for the gateway and the network, taken off before the steps' share."""
    step_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_STEP_WEIGHTS))

    @model_validator(mode="after")
    def _positive(self) -> SlaSpec:
        if not self.latency_ms > 0:
            raise ProfilingError(f"SLA latency_ms={self.latency_ms:g} must be above 0 ms, e.g. 500")
        if not self.rate_rps > 0:
            raise ProfilingError(f"SLA rate_rps={self.rate_rps:g} must be above 0 requests/s, e.g. 20")
        if not 0 <= self.gateway_reserve_ms < self.latency_ms:
            raise ProfilingError(f"gateway_reserve_ms={self.gateway_reserve_ms:g} must be at least 0 and below the "
                                 f"SLA of {self.latency_ms:g} ms; lower the reserve or raise the SLA")
        if self.percentile not in (50, 95, 99):
            raise ProfilingError(f"SLA percentile={self.percentile} is not one the tables carry; use 50, 95 or 99")
        bad = {k: v for k, v in self.step_weights.items() if not v > 0}
        if bad or not self.step_weights:
            raise ProfilingError(f"step_weights {self.step_weights} must give every step a weight above 0, "
                                 f"e.g. {DEFAULT_STEP_WEIGHTS}")
        return self

    @property
    def quantile_column(self) -> str:
        """The latency column the SLA reads, e.g. `p99_ms`."""
        return f"p{self.percentile}_ms"

    def step_budgets(self) -> dict[str, float]:
        """{step: ms}: (latency_ms - gateway_reserve_ms) split in proportion to `step_weights`."""
        left = self.latency_ms - self.gateway_reserve_ms
        total = sum(self.step_weights.values())
        return {step: left * weight / total for step, weight in self.step_weights.items()}
