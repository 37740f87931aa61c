"""The local-process backend, one concern per module.

    processes.py  start a server process, wait for its READY line, stop it (SIGTERM, then SIGKILL)
    cores.py      which cores a process is pinned to (whole free cores first, fractions packed)
    cgroups.py    CPU quotas through cgroups (v1 cpu.cfs_quota_us, v2 cpu.max) and their accounting
    placement.py  cores + quota per process, and the warnings where an allocation is not enforced
    supervisor.py replaces a replica process that died (the local restart policy)
    backend.py    LocalBackend
"""

from __future__ import annotations

from .backend import LocalBackend
from .cgroups import CpuCgroup, CpuQuotas
from .cores import CoreAllocator, available_cores

__all__ = ["CoreAllocator", "CpuCgroup", "CpuQuotas", "LocalBackend", "available_cores"]
