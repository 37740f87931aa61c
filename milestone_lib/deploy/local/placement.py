"""Where local processes run: pinned cores and a cgroup CPU quota per process, and what is not enforced.

A process allocated `cpu` CPUs is pinned to cores with room for it (`cores.CoreAllocator`) and held
to `cpu` CPUs by a CFS quota (`cgroups.CpuQuotas`). Either can be turned off, or be impossible
here (no free core, no cgroup access); `warnings()` then says what the allocation really is.
"""

from __future__ import annotations

from ..options import LocalOptions
from .cgroups import CpuQuotas
from .cores import CoreAllocator
from .processes import LocalProcess, pin

__all__ = ["Placer"]


class Placer:
    """Places the processes of one deployment; `remove()` deletes its cgroups on teardown."""

    def __init__(self, cores: list[int], *, name: str, pin: bool = True, cpu_quota: bool = True) -> None:
        self.cores = sorted(cores)
        self.allocator = CoreAllocator(self.cores)
        self.name = name
        self.pin = pin
        self.cpu_quota = cpu_quota
        self.quotas: CpuQuotas | None = None
        self._options: dict[str, LocalOptions] = {}

    @property
    def capacity(self) -> float:
        return self.allocator.capacity

    def place(self, proc: LocalProcess, options: LocalOptions) -> None:
        """Pin `proc` and put it under its CPU quota, as far as this machine allows."""
        self._options[proc.label] = options
        if self.pin and options.pin:
            proc.cores = self.allocator.take(proc.cpu)
            if proc.cores is not None:
                pin(proc.pid, proc.cores)
        if self.cpu_quota and options.cpu_quota:
            if self.quotas is None:
                self.quotas = CpuQuotas.create(self.name)
            proc.cgroup = self.quotas.limit(proc.label, proc.pid, proc.cpu)

    def release(self, proc: LocalProcess) -> None:
        """Give back a stopped process's cores and delete its cgroup."""
        self.allocator.release(proc.cores, proc.cpu)
        proc.cores = None
        if self.quotas is not None:
            self.quotas.release(proc.label)
        self._options.pop(proc.label, None)

    def remove(self) -> list[str]:
        """Delete every cgroup of the deployment (its processes must be gone); paths left behind."""
        left = self.quotas.remove() if self.quotas is not None else []
        self.quotas = None
        self.allocator = CoreAllocator(self.cores)
        self._options.clear()
        return left

    def warnings(self, processes: list[LocalProcess]) -> list[str]:
        """What the allocations of `processes` really are, where that differs from the spec."""
        out: list[str] = []
        offered = f"{len(self.cores)} ({','.join(map(str, self.cores))})"
        requested = sum(p.cpu for p in processes)
        if requested > self.capacity + 1e-9:
            out.append(
                f"oversubscribed: the deployment asks for {requested:g} CPUs (gateway included) but this machine "
                f"offers {offered}, so processes share cores; latencies include CPU contention and scaling "
                "cannot add compute here"
            )
        pinned: dict[int, list[str]] = {}
        for proc in processes:
            for core in proc.cores or []:
                pinned.setdefault(core, []).append(proc.label)
        shared = {core: labels for core, labels in sorted(pinned.items()) if len(labels) > 1}
        if shared:
            detail = "; ".join(f"core {c}: {', '.join(labels)}" for c, labels in shared.items())
            out.append(f"processes share cores [{detail}]; each gets its CPU share only where its quota is enforced")
        if not self.pin:
            out.append("processes are not pinned to cores (pin=False); the OS schedules them freely")
        else:
            loose = [p.label for p in processes if p.cores is None and self._wants(p, "pin")]
            if loose:
                out.append(f"not pinned ({', '.join(loose)}): no core has room for its allocation, so it runs on "
                           f"any of cores {','.join(map(str, self.cores))} next to the others")
        unenforced = [p.label for p in processes if p.cgroup is None]
        if unenforced:
            if not self.cpu_quota:
                why = "cpu_quota=False"
            elif self.quotas is not None and self.quotas.problem:
                why = self.quotas.problem
            else:
                why = "local.cpu_quota is false for them"
            out.append(f"CPU allocation not enforced for {', '.join(unenforced)} ({why}); each may use more "
                       "CPU than its `cpu`")
        return out

    def _wants(self, proc: LocalProcess, option: str) -> bool:
        options = self._options.get(proc.label)
        return bool(getattr(options, option, True))
