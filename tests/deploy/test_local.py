"""The local backend with real step servers and the real gateway on loopback (no mocks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from deploy_helpers import CLASSIFY, DETECT, assert_no_process_left, pipeline_spec

from milestone_lib import loadgen
from milestone_lib.deploy import LocalBackend, query_gateway_membership
from milestone_lib.errors import DeploymentError

pytestmark = pytest.mark.slow


def _accounted(result: loadgen.LoadResult, sent: int) -> None:
    df = result.requests
    assert len(df) == sent and df["request"].is_unique
    assert set(df["status"]) <= {"ok", "failed", "timeout"} and df["latency_ms"].notna().all()
    assert "CLIENT_ERROR" not in set(df["code"])


def test_deploy_records_cores_and_serves_through_every_replica(backend: LocalBackend, smoke_variants,
                                                               images: list[np.ndarray]) -> None:
    state = backend.deploy(pipeline_spec(smoke_variants, detect=2))
    assert state.replica_count("detect") == 2 and state.replica_count("classify") == 1
    assert all(r.alive and r.address.startswith("127.0.0.1:") for r in [state.gateway, *state.replicas])
    assignment = state.core_assignment
    assert set(assignment) == {"gateway", "detect-0", "detect-1", "classify-0"}
    for label, cores in assignment.items():
        pid = state.gateway.pid if label == "gateway" else next(
            r.pid for r in state.replicas if f"{r.step}-{r.index}" == label)
        assert sorted(psutil.Process(pid).cpu_affinity()) == cores  # really pinned
    if len(state.available_cores) < 4:
        assert state.oversubscribed and "oversubscribed" in state.warnings[0] and "share cores" in state.warnings[0]
    else:
        assert not state.oversubscribed and len({c[0] for c in assignment.values()}) == 4
    endpoints = backend.endpoints()
    assert query_gateway_membership(endpoints.gateway) == {k: sorted(v) for k, v in endpoints.steps.items()}
    result = loadgen.run_open_loop(endpoints.gateway, images, loadgen.ConstantRate(10), duration_s=2.0,
                                   warmup_s=0.5, timeout_s=10)
    _accounted(result, 25)
    assert result.summary["failed"] == result.summary["timeouts"] == 0
    assert set(result.requests["detect_replica"]) == set(endpoints.steps["detect"])  # both replicas used
    with pytest.raises(DeploymentError, match="already runs deployment"):
        backend.deploy(pipeline_spec(smoke_variants))


def test_scale_up_and_down_during_load_loses_no_request(backend: LocalBackend, smoke_variants,
                                                        images: list[np.ndarray]) -> None:
    backend.deploy(pipeline_spec(smoke_variants))
    gateway = backend.endpoints().gateway
    events: list[tuple[str, float, list[str]]] = []
    errors: list[BaseException] = []

    def scaling() -> None:
        try:
            for step, replicas in [("detect", 2), ("classify", 2), ("detect", 1), ("classify", 1)]:
                time.sleep(0.7)
                backend.scale(step, replicas)
                events.append((step, time.monotonic(), backend.endpoints().steps[step]))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=scaling)
    result = loadgen.run_open_loop(gateway, images, loadgen.ConstantRate(8), duration_s=8.0, warmup_s=0.0,
                                   timeout_s=10, on_start=thread.start)
    thread.join(60)
    assert not errors, errors
    assert [(s, len(a)) for s, _, a in events] == [("detect", 2), ("classify", 2), ("detect", 1), ("classify", 1)]
    _accounted(result, 64)
    assert result.summary["failed"] == 0 and result.summary["timeouts"] == 0, result.summary["errors_by_code"]
    assert result.requests["detect_replica"].nunique() == 2  # the added replica took requests
    state = backend.status()
    assert state.replica_count("detect") == 1 and all(r.alive for r in state.replicas)
    assert backend.spec is not None and backend.spec.step("detect").replicas == 1
    assert len(backend.pids()) == 3  # the removed replicas were stopped
    with pytest.raises(DeploymentError, match="at least 1"):
        backend.scale("detect", 0)


def test_killed_replica_loses_no_request_silently(backend: LocalBackend, smoke_variants,
                                                  images: list[np.ndarray]) -> None:
    state = backend.deploy(pipeline_spec(smoke_variants, detect=2))
    victim = next(r for r in state.replicas if r.step == "detect" and r.index == 1)

    def kill() -> None:
        time.sleep(1.5)
        os.kill(victim.pid, signal.SIGKILL)

    thread = threading.Thread(target=kill)
    result = loadgen.run_open_loop(backend.endpoints().gateway, images, loadgen.ConstantRate(10), duration_s=4.0,
                                   warmup_s=0.0, timeout_s=10, on_start=thread.start)
    thread.join(10)
    _accounted(result, 40)  # every request has an outcome: ok, or an explicit gRPC code
    df = result.requests
    failed = df[df.status != "ok"]
    assert failed["code"].isin(["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "CANCELLED"]).all(), failed
    assert (df[df.send_s > 2.0]["status"] == "ok").all()  # afterwards the survivor serves everything
    after = backend.status()
    assert not next(r for r in after.replicas if r.index == 1 and r.step == "detect").alive
    assert any("is not running" in w for w in after.warnings)


def test_exception_inside_with_leaves_no_process(tmp_path: Path, smoke_variants) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), LocalBackend(workdir=tmp_path) as backend:
        backend.deploy(pipeline_spec(smoke_variants))
        pids = backend.pids()
        raise RuntimeError("boom")
    assert len(pids) == 3
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
    time.sleep(0.2)
    leftover = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert_no_process_left(sorted(leftover))
    assert backend.pids() == []


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
