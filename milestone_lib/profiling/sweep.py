"""Running a sweep: deploy each variant pair, measure every (variant, cpu) of each step at one replica
(and the multi-replica configurations that fit), the pipeline end to end, and collect the rows.

One deployment serves a detector and a classifier variant for every CPU allocation that runs the
same number of threads: between allocations only the replicas' cgroup CPU quota changes (read
back from the kernel into each row), so a sweep starts few processes. While one step is measured
the other is idle. Multi-replica configurations are measured only where `replicas x cpu` fits
beside the cores reserved for the load generator and the gateway; the rest is predicted.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..contracts import MANIFEST_NAME, VariantManifest, load_manifest
from ..deploy import DeploymentBackend, PipelineDeployment, StepDeployment, make_backend
from ..deploy.options import Batching
from ..errors import ProfilingError
from ..loadgen import PoissonRate, load_images, run_open_loop
from .balanced import step_payloads
from .fanout import cut_image_crops, fanout_table
from .machine import describe_machine, machine_cores
from .measure import ConfigRun, measure_config, measured_row, profile_rows, run_record
from .spec import SweepSpec

__all__ = ["SweepResult", "load_manifests", "model_name", "run_sweep", "step_accuracy"]


@dataclass
class SweepResult:
    """Everything a sweep measured; `tables.build_tables` turns it into the candidate and step tables."""

    spec: SweepSpec
    machine: dict[str, Any]
    profiles: pd.DataFrame
    fanout: pd.DataFrame
    measured: pd.DataFrame
    runs: pd.DataFrame
    pipeline_measured: pd.DataFrame
    latencies: pd.DataFrame = field(default_factory=pd.DataFrame)
    """run_id, latency_ms of every ok request measured at the step's rate (the distributions plotted)."""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def load_manifests(variants_dir: Path) -> dict[str, VariantManifest]:
    """Every built variant under `variants_dir`, by name."""
    folder = Path(variants_dir)
    if not folder.is_dir():
        raise ProfilingError(f"no variants folder '{folder}'; run notebook 01 (or `make variants`) first")
    return {m.name: m for m in (load_manifest(p.parent) for p in sorted(folder.glob(f"*/{MANIFEST_NAME}")))}


def model_name(manifest: VariantManifest) -> str:
    """The model without format and precision: `yolov8n`, `resnet-tiny`."""
    return f"{manifest.family}{manifest.size}" if manifest.family.startswith("yolo") else \
        f"{manifest.family}-{manifest.size}"


def step_accuracy(manifest: VariantManifest) -> float:
    """The step's own metric: detector mAP50-95, classifier top-1."""
    key = "mAP50-95" if manifest.step == "detect" else "top1"
    return float(manifest.accuracy.get(key, math.nan))


def _enforcement(backend: DeploymentBackend, label: str, cpu: float, shared: bool) -> tuple[float, str]:
    """Set `label`'s CPU quota to `cpu`; (the CPUs it is held to, a note saying how, or that it is not)."""
    if not hasattr(backend, "cgroups"):  # docker --cpus / a Kubernetes limit: set at deploy time
        return cpu, f"{backend.name} backend: {cpu:g} CPU set at deploy time"
    placement = {r.label: r.placement for r in backend.status().replicas}.get(label, {})
    cores = placement.get("cores") or []
    group = backend.cgroups().get(label)
    if group is None:
        held = len(cores) if cores and float(cpu).is_integer() and len(cores) == cpu else None
        note = (f"no CPU quota here; pinned to {len(cores)} whole core(s) {cores}, so held to {cpu:g} CPU by affinity"
                if held else f"requested {cpu:g} CPU, NOT enforced (no CPU quota here, not pinned to {cpu:g} cores)")
        enforced = float(held) if held else cpu
    else:
        group.set_cpu(cpu)
        quota, period = group.quota()
        enforced = quota / period if quota > 0 else math.nan
        note = f"cgroup v{group.version} quota {quota}/{period} us = {enforced:g} CPU"
        if cores:
            note += f", pinned to cores {cores}"
    if shared:
        note += "; shares cores with the load generator"
    return enforced, note


