"""Images against the real engine: non-root, health check, thin variant layer, labels, cached rebuild."""

from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from milestone_lib.containers import (
    BuiltImage,
    build_runtime_image,
    build_variant_image,
)
from milestone_lib.containers.build import prune_images
from milestone_lib.containers.publish import (
    build_images,
    container_cell,
    container_column,
    not_built_reason,
)
from milestone_lib.contracts import MANIFEST_NAME, load_manifest, sha256_file

pytest_plugins = ["tests.containers.container_fixtures"]


def _layer_sizes(client: docker.DockerClient, ref: str) -> list[int]:
    """Sizes of the non-empty layers, oldest first (metadata-only steps have size 0)."""
    return [entry["Size"] for entry in reversed(client.api.history(ref)) if entry["Size"] > 0]


def test_runtime_image_runs_as_non_root_with_a_grpc_health_check(docker_client: docker.DockerClient,
                                                                  runtime_image: BuiltImage) -> None:
    config = docker_client.images.get(runtime_image.ref).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "milestone_lib.serving.health"]
    out = docker_client.containers.run(runtime_image.ref, ["sh", "-c", "id -u; python -c 'import torch' 2>&1 || true"],
                                       network_mode="host", init=True, remove=True)
    lines = out.decode().splitlines()
    assert lines[0] == "10001"
    assert any("No module named 'torch'" in line for line in lines)  # no training dependencies


def test_variant_image_adds_only_the_variant_files_as_its_last_layer(
        docker_client: docker.DockerClient, runtime_image: BuiltImage, tiny_images: dict[str, BuiltImage],
        tiny_variants: dict[str, Path]) -> None:
    image = tiny_images["classify"]
    folder = tiny_variants["classify"]
    runtime_layers = _layer_sizes(docker_client, runtime_image.ref)
    variant_layers = _layer_sizes(docker_client, image.ref)
    assert variant_layers[:-1] == runtime_layers  # the runtime's layers, shared
    manifest = load_manifest(folder)
    variant_bytes = sum(e.size_bytes for e in manifest.files) + (folder / MANIFEST_NAME).stat().st_size
    assert variant_bytes <= variant_layers[-1] <= variant_bytes + 64 * 1024  # tar headers and folders only
    labels = docker_client.images.get(image.ref).labels
    assert labels["org.milestone.variant"] == manifest.name and labels["org.milestone.step"] == "classify"
    assert labels["org.milestone.format"] == "onnx" and labels["org.milestone.precision"] == manifest.precision
    assert labels["org.milestone.manifest-sha256"] == sha256_file(folder / MANIFEST_NAME)


def test_rebuild_with_nothing_changed_builds_nothing(docker_client: docker.DockerClient,
                                                     tiny_images: dict[str, BuiltImage],
                                                     tiny_variants: dict[str, Path]) -> None:
    first = build_runtime_image(docker_client)  # the sources may have changed since the session fixture
    runtime = build_runtime_image(docker_client)
    assert not runtime.built and runtime.image_id == first.image_id
    variant = build_variant_image(docker_client, tiny_variants["detect"], runtime=runtime)
    again = build_variant_image(docker_client, tiny_variants["detect"], runtime=runtime)
    assert not again.built and again.image_id == variant.image_id


def test_pytorch_variants_are_not_containerized_and_the_table_says_why(
        docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage], tiny_variants: dict[str, Path],
        tmp_path: Path) -> None:
    torch_folder = tmp_path / "tiny-pytorch"
    torch_folder.mkdir()
    manifest = load_manifest(tiny_variants["classify"]).model_copy(update={"name": "tiny-classify-pytorch-fp32",
                                                                           "format": "pytorch", "files": []})
    manifest.write(torch_folder)
    _, built, skipped = build_images(docker_client, [tiny_variants["classify"], torch_folder])
    assert [b.variant for b in built] == ["tiny-classify-onnx-fp32"]
    assert skipped == {"tiny-classify-pytorch-fp32": not_built_reason()}
    assert not_built_reason().startswith("container: not built — torch installs ")
    assert container_cell("tiny-classify-onnx-fp32", "onnx") == "image milestone-tiny-classify-onnx-fp32:latest (notebook 02)"
    assert container_cell("x-pytorch-fp32", "pytorch") == not_built_reason()
    cells = container_column(["tiny-classify-onnx-fp32", "tiny-classify-pytorch-fp32", "other"], built, skipped)
    assert cells[0].startswith(built[0].ref) and cells[1] == not_built_reason() and cells[2] == "-"


def test_prune_removes_images_latest_moved_away_from(docker_client: docker.DockerClient, runtime_image: BuiltImage,
                                                      tiny_variants: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "tiny-prune-onnx-fp32"
    shutil.copytree(tiny_variants["classify"], folder)
    manifest = load_manifest(folder).model_copy(update={"name": "tiny-prune-onnx-fp32"})
    manifest.write(folder)
    old = build_variant_image(docker_client, folder, runtime=runtime_image)
    manifest.model_copy(update={"imgsz": manifest.imgsz}).model_copy(update={"class_names": ["changed"]}).write(folder)
    new = build_variant_image(docker_client, folder, runtime=runtime_image)
    assert old.image_id != new.image_id
    removed = prune_images(docker_client, repositories=[new.repository])  # other tests' images stay
    assert old.ref in removed and new.ref not in removed
    assert docker_client.images.get(new.ref).id == docker_client.images.get(f"{new.repository}:latest").id
    with pytest.raises(ImageNotFound):
        docker_client.images.get(old.image_id)
    docker_client.images.remove(new.image_id, force=True)
