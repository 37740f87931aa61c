"""The machine a sweep ran on: cores, CPU model, memory, CPU quota support, library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from ..deploy.local.cgroups import find_cpu_controller
from ..deploy.local.cores import available_cores

__all__ = ["describe_machine", "machine_cores"]

_PACKAGES = ("numpy", "onnxruntime", "grpcio", "torch", "pandas")


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity)."""
    return len(available_cores())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine() -> dict[str, Any]:
    """What the results depend on, saved beside them."""
    found = find_cpu_controller()
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cores": machine_cores(), "cpu_count": os.cpu_count(), "cpu_model": _cpu_model(), "memory_gib": memory,
        "cpu_quota": f"cgroup v{found[0]}" if not isinstance(found, str) else f"unavailable: {found}",
        "platform": platform.platform(), "python": platform.python_version(),
        "packages": {p: v for p in _PACKAGES if (v := _version(p))},
    }
