"""Notebook 02's image cells: publish_variant_images builds, pushes and lists, or says why it did not."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from milestone_lib.containers import BuiltImage
from milestone_lib.containers.publish import publish_variant_images
from milestone_lib.registry import ModelRegistry

pytest_plugins = ["tests.registry_fixtures", "tests.containers.container_fixtures"]


def test_publish_pushes_every_servable_variant_with_shared_layers_once(
        registry: ModelRegistry, docker_client: docker.DockerClient, tiny_images: dict[str, BuiltImage],
        tiny_variants: dict[str, Path], tmp_path: Path) -> None:
    variants_dir = tmp_path / "variants"
    variants_dir.mkdir()
    for folder in tiny_variants.values():
        (variants_dir / folder.name).symlink_to(folder)
    published = publish_variant_images(registry, variants_dir)
    assert published.note == ""
    assert list(published.table["variant"]) == ["(runtime, gateway)", "tiny-classify-onnx-fp32",
                                                "tiny-detect-onnx-fp32"]
    runtime_mb, *variants_uploaded = published.table["uploaded_mb"]
    assert runtime_mb > 100 and all(mb < 5 for mb in variants_uploaded)  # only each variant's own layer
    figures = published.figures
    assert figures["images_pushed"] == 3 == figures["images_in_registry"] and figures["images_not_built"] == 0
    assert figures["images_uploaded_mb"] < figures["images_size_mb_sum"] / 2
    assert set(published.listing["variant"]) == {"", "tiny-classify-onnx-fp32", "tiny-detect-onnx-fp32"}


def test_publish_without_an_engine_or_when_disabled_says_why(registry: ModelRegistry, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    skipped = publish_variant_images(registry, tmp_path, enabled=False)
    assert skipped.note == "images skipped (images=False)" and skipped.figures["images_pushed"] == 0
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    none = publish_variant_images(registry, tmp_path)
    assert none.note.startswith("images not built: no Docker engine answers") and len(none.table) == 0
