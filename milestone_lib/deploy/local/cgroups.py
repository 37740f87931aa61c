"""CPU quotas for local processes through cgroups (v1 `cpu` controller, or v2 `cpu.max`).

    quotas = CpuQuotas.create("detect-classify-1234")   # one parent cgroup per deployment
    group = quotas.limit("detect-0", pid, cpu=0.5)       # child cgroup, quota = cpu x period
    group.stats()                                        # the kernel's own accounting
    quotas.remove()                                      # on teardown, once the processes are gone

Creating cgroups needs write access to the controller (root, or a delegated subtree). Where that is
missing `CpuQuotas.create` returns an instance whose `problem` says why and whose `limit` returns
None, so the caller can report an unenforced allocation instead of failing the deployment.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PERIOD_US", "CpuCgroup", "CpuQuotas", "find_cpu_controller"]

PERIOD_US = 100_000
"""CFS period: the quota is cpu x this many microseconds of CPU time per period."""
_OWNED = re.compile(r"^milestone-(\d+)-")
"""Deployment cgroups are named `milestone-<deployer pid>-...`, so leftovers of a dead deployer are known."""


def _remove_leftovers(folder: Path) -> None:
    """Delete the cgroups of deployers that died without teardown (SIGKILL); the kernel refuses busy ones."""
    for parent in folder.glob("milestone-*"):
        match = _OWNED.match(parent.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        for child in [c for c in parent.iterdir() if c.is_dir()] + [parent]:
            try:
                child.rmdir()
            except OSError:
                pass  # still holds a process (an orphaned server): left for its owner to stop


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, mount root, fs type, super options) of every cgroup mount."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if tail and tail[0] in ("cgroup", "cgroup2"):
            out.append((fields[4], fields[3], tail[0], set(tail[2].split(",")) if len(tail) > 2 else set()))
    return out


def _own_path(controller: str | None) -> str:
    """This process's cgroup path for a v1 controller, or the v2 path when `controller` is None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller and controller in names.split(",")):
            return path
    return "/"


def _under(mount: str, root: str, path: str) -> Path:
    relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
    return Path(mount) / ("" if relative == "." else relative)


def find_cpu_controller() -> tuple[int, Path, Path | None] | str:
    """(version, this process's cgroup dir of the cpu controller, v1 cpuacct dir) or why there is none."""
    try:
        mounts = _mounts()
    except OSError as exc:
        return f"cannot read /proc/self/mountinfo ({exc})"
    v1 = {name: (point, root) for point, root, kind, opts in mounts if kind == "cgroup"
          for name in ("cpu", "cpuacct") if name in opts}
    if "cpu" in v1:
        acct = v1.get("cpuacct")
        acct_dir = _under(*acct, _own_path("cpuacct")) if acct else None
        return 1, _under(*v1["cpu"], _own_path("cpu")), acct_dir
    for point, root, kind, _ in mounts:
        if kind == "cgroup2":
            own = _under(point, root, _own_path(None))
            if "cpu" in (own / "cgroup.controllers").read_text().split():
                return 2, own, None
            return f"the cgroup v2 tree at {own} has no cpu controller"
    return "no cgroup cpu controller is mounted"


