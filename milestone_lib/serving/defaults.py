"""Serving defaults per step: the batching a step server uses when its flags do not say.

Chosen from `benchmarks/bench_throughput_per_cpu.py` (a replica driven to saturation against the
same model in process, 1/2/4 threads); the figures behind each choice are in its docstring.
`max_request_rows` is what ModelConfig declares as `max_batch_size`: the most rows (images,
crops) one request may carry. A request within it but above `max_batch_size` is computed in
slices of `max_batch_size` (`batcher.split_oversized`); one above it gets INVALID_ARGUMENT.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STEP_DEFAULTS", "StepDefaults", "step_defaults"]


@dataclass(frozen=True)
class StepDefaults:
    """Batching of one step server (the CLI flags of the same names override each field)."""

    max_batch_size: int
    """Most rows the dynamic batcher computes in one model call (ModelConfig: preferred_batch_size)."""
    max_queue_delay_ms: float
    """Longest the oldest waiting request holds a batch open for more requests."""
    max_queue_size: int = 64
    """Most requests waiting; one more is refused with RESOURCE_EXHAUSTED."""
    max_request_rows: int = 512
    """Most rows one request may carry (ModelConfig: max_batch_size). The detector keeps at most
    300 detections per image, so the crops of any one image fit one classify request."""


STEP_DEFAULTS: dict[str, StepDefaults] = {
    # Detector: batches beyond 4 images gain under 5 % per image on 1-4 threads, and each
    # waiting image adds its full compute to the latency of the others.
    "detect": StepDefaults(max_batch_size=4, max_queue_delay_ms=2.0),
    # Classifier: a crop costs little, so per-call overhead dominates; batches of 16 amortise it.
    "classify": StepDefaults(max_batch_size=16, max_queue_delay_ms=2.0),
}


def step_defaults(step: str) -> StepDefaults:
    """The defaults of `step` ('detect' or 'classify'); a raw-tensor or unknown step gets the classifier's."""
    return STEP_DEFAULTS.get(step, STEP_DEFAULTS["classify"])
