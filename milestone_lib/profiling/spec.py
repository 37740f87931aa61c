"""A scaling sweep described by data (pydantic; `load_sweep_spec` reads YAML), checked before anything starts.

    sla: {latency_ms: 500, rate_rps: 20, gateway_reserve_ms: 50}
    cpus: [0.5, 1, 1.5, 2]           # CPUs per replica; default `default_cpus(cores)`
    replicas: [1, 2, 3, 4]           # the table's scales (measured where they fit, else predicted)
    detect: {variants: [], max_batch_size: 8, max_queue_delay_ms: 2}   # [] = the accuracy-vs-latency front (4 at least)
    classify: {variants: []}
    duration_s: 2.5                  # open loop at the step's rate, after warmup_s (x4 under a quota)

Each step is measured at one replica per (variant, cpu): a saturating closed loop (windows until
three agree within 10%, or `max_windows`) and a Poisson open loop at the step's rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..contracts import STEPS, VariantManifest
from ..errors import ProfilingError
from ..serving.defaults import step_defaults
from .selection import variant_selection
from .sla import SlaSpec

__all__ = ["MAX_RATE_PER_CORE", "SERVABLE_FORMATS", "StepSweep", "SweepSpec", "default_cpus", "default_variants",
           "load_sweep_spec", "notebook_sweep"]

SERVABLE_FORMATS = ("onnx", "pytorch")
"""Formats a CPU step server runs (TensorRT engines need a GPU)."""
MAX_RATE_PER_CORE = 400.0
"""Requests per second one core of load generator keeps on schedule (asyncio + grpc.aio, prebuilt
requests; `benchmarks/bench_loadgen.py` measures it): the most a sweep may ask for per core."""
_FORMAT_ORDER = {("onnx", "fp32"): 0, ("onnx", "int8-static"): 1, ("onnx", "int8-dynamic"): 2, ("pytorch", "fp32"): 3}


def default_cpus(cores: int) -> list[float]:
    """Four CPU allocations per replica that fit the machine, none below half a core.

    Below half a core the CFS quota's pauses are the tail (a 6 ms detector shows a 140 ms p99 at 0.25 CPU,
    20 requests/s), so the smallest allocation would decide both the optimum and its error; 0.25 stays
    reachable as a parameter. Up to 4 cores: 0.5, 1, 1.5, 2 (those that fit); from 8: 1, 2, 3, 4; from 16:
    1, 2, 4, 8.
    """
    if cores >= 16:
        return [1.0, 2.0, 4.0, 8.0]
    if cores >= 8:
        return [1.0, 2.0, 3.0, 4.0]
    return [c for c in (0.5, 1.0, 1.5, 2.0) if c <= cores] or [float(cores)]


def default_variants(manifests: Mapping[str, VariantManifest], step: str, count: int = 4) -> list[str]:
    """The variants of `step` on notebook 01's accuracy-vs-latency front, filled up to `count` from the next
    fronts (`selection.variant_selection`), fastest first; without measurements, `count` servable ones taking
    each model (size) in turn, ONNX fp32 / int8 before PyTorch."""
    selection = variant_selection(manifests, min_count=count, servable=SERVABLE_FORMATS)
    swept = selection[(selection.step == step) & selection.swept].sort_values("latency_ms")
    if len(swept):
        return swept["variant"].tolist()
    mine = [m for m in manifests.values() if m.step == step and m.format in SERVABLE_FORMATS]
    models: dict[str, list[VariantManifest]] = {}
    for m in sorted(mine, key=lambda m: (_FORMAT_ORDER.get((m.format, m.precision), 9), m.name)):
        models.setdefault(f"{m.family}{m.size}", []).append(m)
    chosen: list[str] = []
    while len(chosen) < count and any(models.values()):
        for name in sorted(models):
            if models[name] and len(chosen) < count:
                chosen.append(models[name].pop(0).name)
    return chosen


class StepSweep(BaseModel):
    """What is swept for one step."""

    model_config = ConfigDict(extra="forbid")

    variants: list[str] = Field(default_factory=list)
    """Variant names; empty: `default_variants` (four servable ones)."""
    max_batch_size: int | None = Field(default=None, ge=1)
    """Dynamic batching of the step servers; None: the step's serving default."""
    max_queue_delay_ms: float | None = Field(default=None, ge=0)


