"""The columns profiling hands on (the contract with `optimize/`), and checks that a frame has them.

    service profiles   one replica of (step, variant, cpu, threads, max_batch) serving batches of `batch` items
    fan-out            crops per image of each detector variant (the classifier's items per request)
    candidates         one row per (step, variant, cpu, threads, batch, replicas[, detector_variant])
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..errors import ProfilingError

__all__ = ["CANDIDATE_COLUMNS", "FANOUT_COLUMNS", "PROFILE_COLUMNS", "PROFILE_REQUIRED", "ServiceProfile",
           "check_columns", "with_profile_defaults"]


class ServiceProfile(BaseModel):
    """One measured row: one replica serving batches of `batch` items (images or crops)."""

    model_config = ConfigDict(extra="allow")

    step: str
    variant: str
    model: str
    """The model without format / precision, e.g. `yolov8n`, `resnet-tiny`."""
    format: str
    precision: str
    cpu: float
    """CPUs per replica, as enforced (the cgroup quota read back), else as requested."""
    threads: int
    batch: int
    """Items in the batches this row timed."""
    service_ms: float
    """p50 time to compute one batch of `batch` items (calibrated to the replica's throughput at saturation)."""
    service_ms_p99: float
    items_per_s: float
    run_id: str
    requests: int
    windows: int
    max_batch: int = 1
    """The server's max_batch_size during the measurement."""
    overhead_ms: float = 0.0
    """p50 of everything a request spends outside the queue and the batch (transport, decoding)."""
    overhead_ms_p99: float | None = None
    """Its p99 (the simulation draws each request's overhead from a lognormal of this p50 and p99)."""
    batches: int = 0
    """Batches of this size the row is computed from."""
    saturation_share: float = 1.0
    """Share of this row's batches timed at saturation (their times include quota pauses) rather than
    under light load."""
    max_queue_delay_ms: float = 2.0
    """The server's max_queue_delay_ms during the measurement."""
    accuracy: float | None = None
    """The step's own metric from the variant manifest (detector mAP50-95, classifier top-1)."""


PROFILE_COLUMNS: list[str] = list(ServiceProfile.model_fields)
PROFILE_REQUIRED: list[str] = PROFILE_COLUMNS[: PROFILE_COLUMNS.index("windows") + 1]
"""The contract's columns: what a profile table must hold to be predicted from (`with_profile_defaults`
fills the rest: max_batch = the largest batch measured, 2 ms queue delay, no overhead)."""


def with_profile_defaults(profiles: pd.DataFrame) -> pd.DataFrame:
    """`profiles` with the optional columns filled where a table (e.g. a generated one) lacks them."""
    check_columns(profiles, PROFILE_REQUIRED, "service profile")
    out = profiles.copy()
    if "max_batch" not in out:
        out["max_batch"] = out.groupby(["step", "variant", "cpu", "threads"])["batch"].transform("max")
    for column, value in (("max_queue_delay_ms", 2.0), ("overhead_ms", 0.0), ("accuracy", float("nan"))):
        if column not in out:
            out[column] = value
    return out
FANOUT_COLUMNS: list[str] = ["detector_variant", "crops_per_image_mean", "crops_per_image_std", "images",
                             "calls_per_image", "crops_per_call_mean"]
CANDIDATE_COLUMNS: list[str] = [
    "step", "variant", "model", "format", "precision", "cpu", "threads", "batch", "replicas", "cost", "rate_rps",
    "items_per_request", "p50_ms", "p95_ms", "p99_ms", "max_throughput_rps", "utilization", "stable", "accuracy",
    "meets_step_sla", "source", "trace", "detector_variant", "predicted_p99_ms", "predicted_max_throughput_rps",
]


def check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """`frame`, or a `ProfilingError` naming the columns it lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ProfilingError(f"the {what} table lacks column(s) {', '.join(missing)}; it has "
                             f"{', '.join(map(str, frame.columns)) or 'none'} (build it with milestone_lib.profiling)")
    return frame
