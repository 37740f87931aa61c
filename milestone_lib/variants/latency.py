"""Raw in-process latency of a variant: model time per image by batch size and thread count.

Pre- and post-processing are the same for every variant of a step, so they are left out here;
the serving measurements (notebook 03) include them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..inference import load_runtime
from .manifest import VariantManifest

__all__ = ["measure_latency", "latency_key"]


def latency_key(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def measure_latency(
    manifest: VariantManifest,
    folder: Path,
    *,
    batches: Sequence[int] = (1, 8),
    threads: Sequence[int] = (1, 2),
    min_seconds: float = 0.3,
    min_runs: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Median milliseconds per image for each (batch, threads); keys like 'b1_t1'."""
    rng = np.random.default_rng(seed)
    shape = (3, manifest.imgsz, manifest.imgsz)
    results: dict[str, float] = {}
    for thread_count in threads:
        runtime = load_runtime(manifest, folder, threads=thread_count)
        for batch in batches:
            tensor = rng.random((batch, *shape), dtype=np.float32)
            for _ in range(2):
                runtime.run(tensor)  # warm-up: first runs allocate and pick kernels
            timings = []
            started = time.perf_counter()
            while len(timings) < min_runs or time.perf_counter() - started < min_seconds:
                t0 = time.perf_counter()
                runtime.run(tensor)
                timings.append(time.perf_counter() - t0)
            results[latency_key(batch, thread_count)] = float(np.median(timings) * 1000 / batch)
    return results