class SweepSpec(BaseModel):
    """The whole sweep: SLA, allocations, scales, the load windows, and what is measured vs predicted."""

    model_config = ConfigDict(extra="forbid")

    sla: SlaSpec = Field(default_factory=SlaSpec)
    cpus: list[float] | None = None
    """CPUs per replica; None: `default_cpus(cores)`."""
    replicas: list[int] = Field(default_factory=lambda: [1, 2, 3, 4])
    detect: StepSweep = Field(default_factory=StepSweep)
    classify: StepSweep = Field(default_factory=StepSweep)
    images: int = Field(default=16, ge=1)
    """Validation images sent (and cut into crops for the classifier)."""
    warmup_s: float = Field(default=0.5, ge=0)
    window_s: float = Field(default=0.75, gt=0)
    max_windows: int = Field(default=4, ge=3)
    """Saturation windows at most; fewer when three agree within 10%."""
    duration_s: float = Field(default=2.5, gt=0)
    """Measured seconds of the open loop at the step's rate."""
    timeout_s: float = Field(default=5.0, gt=0)
    reserve_cores: float | None = None
    """Cores left to the load generator and the gateway; None: 1 on up to 4 cores, else 2."""
    multi_replica_per_step: int = Field(default=2, ge=0)
    """Multi-replica configurations measured per step (those that fit beside the reserve); the rest predicted."""
    multi_duration_factor: float = Field(default=2.0, ge=1.0)
    """Their open loop runs this many times `duration_s`: they are what the predictions are checked against."""
    throttled_duration_factor: float = Field(default=4.0, ge=1.0)
    """A single replica under a CFS quota below one core per thread runs its open loop this many times
    `duration_s`: its tail is the quota's pauses, rare enough that a p99 of 50 requests is nearly their
    maximum (yolov8s at 0.25 CPU, 20 requests/s: 201 ms from 57 requests, 155-165 ms from 800)."""
    variant_count: int = Field(default=4, ge=1)
    """Variants per step at least when a step lists none (`default_variants`: the front, filled up to this)."""
    max_variants: int | None = Field(default=None, ge=1)
    """... and at most (None: the whole front; a smoke run: 1, the fastest)."""
    pipeline_pairs: int = Field(default=1, ge=0)
    """Detector x classifier pairs measured end to end through the gateway."""

    def open_loop_s(self, cpu: float, threads: int, replicas: int) -> float:
        """Measured seconds of a configuration's open loop at its rate."""
        if replicas > 1:
            return self.duration_s * self.multi_duration_factor
        return self.duration_s * (self.throttled_duration_factor if cpu < threads else 1.0)

    def step(self, name: str) -> StepSweep:
        return self.detect if name == "detect" else self.classify

    def batching(self, step: str) -> tuple[int, float]:
        """(max_batch_size, max_queue_delay_ms) of the step's servers."""
        sweep, defaults = self.step(step), step_defaults(step)
        return (sweep.max_batch_size or defaults.max_batch_size,
                defaults.max_queue_delay_ms if sweep.max_queue_delay_ms is None else sweep.max_queue_delay_ms)

    def reserve(self, cores: int) -> float:
        return self.reserve_cores if self.reserve_cores is not None else (1.0 if cores <= 4 else 2.0)

    def resolved(self, manifests: Mapping[str, VariantManifest], *, cores: int) -> SweepSpec:
        """This spec with its defaults filled in for these variants and this machine; a bad value is refused
        (`ProfilingError` naming it) before anything starts."""
        cpus = self.cpus if self.cpus is not None else default_cpus(cores)
        for cpu in cpus:
            if not (isinstance(cpu, (int, float)) and math.isfinite(cpu) and 0 < cpu <= cores):
                raise ProfilingError(f"CPU allocation {cpu!r} per replica is not possible here: it must be above 0 and "
                                     f"at most the {cores} cores this machine offers; e.g. cpus={default_cpus(cores)}")
        bad = [r for r in self.replicas if r < 1]
        if bad or not self.replicas:
            raise ProfilingError(f"replicas {self.replicas} must be whole numbers of at least 1, e.g. [1, 2, 3, 4]")
        limit = MAX_RATE_PER_CORE * max(1.0, self.reserve(cores))
        if self.sla.rate_rps > limit:
            raise ProfilingError(f"rate {self.sla.rate_rps:g} requests/s is more than the load generator can send on "
                                 f"schedule here (about {limit:g}/s on {self.reserve(cores):g} reserved cores); "
                                 "lower rate_rps or reserve more cores")
        steps = {}
        for name in STEPS:
            sweep = self.step(name)
            variants = sweep.variants or default_variants(manifests, name, self.variant_count)[:self.max_variants]
            for variant in variants:
                known = manifests.get(variant)
                if known is None or known.step != name:
                    choices = sorted(n for n, m in manifests.items() if m.step == name)
                    raise ProfilingError(f"unknown {name} variant '{variant}'; the built ones are "
                                         f"{', '.join(choices) or 'none'} (build more with notebook 01)")
                if known.format not in SERVABLE_FORMATS:
                    raise ProfilingError(f"variant '{variant}' ({known.format}) cannot be served on CPU here; "
                                         f"choose one of the {', '.join(SERVABLE_FORMATS)} variants")
            if not variants:
                raise ProfilingError(f"no servable {name} variant is built; run notebook 01 first")
            steps[name] = sweep.model_copy(update={"variants": list(variants)})
        return self.model_copy(update={"cpus": sorted(float(c) for c in dict.fromkeys(cpus)),
                                       "replicas": sorted(set(self.replicas)), **steps})


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """A sweep spec from YAML."""
    path = Path(path)
    if not path.is_file():
        raise ProfilingError(f"sweep file '{path}' does not exist")
    return SweepSpec.model_validate(yaml.safe_load(path.read_text()) or {})


