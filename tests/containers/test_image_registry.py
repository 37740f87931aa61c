"""Images in the registry: layers stored once, pull verified and loaded, tampering refused, no secrets."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import docker
import grpc
import numpy as np
import pytest
from docker.errors import ImageNotFound

from milestone_lib.containers import BuiltImage
from milestone_lib.deploy import StepDeployment
from milestone_lib.deploy.docker.images import resolve_image
from milestone_lib.errors import ChecksumMismatchError
from milestone_lib.net import free_port
from milestone_lib.registry import ModelRegistry
from milestone_lib.serving.health import check_health
from milestone_lib.serving.protocol import make_infer_request, service_pb2_grpc
from tests.registry_fixtures import secrets_of

pytest_plugins = ["tests.registry_fixtures", "tests.containers.container_fixtures"]


def _remove(client: docker.DockerClient, ref: str) -> None:
    image_id = client.images.get(ref).id
    for tag in client.images.get(ref).tags:
        client.images.remove(tag, force=True)
    with pytest.raises(ImageNotFound):
        client.images.get(image_id)


def test_push_stores_shared_layers_once_and_a_pull_serves_a_request(
        registry: ModelRegistry, docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage],
        tmp_path: Path) -> None:
    first = registry.push_container_image(docker_client, tiny_images["detect"].ref, workdir=tmp_path)
    second = registry.push_container_image(docker_client, tiny_images["classify"].ref, workdir=tmp_path)
    assert first.uploaded_bytes == first.size_bytes > 0  # an empty registry: everything goes up
    assert second.uploaded_bytes < second.size_bytes / 20  # the runtime's layers are already there
    listed = registry.list_container_images()
    assert sorted(listed["variant"]) == ["tiny-classify-onnx-fp32", "tiny-detect-onnx-fp32"]
    assert set(listed["layers"]) == {tiny_images["detect"].layers}
    assert registry.stored_blob_bytes() == first.uploaded_bytes + second.uploaded_bytes

    ref, original_id = tiny_images["detect"].ref, tiny_images["detect"].image_id
    _remove(docker_client, ref)
    # a deployment names `milestone-<variant>:latest`; missing from the engine, it is pulled (the last push)
    step = StepDeployment(step="detect", variant="tiny-detect-onnx-fp32", folder=tmp_path)  # type: ignore[arg-type]
    latest = resolve_image(docker_client, step, registry)
    assert latest == f"{tiny_images['detect'].repository}:latest"
    assert docker_client.images.get(ref).id == original_id == docker_client.images.get(latest).id

    port = free_port()
    container = docker_client.containers.run(ref, detach=True, network_mode="host", init=True,
                                             environment={"MILESTONE_PORT": str(port)})
    try:
        for _ in range(300):
            if check_health(f"127.0.0.1:{port}", timeout_s=0.5) == "SERVING":
                break
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            image = np.zeros((1, 64, 64, 3), dtype=np.uint8)
            response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                make_infer_request("detect", {"IMAGES": image}), timeout=30)
        assert response.model_name == "tiny-detect-onnx-fp32"
    finally:
        container.remove(force=True)


def test_a_tampered_blob_is_refused_and_nothing_is_loaded(
        registry: ModelRegistry, docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage],
        tmp_path: Path) -> None:
    ref = tiny_images["classify"].ref
    registry.push_container_image(docker_client, ref, workdir=tmp_path)
    manifest = registry.image_manifest(ref)
    last = manifest["layers"][-1]["digest"].removeprefix("sha256:")
    bucket = registry.settings.images_bucket
    original = registry._client.get_object(bucket, f"blobs/sha256/{last}").read()
    tampered = original[:-1] + bytes([original[-1] ^ 1])
    registry._client.put_object(bucket, f"blobs/sha256/{last}", io.BytesIO(tampered), len(tampered),
                                metadata={"sha256": last})  # the attacker keeps the old digest label
    _remove(docker_client, ref)
    with pytest.raises(ChecksumMismatchError, match=last[:12]):
        registry.pull_container_image(docker_client, ref, workdir=tmp_path)
    with pytest.raises(ImageNotFound):
        docker_client.images.get(ref)
    # the blob repaired, the same pull loads the image again (the other tests use it)
    registry._client.put_object(bucket, f"blobs/sha256/{last}", io.BytesIO(original), len(original),
                                metadata={"sha256": last})
    registry.pull_container_image(docker_client, ref, workdir=tmp_path)
    assert docker_client.images.get(ref).id == tiny_images["classify"].image_id


def test_no_image_holds_a_registry_secret(registry: ModelRegistry, docker_client: docker.DockerClient,
                                          runtime_image: BuiltImage, tiny_images: dict[str, BuiltImage]) -> None:
    secrets = [s for s in secrets_of(registry.settings) if s]
    assert secrets
    for ref in [runtime_image.ref, *(image.ref for image in tiny_images.values())]:
        image = docker_client.images.get(ref)
        text = json.dumps(image.attrs) + json.dumps(docker_client.api.history(ref))
        assert not [s for s in secrets if s in text], ref
        assert "MILESTONE_REGISTRY" not in text and "SECRET" not in text.upper().replace("SECRETSTR", "")
