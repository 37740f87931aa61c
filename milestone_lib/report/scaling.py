"""Horizontal scaling that shows its effect (notebook 03), or says with the numbers why it did not.

One replica of the slowest step is made the bottleneck on purpose: its closed-loop capacity is
measured (`capacity_rps`), the open loop is driven above it (`overload_rate`), the step is scaled to
enough replicas to serve that rate, as far as they fit on the machine's cores (`scale_target`), and
`scaling_verdict` decides whether goodput rose and p95 fell, and writes the sentence:

    capacity = capacity_rps(closed.summary)                  # one replica, closed loop
    rate = overload_rate(capacity, overload=1.5)
    target = scale_target(state, "detect", rate_rps=rate, capacity_rps=capacity)
    verdict = scaling_verdict(before.summary, after.summary, state, scaled_state, step="detect",
                              capacity_rps=capacity, rate_rps=rate)
    verdict.sentence, verdict.shown, verdict.reason, verdict.figures()

The reasons, checked in this order when scaling showed no effect: `not_saturated` (the rate was not
above one replica's capacity), `oversubscribed` (the scaled deployment asks for more CPUs than the
machine has), `too_few_replicas` (the replicas that fit serve less than the rate),
`schedule_not_kept` (the load generator fell behind), `no_gain` (none of these: the numbers only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..deploy.base import DeploymentState
from ..errors import MilestoneError

__all__ = ["SCALING_VARIANTS", "ScalingVerdict", "capacity_rps", "overload_rate", "scale_target",
           "scaling_variants", "scaling_verdict"]

SCALING_VARIANTS = {
    "full": ("yolov8s-160-onnx-fp32", "resnet-tiny-onnx-fp32"),
    "smoke": ("yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"),
}
"""Default (detect, classify) variants of notebook 03. The full build's yolov8s at 160 px costs about
20 ms of CPU per image, so half a CPU serves about 20 requests/s: 1.5x that is a rate two such
replicas serve on a 2-core machine, and one the gateway and the load generator keep up with. The
smoke build has only the yolov8n detector."""

_EPS = 1e-9


def scaling_variants(detect: str = "", classify: str = "", *, smoke: bool = False) -> tuple[str, str]:
    """The (detect, classify) variants to deploy: the ones given, else `SCALING_VARIANTS` of the run."""
    default_detect, default_classify = SCALING_VARIANTS["smoke" if smoke else "full"]
    return detect or default_detect, classify or default_classify


def capacity_rps(summary: Mapping[str, Any]) -> float:
    """Requests per second answered by a saturating closed loop (`LoadResult.summary`): the capacity."""
    throughput = float(summary.get("throughput_rps") or 0.0)
    if not throughput > 0:
        raise MilestoneError(f"the capacity run answered no request ({summary.get('ok', 0)} ok of "
                             f"{summary.get('measured', 0)} measured, errors {summary.get('errors_by_code', {})}); "
                             "check the deployment's warnings and logs")
    return throughput


def overload_rate(capacity: float, *, overload: float = 1.5) -> float:
    """`overload` x `capacity`, rounded to 0.1 request/s: a rate one replica cannot serve when overload > 1."""
    if not capacity > 0 or not overload > 0:
        raise MilestoneError(f"capacity {capacity} and overload {overload} must both be positive")
    return round(capacity * overload, 1)


def _step_cpu(state: DeploymentState, step: str) -> tuple[int, float]:
    replicas = [r for r in state.replicas if r.step == step]
    if not replicas:
        raise MilestoneError(f"the deployment has no replica of step '{step}'")
    return len(replicas), replicas[0].cpu


def scale_target(state: DeploymentState, step: str, *, rate_rps: float, capacity_rps: float,
                 requested: int = 0, max_utilization: float = 0.8) -> int:
    """Replicas to scale `step` to: `requested` when set (at least one more than now); else enough to
    serve `rate_rps` at `max_utilization` of their capacity (`capacity_rps` of today's replicas, shared
    evenly), but no more than fit on the cores beside the rest of the deployment; always one more than now.

    Where not even one more fits, it is still one more: the deployment is then oversubscribed and
    `scaling_verdict` says so.
    """
    current, cpu = _step_cpu(state, step)
    if requested:
        return max(int(requested), current + 1)
    per_replica = capacity_rps / current
    needed = math.ceil(rate_rps / (per_replica * max_utilization) - _EPS)
    if state.capacity_cpu is not None:
        others = state.requested_cpu - current * cpu
        needed = min(needed, math.floor((state.capacity_cpu - others) / cpu + _EPS))
    return max(needed, current + 1)


@dataclass(frozen=True)
class ScalingVerdict:
    """Whether scaling the step out raised goodput and cut p95, why not where it did not, and the sentence."""

    shown: bool
    reason: str
    """`shown`, `not_saturated`, `oversubscribed`, `too_few_replicas`, `schedule_not_kept` or `no_gain`."""
    sentence: str
    numbers: dict[str, Any]

    def figures(self) -> dict[str, Any]:
        """The verdict as recorded figures: `scaling_shown`, `scaling_reason`, `scaling_sentence` and its numbers
        (`capacity_rps`, `rate_over_capacity`, `cpu_per_replica`, `step_replicas_before` / `_after` of the scaled
        step, `cpu_requested_after`, `cores_available`); keys apart from `scaling_figures`' own."""
        return {"scaling_shown": self.shown, "scaling_reason": self.reason, "scaling_sentence": self.sentence,
                **self.numbers}


