"""The local backend with real step servers and the real gateway on loopback (no mocks).

No wall-clock thresholds: each test drives requests with `Stream`, acts between phases counted in
completed requests, and checks order (which replica served a request sent in which phase) and
accounting (every request sent has exactly one outcome).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pytest
from deploy_helpers import (
    CLASSIFY,
    DETECT,
    Stream,
    assert_no_process_left,
    pipeline_spec,
)

from milestone_lib.deploy import LocalBackend, exit_hooks, query_gateway_membership
from milestone_lib.deploy.local.cgroups import PERIOD_US
from milestone_lib.errors import DeploymentError

pytestmark = pytest.mark.slow


def _accounted(stream: Stream, rows: list[dict]) -> None:
    assert len(rows) == stream.sent and len({r["id"] for r in rows}) == len(rows)  # one outcome per request
    assert all(r["status"] == "OK" or r.get("details") for r in rows)  # a failure is reported with its reason


def test_deploy_places_each_process_and_serves_through_every_replica(backend: LocalBackend, smoke_variants,
                                                                     images: list[np.ndarray]) -> None:
    state = backend.deploy(pipeline_spec(smoke_variants, detect=2, policy="round-robin"))
    assert state.replica_count("detect") == 2 and state.replica_count("classify") == 1
    assert set(state.placements) == {"gateway", "detect-0", "detect-1", "classify-0"}
    assert all(r.alive and r.address.startswith("127.0.0.1:") and r.cpu == 1.0 and r.threads == 1
               for r in [state.gateway, *state.replicas])
    for replica in [state.gateway, *state.replicas]:
        pid, cores = replica.placement["pid"], replica.placement["cores"]
        if cores is not None:
            assert sorted(psutil.Process(pid).cpu_affinity()) == cores  # really pinned
        else:
            assert any("not pinned" in w and replica.label in w for w in state.warnings), state.warnings
        if replica.placement["cgroup"] is not None:
            assert str(pid) in (Path(replica.placement["cgroup"]) / "cgroup.procs").read_text().split()
    assert state.oversubscribed == (state.capacity_cpu is not None and state.capacity_cpu < 4)
    if state.oversubscribed:
        assert "oversubscribed" in state.warnings[0] and "share cores" in state.warnings[0]
    frame = state.to_frame()
    assert list(frame["step"]) == ["gateway", "detect", "detect", "classify"] and "pid" in frame
    endpoints = backend.endpoints()
    assert query_gateway_membership(endpoints.gateway) == {k: sorted(v) for k, v in endpoints.steps.items()}
    with Stream(endpoints.gateway, images, concurrency=2) as stream:
        stream.wait_for(12)
    rows = stream.stop()
    _accounted(stream, rows)
    assert all(r["status"] == "OK" for r in rows), rows
    assert {r["detect_replica"] for r in rows} == set(endpoints.steps["detect"])  # round-robin: both used
    with pytest.raises(DeploymentError, match="already runs deployment"):
        backend.deploy(pipeline_spec(smoke_variants))


def test_scale_up_and_down_during_load_loses_no_request(backend: LocalBackend, smoke_variants,
                                                        images: list[np.ndarray]) -> None:
    backend.deploy(pipeline_spec(smoke_variants, policy="round-robin"))
    gateway = backend.endpoints().gateway
    plan = [("detect", 2), ("classify", 2), ("detect", 1), ("classify", 1)]
    before = {step: set(addrs) for step, addrs in backend.endpoints().steps.items()}
    generations, members = [backend.membership.generation], []
    with Stream(gateway, images, concurrency=3) as stream:
        for step, replicas in plan:
            stream.wait_for(stream.completed + 8)  # requests flow in every phase
            backend.scale(step, replicas)  # returns once the gateway reports the new membership
            generations.append(backend.membership.generation)
            members.append(set(backend.endpoints().steps[step]))
            stream.phase += 1
        stream.wait_for(stream.completed + 8)
    rows = stream.stop()
    _accounted(stream, rows)
    assert [r for r in rows if r["status"] != "OK"] == []  # planned scaling drops nothing
    assert generations == sorted(set(generations)), generations  # each change is a newer generation
    added_detect, added_classify = members[0] - before["detect"], members[1] - before["classify"]
    assert len(added_detect) == len(added_classify) == 1
    # Sent after the scale-up returned and before the scale-down: round-robin reaches the new replica.
    assert added_detect & {r["detect_replica"] for r in rows if r["phase"] in (1, 2)}
    # Sent after a scale-down returned: never routed to the removed replica.
    assert not {r["detect_replica"] for r in rows if r["phase"] >= 3} - members[2]
    assert not {r["classify_replica"] for r in rows if r["phase"] >= 4} - members[3] - {""}
    state = backend.status()
    assert state.replica_count("detect") == state.replica_count("classify") == 1
    assert all(r.alive for r in state.replicas) and not any("is not running" in w for w in state.warnings)
    assert backend.spec is not None and backend.spec.step("detect").replicas == 1
    assert len(backend.pids()) == 3  # the removed replicas were stopped
    with pytest.raises(DeploymentError, match="at least 1"):
        backend.scale("detect", 0)


def test_killed_replica_requests_are_retried_or_reported(backend: LocalBackend, smoke_variants,
                                                         images: list[np.ndarray]) -> None:
    backend.restart_replicas = False  # the dead replica stays dead here (restarts: test_docker_restart.py)
    state = backend.deploy(pipeline_spec(smoke_variants, detect=2, policy="round-robin"))
    victim = next(r for r in state.replicas if r.step == "detect" and r.index == 1)
    survivor = next(r for r in state.replicas if r.step == "detect" and r.index == 0)
    with Stream(backend.endpoints().gateway, images, concurrency=3) as stream:
        stream.wait_for(10)
        os.kill(victim.placement["pid"], signal.SIGKILL)
        stream.phase = 1
        stream.wait_for(stream.completed + 20)
    rows = stream.stop()
    _accounted(stream, rows)  # every request has an outcome: OK, or an explicit gRPC code
    failed = [r for r in rows if r["status"] != "OK"]
    assert all(r["phase"] == 0 for r in failed), failed  # only requests in flight at the kill may fail
    assert {r["status"] for r in failed} <= {"UNAVAILABLE", "INTERNAL", "CANCELLED"}, failed
    after_kill = [r for r in rows if r["phase"] == 1]
    assert after_kill and {r["detect_replica"] for r in after_kill} == {survivor.address}  # retried on it
    after = backend.status()
    assert not next(r for r in after.replicas if r.label == victim.label).alive
    assert any("is not running" in w and victim.label in w for w in after.warnings)


def test_a_fractional_cpu_replica_is_held_to_its_quota_by_the_kernel(backend: LocalBackend, smoke_variants) -> None:
    # A quarter CPU: any CPU-bound load exceeds it, even on a machine busy with other work, so the
    # kernel must throttle; the wall-clock 0.5 vs 1 CPU ratio is benchmarks/bench_cpu_quota.py.
    state = backend.deploy(pipeline_spec(smoke_variants, cpu=0.25))
    detect = next(r for r in state.replicas if r.step == "detect")
    assert detect.cpu == 0.25 and detect.threads == 1  # threads follow the allocation: ceil(cpu)
    groups = backend.cgroups()
    if not groups:
        assert any("not enforced" in w for w in state.warnings), state.warnings
        pytest.skip(f"no cgroup CPU quota here: {state.warnings}")
    assert groups["detect-0"].quota() == (PERIOD_US // 4, PERIOD_US)
    assert groups["classify-0"].quota() == groups["gateway"].quota() == (PERIOD_US, PERIOD_US)
    assert not any("not enforced" in w for w in state.warnings), state.warnings
    rng = np.random.default_rng(1)
    large = [rng.integers(0, 255, size=(960, 1280, 3), dtype=np.uint8) for _ in range(2)]  # server-side work
    before = groups["detect-0"].stats()
    with Stream(detect.address, large, concurrency=4, target="detect") as stream:
        stream.wait_for(40)
    rows = stream.stop()
    _accounted(stream, rows)
    after = groups["detect-0"].stats()
    periods = after["nr_periods"] - before["nr_periods"]
    assert after["nr_throttled"] > before["nr_throttled"] and after["throttled_s"] > before["throttled_s"]
    if "usage_s" in after:  # the kernel's own CPU time: at most the quota in each period it ran
        used = after["usage_s"] - before["usage_s"]
        assert 0 < used <= periods * 0.25 * PERIOD_US / 1e6 * 1.1 + 0.02, (used, periods)
    paths = [Path(r.placement["cgroup"]) for r in [state.gateway, *state.replicas]]
    assert all(p.is_dir() for p in paths)
    backend.teardown()
    assert not any(p.exists() for p in paths) and not paths[0].parent.exists()  # removed on teardown


def test_exception_inside_with_leaves_no_process(tmp_path: Path, smoke_variants) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), LocalBackend(workdir=tmp_path) as backend:
        backend.deploy(pipeline_spec(smoke_variants))
        pids = backend.pids()
        assert backend in exit_hooks.registered()  # stopped at exit even if the `with` never ends
        raise RuntimeError("boom")
    assert len(pids) == 3 and backend not in exit_hooks.registered()
    assert_no_process_left(pids)
    with pytest.raises(DeploymentError, match="nothing is deployed"):
        backend.status()


def test_a_replica_that_cannot_start_fails_the_deploy_and_stops_the_rest(tmp_path: Path, smoke_variants) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((smoke_variants[DETECT] / "manifest.json").read_text())
    manifest["artifact"] = "missing.onnx"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    spec = pipeline_spec({DETECT: broken, CLASSIFY: smoke_variants[CLASSIFY]})
    backend = LocalBackend(workdir=tmp_path / "run")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(DeploymentError, match=r"detect-0 exited with code \d+ before it was ready"):
        backend.deploy(spec)
    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert_no_process_left(sorted(leftover))
    assert backend.pids() == [] and backend.cgroups() == {}


_SCRIPT = """
import sys, time
from pathlib import Path
from milestone_lib.deploy import LocalBackend, PipelineDeployment, StepDeployment
spec = PipelineDeployment(steps=[
    StepDeployment(step="detect", variant="d", folder=Path(sys.argv[1])),
    StepDeployment(step="classify", variant="c", folder=Path(sys.argv[2]))])
backend = LocalBackend(workdir=Path(sys.argv[3]))
backend.deploy(spec)
print("PIDS", *backend.pids(), flush=True)
if sys.argv[4] == "exit":
    sys.exit(0)  # no teardown call: atexit does it
time.sleep(120)  # SIGTERM arrives here
"""


@pytest.mark.parametrize("ending", ["exit", "sigterm"])
def test_interpreter_exit_and_sigterm_tear_down(tmp_path: Path, smoke_variants, ending: str) -> None:
    args = [sys.executable, "-c", textwrap.dedent(_SCRIPT), str(smoke_variants[DETECT]),
            str(smoke_variants[CLASSIFY]), str(tmp_path / "run"), ending]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("PIDS"), line
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
        if ending == "sigterm":
            proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert_no_process_left(pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:  # never leave a server behind, even when the assertion failed
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