class _Sweeper:
    def __init__(self, spec: SweepSpec, manifests: Mapping[str, VariantManifest], folders: Mapping[str, Path],
                 backend: str, log: Callable[[str], None]) -> None:
        self.spec, self.manifests, self.folders, self.backend_name, self.log = spec, manifests, folders, backend, log
        self.cores = machine_cores()
        self.runs: list[ConfigRun] = []
        self.pipeline_rows: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.done: set[tuple[str, float, int]] = set()
        self.counter = itertools.count(1)
        self.stamp = time.strftime("%Y%m%dT%H%M%S")

    def identity(self, step: str, variant: str, cpu: float, threads: int, replicas: int,
                 detector: str | None) -> dict[str, Any]:
        m = self.manifests[variant]
        batch, delay = self.spec.batching(step)
        return {"step": step, "variant": variant, "model": model_name(m), "format": m.format,
                "precision": m.precision, "cpu": cpu, "threads": threads, "replicas": replicas, "max_batch": batch,
                "max_queue_delay_ms": delay, "accuracy": step_accuracy(m),
                "detector_variant": detector if step == "classify" else np.nan}

    def measure(self, backend: DeploymentBackend, step: str, variant: str, cpu: float, threads: int,
                replicas: int, payloads: dict[str, list[bytes]], loads: dict[str, tuple[float, float]],
                detector: str) -> None:
        labels = [f"{step}-{i}" for i in range(replicas)]
        shared = replicas * cpu > self.cores - self.spec.reserve(self.cores) + 1e-9
        notes = [_enforcement(backend, label, cpu, shared) for label in labels]
        enforced = float(np.nanmean([n[0] for n in notes]))
        rate, items = loads[step]
        run_id = f"{self.stamp}-{next(self.counter):03d}"
        ident = self.identity(step, variant, round(enforced, 4), threads, replicas, detector)
        self.log(f"[sweep] {run_id} {step} {variant} cpu={cpu:g} x{replicas} ({notes[0][1]})")
        run = measure_config(ident, backend.endpoints().steps[step], payloads[step], items_per_request=items,
                             rate_rps=rate, spec=self.spec, run_id=run_id, enforcement=notes[0][1],
                             duration_s=self.spec.open_loop_s(cpu, threads, replicas))
        self.runs.append(run)

    def multi_configs(self, step: str, cpus: list[float]) -> list[tuple[float, int]]:
        """The multi-replica (cpu, replicas) of `step` that fit beside the reserve: smallest allocation first,
        most replicas first within it (the scaling curve of one allocation before a second one)."""
        room = self.cores - self.spec.reserve(self.cores)
        fits = [(cpu, r) for r in self.spec.replicas if r > 1 for cpu in cpus if r * cpu <= room + 1e-9]
        return sorted(fits, key=lambda cr: (cr[0], -cr[1]))[: self.spec.multi_replica_per_step]

    def pipeline(self, backend: DeploymentBackend, images: list[np.ndarray], detector: str, classifier: str,
                 cpu: float, threads: int) -> None:
        run_id = f"{self.stamp}-{next(self.counter):03d}"
        self.log(f"[sweep] {run_id} pipeline {detector} -> {classifier} cpu={cpu:g} through the gateway")
        result = run_open_loop(backend.endpoints().gateway, images, PoissonRate(self.spec.sla.rate_rps, seed=7),
                               duration_s=self.spec.duration_s * 2, warmup_s=self.spec.warmup_s,
                               timeout_s=self.spec.timeout_s, sla_ms=self.spec.sla.latency_ms, progress=False)
        s = result.summary
        self.pipeline_rows.append({
            "detector_variant": detector, "classifier_variant": classifier, "detect_replicas": 1, "detect_cpu": cpu,
            "classify_replicas": 1, "classify_cpu": cpu, "threads": threads, "cost": 2 * cpu,
            "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"], "p99_ms": s["p99_ms"], "sla_attainment": s["sla_attainment"],
            "generator_overhead_ms": s.get("generator_overhead_ms"), "schedule_kept": s.get("schedule_kept"),
            "source": "measured", "run_id": run_id,
            "trace": f"run {run_id}: gateway open loop {s['windows']} windows, sent {s['sent']} = ok {s['ok']} + "
                     f"failed {s['failed']} + timeouts {s['timeouts']} (+ warm-up)",
        })

    def deploy(self, detector: str, classifier: str, cpu: float, threads: int) -> PipelineDeployment:
        steps = []
        for step, variant in (("detect", detector), ("classify", classifier)):
            batch, delay = self.spec.batching(step)
            steps.append(StepDeployment(step=step, variant=variant, folder=self.folders[variant], cpu=cpu,  # type: ignore[arg-type]
                                        threads=threads, batching=Batching(max_batch_size=batch,
                                                                           max_queue_delay_ms=delay)))
        return PipelineDeployment(name=f"sweep-{detector}-{classifier}", steps=steps)


