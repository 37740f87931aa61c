"""CPU quotas through cgroups: the real controller where this process may write it, and the v2 file format."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from milestone_lib.deploy.local.cgroups import (
    PERIOD_US,
    CpuCgroup,
    CpuQuotas,
    find_cpu_controller,
)


def test_a_real_cgroup_holds_a_busy_process_and_is_removed() -> None:
    quotas = CpuQuotas.create(f"milestone-test-{os.getpid()}")
    if quotas.problem:
        assert "cgroup" in quotas.problem and quotas.limit("x", 1, 0.5) is None
        pytest.skip(f"no writable cgroup cpu controller here: {quotas.problem}")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        group = quotas.limit("busy", busy.pid, 0.2)
        assert group is not None and group.quota() == (PERIOD_US // 5, PERIOD_US)
        assert str(busy.pid) in (group.path / "cgroup.procs").read_text().split()
        before = group.stats()
        time.sleep(0.5)  # let a few CFS periods pass
        after = group.stats()
        assert after["nr_throttled"] > before["nr_throttled"]  # a busy loop always exceeds 0.2 CPU
    finally:
        busy.kill()
        busy.wait()
    assert quotas.remove() == [] and not group.path.exists() and quotas.parent is not None
    assert not quotas.parent.exists()


def test_cgroup_v2_files_quota_and_accounting(tmp_path: Path) -> None:
    group = CpuCgroup(2, tmp_path)
    group.set_cpu(0.5)
    assert (tmp_path / "cpu.max").read_text() == f"{PERIOD_US // 2} {PERIOD_US}" and group.quota() == (50000, 100000)
    (tmp_path / "cpu.max").write_text("max 100000")
    assert group.quota() == (-1, 100000)
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 300000\n")
    assert group.stats() == {"nr_periods": 40, "nr_throttled": 7, "throttled_s": 0.3, "usage_s": 2.5}
    group.set_cpu(0.001)
    assert group.quota()[0] == 1000  # the kernel's minimum quota


def test_the_controller_is_found_or_the_reason_is_given() -> None:
    found = find_cpu_controller()
    if isinstance(found, str):
        assert "cgroup" in found
    else:
        version, own, _ = found
        assert version in (1, 2) and own.is_dir()


def test_cgroups_left_by_a_deployer_that_died_are_removed_by_the_next_one() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = CpuQuotas.create(f"milestone-{dead.pid}-killed")
    if left.problem or left.parent is None:
        pytest.skip(f"no writable cgroup cpu controller here: {left.problem}")
    (left.parent / "detect-0").mkdir()  # what a SIGKILLed deployer leaves: empty groups, no teardown
    mine = CpuQuotas.create(f"milestone-{os.getpid()}-alive")
    try:
        assert not left.parent.exists() and mine.parent is not None and mine.parent.exists()
    finally:
        assert mine.remove() == []
