"""Which cores a local process is pinned to: whole free cores first, fractions packed, never guessed.

A replica allocated `cpu` CPUs takes ceil(cpu) cores with room for cpu / ceil(cpu) each; two 0.5
replicas share one core. When no core has room, the process is not pinned (it runs on any core,
held to its share by its CPU quota) and the backend says so in the deployment's warnings.
"""

from __future__ import annotations

import math
import os

from ...errors import DeploymentError

__all__ = ["CoreAllocator", "available_cores"]

_EPS = 1e-9


def available_cores() -> list[int]:
    """The cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    return sorted(os.sched_getaffinity(0))


class CoreAllocator:
    """Tracks the CPU load placed on each core and hands out cores with room for an allocation."""

    def __init__(self, available: list[int]) -> None:
        if not available:
            raise DeploymentError("no CPU core is available to this process; check its CPU affinity")
        self.available = sorted(available)
        self.load = {core: 0.0 for core in self.available}

    def take(self, cpu: float) -> list[int] | None:
        """ceil(cpu) cores that each have room for their share, least loaded first; None when none fit."""
        count = max(1, math.ceil(cpu - _EPS))
        share = cpu / count
        roomy = [c for c in self.available if self.load[c] + share <= 1.0 + _EPS]
        if len(roomy) < count:
            return None
        chosen = sorted(roomy, key=lambda c: (self.load[c], c))[:count]
        for core in chosen:
            self.load[core] += share
        return sorted(chosen)

    def release(self, cores: list[int] | None, cpu: float) -> None:
        """Give back what `take(cpu)` returned."""
        if not cores:
            return
        share = cpu / len(cores)
        for core in cores:
            if core in self.load:
                self.load[core] = max(0.0, self.load[core] - share)

    @property
    def capacity(self) -> float:
        return float(len(self.available))