def _latencies(run: ConfigRun) -> pd.DataFrame:
    assert run.at_rate is not None
    frame = run.at_rate.requests
    ok = frame[(frame["window"] >= 0) & (frame["status"] == "ok")]
    return pd.DataFrame({"run_id": run.run_id, "latency_ms": ok["latency_ms"].to_numpy()})


def _deployment_groups(cpus: list[float], *, local: bool) -> list[tuple[int, list[float]]]:
    """(threads, cpus) per deployment: locally one per thread count, its quota changed in place between
    allocations; elsewhere (docker --cpus, pod limits) one per allocation."""
    groups: dict[int, list[float]] = {}
    for cpu in cpus:
        groups.setdefault(max(1, math.ceil(cpu - 1e-9)), []).append(cpu)
    if local:
        return sorted(groups.items())
    return [(threads, [cpu]) for threads, values in sorted(groups.items()) for cpu in values]


def run_sweep(spec: SweepSpec, *, variants_dir: Path, backend: str = "local", dataset: Path | None = None,
              log: Callable[[str], None] = print) -> SweepResult:
    """Measure the sweep on this machine (see the module docstring); refuses bad input before starting.

    `dataset`: the YOLO data.yaml whose val images are sent (default: the first detector's own dataset).
    """
    started = time.perf_counter()
    manifests = load_manifests(variants_dir)
    spec = spec.resolved(manifests, cores=machine_cores())
    folders = {name: Path(variants_dir) / name for name in manifests}
    sweeper = _Sweeper(spec, manifests, folders, backend, log)
    detectors, classifiers = spec.detect.variants, spec.classify.variants
    images = load_images(dataset, variant_folder=folders[detectors[0]], limit=spec.images)
    fanout, detections = fanout_table({d: folders[d] for d in detectors}, images)
    pairs = list(zip(itertools.islice(itertools.cycle(detectors), max(len(detectors), len(classifiers))),
                     itertools.islice(itertools.cycle(classifiers), max(len(detectors), len(classifiers))),
                     strict=True))
    backend = "local" if backend == "auto" else backend
    groups = _deployment_groups(spec.cpus or [], local=backend == "local")
    for index, (detector, classifier) in enumerate(pairs):
        crops = cut_image_crops(images, detections[detector], manifests[classifier].imgsz)
        payloads = {"detect": step_payloads("detect", images), "classify": step_payloads("classify", crops)}
        fan = fanout.set_index("detector_variant").loc[detector]
        loads = {"detect": (spec.sla.rate_rps, 1.0),
                 "classify": (spec.sla.rate_rps * fan["calls_per_image"], fan["crops_per_call_mean"])}
        for threads, cpus in groups:
            with make_backend(backend) as deployment:
                state = deployment.deploy(sweeper.deploy(detector, classifier, max(cpus), threads))
                sweeper.warnings += [f"{detector} + {classifier}, {threads} thread(s): {w}" for w in state.warnings]
                for cpu in cpus:
                    for step, variant in (("detect", detector), ("classify", classifier)):
                        if (variant, cpu, 1) not in sweeper.done or step == "classify":
                            sweeper.measure(deployment, step, variant, cpu, threads, 1, payloads, loads, detector)
                            sweeper.done.add((variant, cpu, 1))
                    if index < spec.pipeline_pairs and cpu == max(cpus) and threads == groups[0][0]:
                        sweeper.pipeline(deployment, images, detector, classifier, cpu, threads)
                if index == 0:
                    for step, variant in (("detect", detector), ("classify", classifier)):
                        for cpu, count in sweeper.multi_configs(step, cpus):
                            deployment.scale(step, count)
                            sweeper.measure(deployment, step, variant, cpu, threads, count, payloads, loads, detector)
                        deployment.scale(step, 1)
    runs = sweeper.runs
    return SweepResult(
        spec=spec, machine=describe_machine(), fanout=fanout,
        profiles=pd.DataFrame([row for run in runs if run.identity["replicas"] == 1 for row in profile_rows(run)]),
        measured=pd.DataFrame([measured_row(run) for run in runs]),
        runs=pd.DataFrame([row for run in runs for row in run_record(run)]),
        pipeline_measured=pd.DataFrame(sweeper.pipeline_rows), warnings=sweeper.warnings,
        latencies=pd.concat([_latencies(run) for run in runs if run.at_rate is not None] or [pd.DataFrame()]),
        seconds=time.perf_counter() - started)
