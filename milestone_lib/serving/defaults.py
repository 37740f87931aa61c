"""Serving defaults per step: the batching a step server uses when its flags do not say.

Chosen from `benchmarks/bench_throughput_per_cpu.py` (one replica pinned to T cores, driven to
saturation, against the same model in process on the same cores; 16-core machine, 1/2/4 threads,
yolov8n at 128 px, ResNet-tiny at 64 px); the figures behind each choice are in the comments.
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
    # Detector: replica images/s by batch 1/4/8/16 were 144/175/243/246 (1 thread), 201/301/358/359
    # (2), 201/387/410/470 (4): 8 is the smallest batch within 10 % of the best at 1 and 2 threads
    # and within 13 % at 4, where a batch of 16 would double the time an image waits for its batch.
    "detect": StepDefaults(max_batch_size=8, max_queue_delay_ms=2.0),
    # Classifier: a crop costs 0.2-0.4 ms, so each call's fixed cost matters; crops/s by batch
    # 1/4/8/16 (4 crops per request) were 1519/1924/2180/1920 (1 thread), 1873/2467/2713/3085 (2),
    # 1927/3157/3719/4345 (4): 16 is best at 2 and 4 threads and within 12 % at 1.
    # At saturation batches fill at once; the 2 ms delay only bounds what a lone request waits.
    "classify": StepDefaults(max_batch_size=16, max_queue_delay_ms=2.0),
}


def step_defaults(step: str) -> StepDefaults:
    """The defaults of `step` ('detect' or 'classify'); a raw-tensor or unknown step gets the classifier's."""
    return STEP_DEFAULTS.get(step, STEP_DEFAULTS["classify"])
