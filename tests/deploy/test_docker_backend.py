"""DockerBackend against the real engine: containers per replica, scaling under load, teardown, bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import numpy as np
import pytest
from deploy_helpers import Stream
from pydantic import ValidationError

from milestone_lib.containers import BuiltImage
from milestone_lib.contracts import load_manifest
from milestone_lib.deploy import (
    DockerOptions,
    GatewayDeployment,
    PipelineDeployment,
    StepDeployment,
    make_backend,
)
from milestone_lib.deploy.docker import DockerBackend
from milestone_lib.deploy.docker.selection import BackendChoice, select_backend
from milestone_lib.errors import DeploymentError, EngineUnavailableError

pytest_plugins = ["tests.containers.container_fixtures"]


def docker_spec(images: dict[str, BuiltImage], runtime: BuiltImage, *, detect: int = 1, cpu: float = 0.5,
                detect_image: str | None = None) -> PipelineDeployment:
    return PipelineDeployment(name="docker-test", steps=[
        StepDeployment(step="detect", variant=images["detect"].variant, replicas=detect, cpu=cpu,
                       image=detect_image or images["detect"].ref),
        StepDeployment(step="classify", variant=images["classify"].variant, cpu=cpu, image=images["classify"].ref),
    ], gateway=GatewayDeployment(cpu=0.5, image=runtime.ref))  # type: ignore[arg-type]


def ours(client: docker.DockerClient) -> list[str]:
    """Containers this test process controls (by the owner label), running or not."""
    return [c.name for c in client.containers.list(all=True, filters={"label": f"org.milestone.owner-pid={os.getpid()}"})]


@pytest.fixture
def docker_backend(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[DockerBackend]:
    backend = DockerBackend(workdir=tmp_path / "deploy", client=docker_client, startup_timeout_s=120)
    try:
        yield backend
    finally:
        backend.teardown()
        assert ours(docker_client) == []


def test_containers_serve_scale_under_load_and_are_all_removed(
        docker_backend: DockerBackend, docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage],
        runtime_image: BuiltImage, images: list[np.ndarray]) -> None:
    state = docker_backend.deploy(docker_spec(tiny_images, runtime_image))
    assert [r.label for r in state.replicas] == ["detect-0", "classify-0"] and state.gateway.alive
    for replica in [state.gateway, *state.replicas]:
        container = docker_client.containers.get(replica.placement["container"])
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "host" and host["Init"] is True and host["NanoCpus"] == 500_000_000
        assert host["RestartPolicy"]["Name"] == "on-failure" and host["Memory"] > 0
        assert container.attrs["Config"]["User"] == "10001:10001"
        assert container.labels["org.milestone.deployment"] == "docker-test"
    with Stream(state.gateway.address, images, concurrency=2) as stream:
        stream.wait_for(5)
        stream.phase = 1
        docker_backend.scale("detect", 3)
        assert docker_backend.status().replica_count("detect") == 3
        stream.wait_for(stream.completed + 10)
        stream.phase = 2
        docker_backend.scale("detect", 1)
        stream.wait_for(stream.completed + 5)
    rows = stream.rows
    assert len(rows) == stream.sent and rows
    assert [r for r in rows if r["status"] != "OK"] == []
    assert "READY" in docker_backend.logs("detect-0")
    labels = docker_backend.containers()
    docker_backend.teardown()
    assert ours(docker_client) == [] and labels


def test_bad_input_is_refused_with_nothing_left_running(
        docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage], runtime_image: BuiltImage,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = DockerBackend(workdir=tmp_path, client=docker_client)
    with pytest.raises(DeploymentError, match=r"image 'milestone-no-such-variant:latest' is not in the Docker engine"):
        backend.deploy(docker_spec(tiny_images, runtime_image, detect_image="milestone-no-such-variant:latest"))
    assert ours(docker_client) == []
    machine = len(os.sched_getaffinity(0))
    with pytest.raises(DeploymentError, match=rf"asks for cpu {machine + 1}; .* at most this machine's {machine} CPUs"):
        backend.deploy(docker_spec(tiny_images, runtime_image, cpu=machine + 1))
    assert ours(docker_client) == [] and backend.spec is None
    bridged = docker_spec(tiny_images, runtime_image)
    bridged.steps[0].docker = DockerOptions(network="bridge")
    with pytest.raises(DeploymentError, match=r"docker.network='bridge' .* --network host --init and creates no network"):
        backend.deploy(bridged)
    assert ours(docker_client) == [] and backend.spec is None
    with pytest.raises(ValidationError, match="greater than 0"):
        docker_spec(tiny_images, runtime_image, cpu=0)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    with pytest.raises(EngineUnavailableError, match=r"no Docker engine answers at unix://.*no-engine.sock.*docker-up"):
        make_backend("docker")


def folder_spec(detect: Path, classify: Path) -> PipelineDeployment:
    return PipelineDeployment(steps=[StepDeployment(step="detect", variant=detect.name, folder=detect),
                                     StepDeployment(step="classify", variant=classify.name, folder=classify)])  # type: ignore[arg-type]


def test_select_backend_auto_prefers_docker_and_falls_back_to_local_with_a_note(
        docker_client: docker.DockerClient, tiny_variants: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = folder_spec(tiny_variants["detect"], tiny_variants["classify"])
    assert select_backend("auto", spec) == BackendChoice(name="docker")
    assert select_backend("local", spec).name == "local"
    torch_folder = tmp_path / "tiny-classify-pytorch-fp32"
    torch_folder.mkdir()
    load_manifest(tiny_variants["classify"]).model_copy(
        update={"name": "tiny-classify-pytorch-fp32", "format": "pytorch", "files": []}).write(torch_folder)
    with_torch = folder_spec(tiny_variants["detect"], torch_folder)
    fallback = select_backend("auto", with_torch)
    assert fallback.name == "local" and "tiny-classify-pytorch-fp32: container: not built" in fallback.note
    with pytest.raises(DeploymentError, match="cannot deploy as containers: tiny-classify-pytorch-fp32"):
        select_backend("docker", with_torch)
    with pytest.raises(DeploymentError, match="notebooks/01_build_variants.ipynb"):  # a variant not built yet
        select_backend("auto", folder_spec(tmp_path / "missing-detect", tiny_variants["classify"]))
    with pytest.raises(DeploymentError, match="unknown backend 'podman'; choose auto, local, docker, kubernetes"):
        select_backend("podman", spec)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    no_engine = select_backend("auto", spec)
    assert no_engine.name == "local" and no_engine.note.startswith("backend auto -> local processes: no Docker engine")
    with pytest.raises(EngineUnavailableError):
        select_backend("docker", spec)
