"""Candidate tables made from a few numbers, for tests and benchmarks (labelled `source="synthetic"`).

A replica of a variant serves a batch of b items in `ms * (0.6 + 0.4 b) / cpu` milliseconds; its
p99 at utilization rho is the batch time times (1 + ln(100) rho / (1 - rho)), an M/M/1-shaped
tail. This is no model of the real servers (profiling/ has that); it only has the shapes that
matter to the optimizer: more CPU or replicas lower latency and raise cost, the classifier's load
grows with its detector's fan-out, and saturation makes a row unusable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

__all__ = ["SyntheticGrid", "random_grid"]


@dataclass(frozen=True)
class SyntheticGrid:
    """Per-variant service times, fan-outs, accuracies and the grid of CPU / batch / replicas."""

    detect_ms: dict[str, float]
    """Milliseconds for one image at 1 CPU, per detector variant."""
    classify_ms: dict[str, float]
    """Milliseconds for one crop at 1 CPU, per classifier variant."""
    fanout: dict[str, float]
    """Crops per image of each detector variant."""
    pair_accuracy: dict[tuple[str, str], float]
    step_accuracy: dict[str, float] = field(default_factory=dict)
    cpus: Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    batches: Sequence[int] = (1, 4)
    replicas: Sequence[int] = (1, 2, 3, 4)

    def with_changes(self, **changes: object) -> SyntheticGrid:
        return replace(self, **changes)

    def fanout_table(self) -> pd.DataFrame:
        return pd.DataFrame({"detector_variant": list(self.fanout), "crops_per_image_mean": list(self.fanout.values()),
                             "crops_per_image_std": 0.0})

    def pipeline_accuracy(self, metric: str = "mAP50-95") -> pd.DataFrame:
        return pd.DataFrame([{"detector": d, "classifier": c, metric: a} for (d, c), a in self.pair_accuracy.items()])

    def candidates(self, rate_rps: float, *, ignore_fanout: bool = False) -> pd.DataFrame:
        """Contract columns (profiling.candidate_table's) for every row of the grid at `rate_rps`."""
        rows = [_row("detect", v, ms, 1.0, rate_rps, None, self) for v, ms in self.detect_ms.items()]
        for d, crops in self.fanout.items():
            items = 1.0 if ignore_fanout else crops
            rows += [_row("classify", v, ms, items, rate_rps, d, self) for v, ms in self.classify_ms.items()]
        return pd.DataFrame([r for group in rows for r in group])


def _row(step: str, variant: str, ms: float, items: float, rate: float, upstream: str | None,
         grid: SyntheticGrid) -> list[dict[str, object]]:
    out = []
    for cpu in grid.cpus:
        for batch in grid.batches:
            batch_ms = ms * (0.6 + 0.4 * batch) / cpu
            # Below one item per request, images without crops skip the step: fewer calls of one item each.
            calls, per_call = rate * min(items, 1.0), max(items, 1.0)
            per_request_ms = batch_ms * per_call / batch
            for r in grid.replicas:
                max_rps = r * 1000.0 / per_request_ms
                rho = calls / max_rps
                service = ms * (0.6 + 0.4 * min(batch, max(1.0, rho * batch))) / cpu * per_call
                p99 = service * (1 + math.log(100) * rho / (1 - rho)) if rho < 1 else math.inf
                out.append({"step": step, "variant": variant, "model": variant.split("-")[0], "format": "synthetic",
                            "precision": "fp32", "cpu": float(cpu), "threads": max(1, math.ceil(cpu)),
                            "batch": int(batch), "replicas": int(r), "cost": r * float(cpu), "rate_rps": rate,
                            "items_per_request": items, "p50_ms": service * (1 + rho), "p95_ms": p99 * 0.8,
                            "p99_ms": p99, "max_throughput_rps": max_rps,
                            "accuracy": grid.step_accuracy.get(variant, np.nan), "meets_step_sla": None,
                            "source": "synthetic", "trace": "optimize.synthetic", "detector_variant": upstream})
    return out


def random_grid(seed: int, *, detectors: int = 3, classifiers: int = 3, cpus: Sequence[float] = (0.25, 0.5, 1, 2),
                batches: Sequence[int] = (1, 4), replicas: Sequence[int] = (1, 2, 3, 4)) -> SyntheticGrid:
    """A random grid: service times, fan-outs and pair accuracies drawn from `seed`."""
    rng = np.random.default_rng(seed)
    dets = [f"det{k}" for k in range(detectors)]
    clss = [f"cls{k}" for k in range(classifiers)]
    pair = {(d, c): float(rng.uniform(0.2, 0.9)) for d in dets for c in clss if rng.random() > 0.1}
    return SyntheticGrid(
        detect_ms={d: float(rng.uniform(5, 120)) for d in dets},
        classify_ms={c: float(rng.uniform(1, 15)) for c in clss},
        fanout={d: float(rng.uniform(0.5, 6)) for d in dets},
        pair_accuracy=pair or {(dets[0], clss[0]): 0.5},
        step_accuracy={v: float(rng.uniform(0.3, 0.9)) for v in dets + clss},
        cpus=cpus, batches=batches, replicas=replicas)