def _ms(value: float) -> str:
    return "n/a (no request answered)" if math.isnan(value) else f"{value:.0f} ms"


def _float(summary: Mapping[str, Any], key: str) -> float:
    value = summary.get(key)
    return math.nan if value is None else float(value)


def scaling_verdict(before: Mapping[str, Any], after: Mapping[str, Any], before_state: DeploymentState,
                    after_state: DeploymentState, *, step: str, capacity_rps: float, rate_rps: float,
                    asked_rps: float | None = None, min_change: float = 0.05) -> ScalingVerdict:
    """Did scaling `step` (before_state -> after_state) show its effect at `rate_rps`?

    Shown: goodput (requests within the SLA per second) rose by more than `min_change` of the rate,
    and p95 fell by more than `min_change` of itself. `before` / `after` are `LoadResult.summary` dicts; `capacity_rps` is
    what the step's replicas before the scale answered in a closed loop; `asked_rps` the rate asked
    when the run capped it (a smoke run) lower to `rate_rps`.
    """
    n_before, cpu = _step_cpu(before_state, step)
    n_after, _ = _step_cpu(after_state, step)
    good_b, good_a = _float(before, "goodput_rps"), _float(after, "goodput_rps")
    p95_b, p95_a = _float(before, "p95_ms"), _float(after, "p95_ms")
    cores = after_state.capacity_cpu
    requested = after_state.requested_cpu
    scaled_capacity = capacity_rps * n_after / n_before
    numbers = {"capacity_rps": round(capacity_rps, 2), "rate_over_capacity": round(rate_rps / capacity_rps, 2),
               "cpu_per_replica": cpu, "step_replicas_before": n_before, "step_replicas_after": n_after,
               "cpu_requested_after": round(requested, 3), "cores_available": cores}
    sla = before.get("sla_ms")
    within = f" within {float(sla):g} ms" if sla is not None else ""
    change = (f"goodput{within} {good_b:.1f} -> {good_a:.1f} requests/s, p95 {_ms(p95_b)} -> {_ms(p95_a)}")
    fits = (f"the scaled deployment asks for {requested:g} CPUs (gateway included) of "
            + (f"this machine's {cores:g} cores" if cores is not None else "a cluster of unknown size"))
    one = f"{n_before} `{step}` replica{'s' if n_before > 1 else ''} of {cpu:g} CPU"
    load = (f"{rate_rps:g} requests/s, {rate_rps / capacity_rps:.2f}x the {capacity_rps:.1f} requests/s "
            f"that the deployment with {one} answered in a closed loop")
    head = f"Scaling `{step}` out from {n_before} to {n_after} replicas ({cpu:g} CPU each)"
    rose = good_a - good_b > min_change * rate_rps
    fell = (math.isnan(p95_b) and not math.isnan(p95_a)) or p95_a < p95_b * (1 - min_change)
    if rose and fell:
        sentence = f"{head} showed its effect at {load}: {change}; {fits}, and the load generator runs beside it."
        return ScalingVerdict(True, "shown", sentence, numbers)
    no = f"{head} did not show its effect ({change})"
    kept = [s.get("schedule_kept") for s in (before, after)]
    if rate_rps <= capacity_rps * (1 + _EPS):
        capped = (f" (the run capped the rate at {rate_rps:g} of the {asked_rps:g} requests/s asked)"
                  if asked_rps is not None and asked_rps > rate_rps + _EPS else "")
        reason, why = "not_saturated", (
            f"because one replica was not the bottleneck: the load of {rate_rps:g} requests/s{capped} is at or "
            f"below the {capacity_rps:.1f} requests/s that the deployment with {one} answered in a closed loop, "
            "so there was no queue for more replicas to remove")
    elif cores is not None and requested > cores + _EPS:
        reason, why = "oversubscribed", (
            f"because the machine has too few cores: {fits}, so the added replicas share cores with the others "
            f"and take CPU from them instead of adding compute (load: {load})")
    elif scaled_capacity < rate_rps * (1 - _EPS):
        reason, why = "too_few_replicas", (
            f"because the {n_after} replicas that fit serve about {scaled_capacity:.1f} requests/s, less than the "
            f"load of {load}; {fits}")
    elif False in kept:
        warning = next(s.get("schedule_warning") for s in (before, after) if s.get("schedule_kept") is False)
        reason, why = "schedule_not_kept", (
            f"because the load generator fell behind its schedule ({warning}), so the replicas did not see the "
            f"load of {load}")
    else:
        reason, why = "no_gain", (
            f"at {load}, although {fits} and the {n_after} replicas should serve about {scaled_capacity:.1f} "
            "requests/s: none of the known reasons applies, so other processes on this machine may have "
            "competed for its cores; measure again when it is idle")
    return ScalingVerdict(False, reason, f"{no} {why}.", numbers)