@dataclass
class CpuCgroup:
    """One process's cgroup: its quota files and the kernel's CPU accounting."""

    version: int
    path: Path
    acct: Path | None = None

    def add(self, pid: int) -> None:
        """Move the whole process (all its threads) into this cgroup; later threads inherit it."""
        for folder in filter(None, (self.path, self.acct)):
            (folder / "cgroup.procs").write_text(str(pid))

    def set_cpu(self, cpu: float) -> None:
        quota = max(1000, round(cpu * PERIOD_US))  # the kernel's minimum quota is 1 ms
        if self.version == 1:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")

    def quota(self) -> tuple[int, int]:
        """(quota_us, period_us) as the kernel holds them; quota -1 means unlimited."""
        if self.version == 1:
            return (int((self.path / "cpu.cfs_quota_us").read_text()),
                    int((self.path / "cpu.cfs_period_us").read_text()))
        quota, period = (self.path / "cpu.max").read_text().split()
        return (-1 if quota == "max" else int(quota)), int(period)

    def stats(self) -> dict[str, float]:
        """nr_periods, nr_throttled, throttled_s and (where accounted) usage_s, from the kernel."""
        raw = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if line.strip())
        out = {"nr_periods": float(raw.get("nr_periods", 0)), "nr_throttled": float(raw.get("nr_throttled", 0))}
        if self.version == 1:
            out["throttled_s"] = int(raw.get("throttled_time", 0)) / 1e9
            if self.acct is not None:
                out["usage_s"] = int((self.acct / "cpuacct.usage").read_text()) / 1e9
        else:
            out["throttled_s"] = int(raw.get("throttled_usec", 0)) / 1e6
            out["usage_s"] = int(raw.get("usage_usec", 0)) / 1e6
        return out

    def remove(self, timeout_s: float = 5.0) -> bool:
        """Delete the cgroup once its processes have exited; False if it still holds one."""
        deadline = time.monotonic() + timeout_s
        for folder in filter(None, (self.path, self.acct)):
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while an exiting process is still listed
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
        return True


@dataclass
class CpuQuotas:
    """The cgroups of one deployment: a parent per deployment, a child per process."""

    name: str
    version: int = 0
    parent: Path | None = None
    acct_parent: Path | None = None
    problem: str | None = None
    """Why quotas cannot be enforced here; None when they can."""
    groups: dict[str, CpuCgroup] = field(default_factory=dict)

    @classmethod
    def create(cls, name: str) -> CpuQuotas:
        """Quotas under `<this process's cgroup>/<name>`; name it `milestone-<pid>-...` (see `_OWNED`)."""
        found = find_cpu_controller()
        if isinstance(found, str):
            return cls(name, problem=found)
        version, own, acct = found
        quotas = cls(name, version=version, parent=own / name, acct_parent=acct / name if acct else None)
        try:
            if version == 2 and "cpu" not in (own / "cgroup.subtree_control").read_text().split():
                (own / "cgroup.subtree_control").write_text("+cpu")
            for folder in filter(None, (own, acct)):
                _remove_leftovers(folder)
            quotas.parent.mkdir(exist_ok=True)  # type: ignore[union-attr]
            if quotas.acct_parent is not None:
                try:
                    quotas.acct_parent.mkdir(exist_ok=True)
                except OSError:
                    quotas.acct_parent = None  # quotas still work; usage_s is left out of stats()
        except OSError as exc:
            quotas.problem = f"cannot create a cgroup under {own} ({exc.strerror or exc}); run as root or " \
                             "delegate a cgroup subtree to this user"
        return quotas

    def limit(self, label: str, pid: int, cpu: float) -> CpuCgroup | None:
        """Hold process `pid` to `cpu` CPUs; None (and `problem` set) when that cannot be done."""
        if self.problem is not None or self.parent is None:
            return None
        group = CpuCgroup(self.version, self.parent / label,
                          self.acct_parent / label if self.acct_parent is not None else None)
        try:
            for folder in filter(None, (group.path, group.acct)):
                folder.mkdir(exist_ok=True)
            group.set_cpu(cpu)
            group.add(pid)
        except ProcessLookupError:
            return group  # it died at start; waiting for READY reports why
        except OSError as exc:
            self.problem = f"cannot set a CPU quota in {group.path} ({exc.strerror or exc})"
            group.remove(timeout_s=0)
            return None
        self.groups[label] = group
        return group

    def release(self, label: str) -> None:
        group = self.groups.pop(label, None)
        if group is not None:
            group.remove()

    def remove(self) -> list[str]:
        """Delete every cgroup of this deployment; the paths that could not be deleted."""
        left = [str(g.path) for label in list(self.groups) if not (g := self.groups.pop(label)).remove()]
        for folder in filter(None, (self.parent, self.acct_parent)):
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(str(folder))
        return left
