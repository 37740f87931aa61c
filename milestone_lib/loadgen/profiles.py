"""Arrival profiles of the open loop and the send schedule they give.

A profile is data: `ConstantRate` (evenly spaced), `PoissonRate` (exponential gaps, seeded) or
`TraceRate` (one rate per second, e.g. from production logs via `TraceRate.from_csv`).
`schedule` turns one into send times in seconds from the start of the run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LoadGenError

__all__ = ["ConstantRate", "LoadProfile", "PoissonRate", "TraceRate", "run_duration", "schedule"]


@dataclass(frozen=True)
class ConstantRate:
    """`rate` requests per second, evenly spaced."""

    rate: float

    poisson = False

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        return [(0.0, total_s, self.rate)]


@dataclass(frozen=True)
class PoissonRate:
    """Poisson arrivals with mean `rate` per second (exponential gaps), reproducible by `seed`."""

    rate: float
    seed: int = 0

    poisson = True

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        return [(0.0, total_s, self.rate)]


@dataclass(frozen=True)
class TraceRate:
    """A per-second rate trace; the warm-up runs at the first rate."""

    rates: tuple[float, ...]
    poisson: bool = False
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return float(len(self.rates))

    def segments(self, total_s: float, warmup_s: float) -> list[tuple[float, float, float]]:
        segs = [(0.0, warmup_s, self.rates[0])] if warmup_s > 0 else []
        segs += [(warmup_s + i, warmup_s + i + 1, r) for i, r in enumerate(self.rates)]
        return [(a, min(b, total_s), r) for a, b, r in segs if a < total_s]

    @classmethod
    def from_csv(cls, path: str | Path, *, column: str = "rate", poisson: bool = False, seed: int = 0) -> TraceRate:
        """Read one rate per row from `column` (requests per second, one row per second)."""
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise LoadGenError(
                    f"trace '{path}' has no column '{column}' (columns: {reader.fieldnames}); "
                    "write one rate per second under a 'rate' header or pass `column=`"
                )
            rates = tuple(float(row[column]) for row in reader)
        if not rates or any(r < 0 for r in rates):
            raise LoadGenError(f"trace '{path}' needs at least one non-negative rate; it has {rates[:5]}")
        return cls(rates=rates, poisson=poisson, seed=seed)


LoadProfile = ConstantRate | PoissonRate | TraceRate


def run_duration(profile: LoadProfile, duration_s: float | None) -> float:
    """The measured duration: `duration_s`, or a trace's own length when none is given."""
    if isinstance(profile, TraceRate) and duration_s is None:
        return profile.duration_s
    if duration_s is None or duration_s <= 0:
        raise LoadGenError(f"duration_s={duration_s} is not a positive duration; pass one (seconds)")
    return float(duration_s)


def schedule(profile: LoadProfile, *, duration_s: float | None, warmup_s: float = 0.0) -> np.ndarray:
    """Send times in seconds from the start, covering warm-up plus `duration_s`.

    The arrivals are the points where the cumulative rate crosses 0, 1, 2, ... (evenly spaced),
    or the crossings of a unit-rate Poisson process (time rescaling) for Poisson profiles.
    """
    total_s = warmup_s + run_duration(profile, duration_s)
    segs = [(a, b, r) for a, b, r in profile.segments(total_s, warmup_s) if b > a]
    mass = np.cumsum([0.0] + [(b - a) * r for a, b, r in segs])
    if profile.poisson:
        rng = np.random.default_rng(profile.seed)
        n = int(mass[-1] + 10 * math.sqrt(mass[-1] + 1) + 10)
        points = np.cumsum(rng.exponential(1.0, size=n))
    else:
        points = np.arange(math.ceil(mass[-1] - 1e-9), dtype=float)
    points = points[points < mass[-1]]
    index = np.clip(np.searchsorted(mass, points, side="right") - 1, 0, len(segs) - 1)
    starts = np.array([a for a, _, _ in segs])[index]
    rates = np.array([r for _, _, r in segs])[index]
    return starts + (points - mass[index]) / rates