def notebook_sweep(*, sla_ms: float, rate_rps: float, variants: list[str] | None = None,
                   cpus: list[float] | None = None, replicas: int = 4, duration_s: float = 2.5,
                   smoke: bool = False, manifests: Mapping[str, VariantManifest] | None = None) -> SweepSpec:
    """Notebook 04's parameters as a sweep: `variants` lists both steps' names, each going to the step its
    manifest names (empty: each step's front, `default_variants`); a smoke run measures one variant per step at
    two allocations, briefly, and predicts 1-2 replicas."""
    by_step: dict[str, list[str]] = {name: [] for name in STEPS}
    for name in variants or []:
        known = (manifests or {}).get(name)
        if known is None:
            raise ProfilingError(f"unknown variant '{name}'; the built ones are "
                                 f"{', '.join(sorted(manifests or {})) or 'none'} (build more with notebook 01)")
        by_step[known.step].append(name)
    sla = SlaSpec(latency_ms=sla_ms, rate_rps=rate_rps)
    if replicas < 1:
        raise ProfilingError(f"replicas={replicas} must be at least 1 (the table covers 1..replicas)")
    if not smoke:
        return SweepSpec(sla=sla, cpus=cpus or None, replicas=list(range(1, replicas + 1)), duration_s=duration_s,
                         **{step: StepSweep(variants=names) for step, names in by_step.items()})
    return SweepSpec(sla=sla, cpus=(cpus or [0.5, 1.0])[:2], replicas=list(range(1, min(replicas, 2) + 1)),
                     duration_s=min(duration_s, 1.5), images=8, window_s=0.5, max_windows=3, warmup_s=0.3,
                     multi_replica_per_step=0, pipeline_pairs=1, variant_count=1, max_variants=1,
                     throttled_duration_factor=1.0,
                     **{step: StepSweep(variants=names[:1]) for step, names in by_step.items()})
