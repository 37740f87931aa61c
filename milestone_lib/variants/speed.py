"""Model speed, a micro-benchmark: the runtime's time per image by batch size and thread count.

This is the `latency_ms` of a manifest. Pre- and post-processing are the same for every variant
of a step, so they are left out here; the served pipeline's latency and its breakdown per step
(notebook 03, `report/`) include them.

`measure_latency_side_by_side` times the variants of one model in interleaved rounds, so that
the drift of a shared or virtual machine (which moved one model by 20 % between runs here) falls
on every variant alike and the fp32 / INT8 ratio holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..contracts import VariantManifest
from ..runtimes import load_runtime

__all__ = ["latency_key", "measure_latency", "measure_latency_side_by_side"]


def latency_key(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def measure_latency(
    manifest: VariantManifest,
    folder: Path,
    *,
    batches: Sequence[int] = (1, 8),
    threads: Sequence[int] = (1, 2),
    seconds: float = 0.3,
    seed: int = 0,
) -> dict[str, float]:
    """Median milliseconds per image for each (batch, threads) of one variant; keys like 'b1_t1'."""
    return measure_latency_side_by_side([(manifest, folder)], batches=batches, threads=threads,
                                        seconds_per_variant=seconds, seed=seed)[0]


def measure_latency_side_by_side(
    variants: Sequence[tuple[VariantManifest, Path]],
    *,
    batches: Sequence[int] = (1, 8),
    threads: Sequence[int] = (1, 2),
    seconds_per_variant: float = 0.3,
    rounds: int = 5,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Median milliseconds per image for each variant and (batch, threads), timed in alternating rounds.

    All variants take the same input (they are variants of one model). Returns one dict per
    variant, in order, with keys like 'b1_t1'.
    """
    if not variants:
        return []
    rng = np.random.default_rng(seed)
    imgsz = variants[0][0].imgsz
    results: list[dict[str, float]] = [{} for _ in variants]
    slot = seconds_per_variant / rounds
    for thread_count in threads:
        runtimes = [load_runtime(manifest, folder, threads=thread_count) for manifest, folder in variants]
        for batch in batches:
            tensor = rng.random((batch, 3, imgsz, imgsz), dtype=np.float32)
            for runtime in runtimes:
                for _ in range(2):
                    runtime.run(tensor)  # warm-up: first runs allocate and pick kernels
            timings: list[list[float]] = [[] for _ in variants]
            for _ in range(rounds):
                for index, runtime in enumerate(runtimes):
                    started = time.perf_counter()
                    while len(timings[index]) < 1 or time.perf_counter() - started < slot:
                        t0 = time.perf_counter()
                        runtime.run(tensor)
                        timings[index].append(time.perf_counter() - t0)
            for index, samples in enumerate(timings):
                results[index][latency_key(batch, thread_count)] = float(np.median(samples) * 1000 / batch)
        del runtimes
    return results
