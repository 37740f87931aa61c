"""Crashes: a killed deployer's containers are swept by the next deploy; a replica killed under load
comes back (Docker: restart policy; local: the supervisor) and every request of the run has an outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import numpy as np
import psutil
from deploy_helpers import Stream
from test_docker_backend import docker_spec, ours

from milestone_lib.containers import BuiltImage
from milestone_lib.deploy import (
    LocalBackend,
    PipelineDeployment,
    StepDeployment,
    query_gateway_membership,
)
from milestone_lib.deploy.docker import DockerBackend
from milestone_lib.loadgen import LoadResult, PoissonRate, run_open_loop
from milestone_lib.serving.health import check_health
from milestone_lib.settings import PROJECT_ROOT

pytest_plugins = ["tests.containers.container_fixtures"]

_DEPLOYER = """
import json, sys, time
from milestone_lib.deploy import PipelineDeployment
from milestone_lib.deploy.docker import DockerBackend
backend = DockerBackend(workdir=sys.argv[2])
backend.deploy(PipelineDeployment.model_validate_json(sys.argv[1]))
print(json.dumps(backend.containers()), flush=True)
time.sleep(600)
"""


def _wait(condition, timeout_s: float = 90.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, f"{what} not reached within {timeout_s} s"
        time.sleep(0.2)


def _accounted(stream: Stream, rows: list[dict]) -> None:
    assert len(rows) == stream.sent and sorted(r["id"] for r in rows) == list(range(stream.sent))


def test_containers_of_a_sigkilled_deployer_are_removed_by_the_next_deploy(
        docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage], runtime_image: BuiltImage,
        tmp_path: Path) -> None:
    spec = docker_spec(tiny_images, runtime_image)
    deployer = subprocess.Popen([sys.executable, "-c", _DEPLOYER, spec.model_dump_json(), str(tmp_path / "crashed")],
                                stdout=subprocess.PIPE, cwd=PROJECT_ROOT, text=True)
    try:
        started = json.loads(deployer.stdout.readline())  # type: ignore[union-attr]
    finally:
        deployer.send_signal(signal.SIGKILL)
        deployer.wait(10)
    assert sorted(started) == ["classify-0", "detect-0", "gateway"]
    left = {c.id for c in docker_client.containers.list(filters={"label": f"org.milestone.owner-pid={deployer.pid}"})}
    assert left == set(started.values())  # SIGKILL: no exit hook ran, the containers are still there
    with DockerBackend(workdir=tmp_path / "next", client=docker_client) as backend:
        backend.deploy(spec)
        assert len(backend.swept) == 3
        assert not docker_client.containers.list(all=True, filters={"label": f"org.milestone.owner-pid={deployer.pid}"})
    assert ours(docker_client) == []


def test_a_killed_container_replica_comes_back_and_every_request_is_accounted_for(
        docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage], runtime_image: BuiltImage,
        images: list[np.ndarray], tmp_path: Path) -> None:
    with DockerBackend(workdir=tmp_path, client=docker_client) as backend:
        state = backend.deploy(docker_spec(tiny_images, runtime_image, detect=2))
        victim = next(r for r in state.replicas if r.label == "detect-0")
        container = docker_client.containers.get(victim.placement["container"])
        with Stream(state.gateway.address, images, concurrency=3) as stream:
            stream.wait_for(10)
            init = psutil.Process(container.attrs["State"]["Pid"])  # docker-init (--init); the server is its child
            init.children()[0].send_signal(signal.SIGKILL)
            stream.phase = 1
            _wait(lambda: container.reload() or container.attrs["RestartCount"] >= 1, what="a restart")
            _wait(lambda: check_health(victim.address) == "SERVING", what="the restarted replica serving")
            stream.phase = 2
            stream.wait_for(stream.completed + 20)
        rows = stream.stop()
        _accounted(stream, rows)
        failed = [r for r in rows if r["status"] != "OK"]
        assert all(r["phase"] <= 1 for r in failed), failed  # only requests around the kill may fail
        assert {r["status"] for r in failed} <= {"UNAVAILABLE", "INTERNAL", "CANCELLED"}, failed
        after = backend.status()
        assert all(r.alive for r in after.replicas) and after.replicas[0].placement["restarts"] >= 1
        assert backend.endpoints().steps["detect"] == [r.address for r in state.replicas if r.step == "detect"]


def test_a_killed_local_replica_is_replaced_and_every_request_is_accounted_for(
        tiny_variants: dict[str, Path], images: list[np.ndarray], tmp_path: Path) -> None:
    spec = PipelineDeployment(steps=[
        StepDeployment(step="detect", variant="tiny-detect-onnx-fp32", folder=tiny_variants["detect"], replicas=2),
        StepDeployment(step="classify", variant="tiny-classify-onnx-fp32", folder=tiny_variants["classify"]),
    ])  # type: ignore[arg-type]
    with LocalBackend(workdir=tmp_path, pin=False, cpu_quota=False) as backend:
        state = backend.deploy(spec)
        victim = next(r for r in state.replicas if r.label == "detect-0")
        with Stream(state.gateway.address, images, concurrency=3) as stream:
            stream.wait_for(10)
            os.kill(victim.placement["pid"], signal.SIGKILL)
            stream.phase = 1
            _wait(lambda: backend.supervisor is not None and backend.supervisor.restarts == ["detect-0"],
                  what="the supervisor's restart")
            stream.phase = 2
            stream.wait_for(stream.completed + 20)
        rows = stream.stop()
        _accounted(stream, rows)
        failed = [r for r in rows if r["status"] != "OK"]
        assert all(r["phase"] <= 1 for r in failed), failed
        after = backend.status()
        assert [r.label for r in after.replicas if r.step == "detect"] == ["detect-1", "detect-2"]
        assert all(r.alive for r in after.replicas)
        assert not [w for w in after.warnings if "not running" in w]
        replacement = next(r for r in after.replicas if r.label == "detect-2")
        assert check_health(replacement.address) == "SERVING"
        assert replacement.address in query_gateway_membership(state.gateway.address)["detect"]


def _kill_later(pid_of: Callable[[], int], after_s: float, killed: list[float]) -> Callable[[], None]:
    """An `on_start` for the load generator: SIGKILL `pid_of()` `after_s` seconds into the run."""

    def kill() -> None:
        time.sleep(after_s)
        killed.append(time.perf_counter())
        os.kill(pid_of(), signal.SIGKILL)

    return lambda: threading.Thread(target=kill, daemon=True).start()


def _first_answer_after(result: LoadResult, t0: float, killed_at: float) -> float:
    """Seconds from the kill to the first answer of a request sent after it."""
    df = result.requests
    after = df[(df["status"] == "ok") & (df["send_s"] + t0 > killed_at)]
    return float((after["send_s"] + after["latency_ms"] / 1e3).min() + t0 - killed_at)


def test_a_killed_local_gateway_comes_back_on_its_address_and_no_request_is_lost(
        tiny_variants: dict[str, Path], images: list[np.ndarray], tmp_path: Path) -> None:
    spec = PipelineDeployment(steps=[
        StepDeployment(step="detect", variant="tiny-detect-onnx-fp32", folder=tiny_variants["detect"]),
        StepDeployment(step="classify", variant="tiny-classify-onnx-fp32", folder=tiny_variants["classify"]),
    ])  # type: ignore[arg-type]
    with LocalBackend(workdir=tmp_path, pin=False, cpu_quota=False) as backend:
        state = backend.deploy(spec)
        killed: list[float] = []
        t0 = time.perf_counter()
        result = run_open_loop(state.gateway.address, images, PoissonRate(20, seed=1), duration_s=6.0, warmup_s=0.0,
                               timeout_s=10.0, measure_overhead=False,
                               on_start=_kill_later(lambda: backend.pids()[0], 2.0, killed))
        s = result.summary
        assert s["sent"] == s["ok"] + s["failed"] + s["timeouts"]  # the generator's accounting adds up
        assert s["ok"] == s["sent"], s["errors_by_code"]  # in flight during the restart: retried, answered
        assert s["retried"] > 0  # some met the dead gateway and were sent again
        assert backend.supervisor is not None and backend.supervisor.restarts == ["gateway"]
        after = backend.status()
        assert after.gateway.alive and after.gateway.address == state.gateway.address
        assert after.gateway.placement["pid"] != state.gateway.placement["pid"]
        assert check_health(after.gateway.address) == "SERVING"
        assert (tmp_path / "gateway.0.err").exists()  # the dead one's log is kept
        backend.scale("detect", 2)  # the backend still drives the new gateway's membership
        assert len(query_gateway_membership(after.gateway.address)["detect"]) == 2
        print(f"local gateway: serving again {_first_answer_after(result, t0, killed[0]):.2f} s after the kill")


def test_a_killed_container_gateway_is_restarted_by_the_engine_and_no_request_is_lost(
        docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage], runtime_image: BuiltImage,
        images: list[np.ndarray], tmp_path: Path) -> None:
    with DockerBackend(workdir=tmp_path, client=docker_client) as backend:
        state = backend.deploy(docker_spec(tiny_images, runtime_image))
        container = docker_client.containers.get(state.gateway.placement["container"])

        def gateway_server_pid() -> int:  # docker-init (--init) is the container's pid 1; the server is its child
            return psutil.Process(container.attrs["State"]["Pid"]).children()[0].pid

        killed: list[float] = []
        t0 = time.perf_counter()
        result = run_open_loop(state.gateway.address, images, PoissonRate(20, seed=2), duration_s=6.0, warmup_s=0.0,
                               timeout_s=10.0, measure_overhead=False,
                               on_start=_kill_later(gateway_server_pid, 2.0, killed))
        s = result.summary
        assert s["sent"] == s["ok"] + s["failed"] + s["timeouts"]
        assert s["ok"] == s["sent"], s["errors_by_code"]
        assert s["retried"] > 0
        container.reload()
        assert container.attrs["RestartCount"] >= 1  # the engine's restart policy brought it back
        after = backend.status()
        assert after.gateway.alive and after.gateway.address == state.gateway.address
        backend.scale("detect", 2)  # the backend still drives the restarted gateway's membership
        assert len(query_gateway_membership(after.gateway.address)["detect"]) == 2
        print(f"docker gateway: serving again {_first_answer_after(result, t0, killed[0]):.2f} s after the kill")
