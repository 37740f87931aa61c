"""Variants in a real S3 registry: push, pull, versions, the table of versions, delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from milestone_lib.contracts import MANIFEST_NAME, load_manifest
from milestone_lib.errors import (
    RegistryError,
    VariantNotFoundError,
)
from milestone_lib.registry import VERSION_RE, ModelRegistry

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import make_variant, tree


def test_push_then_pull_gives_the_same_bytes(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    folder = variant_factory(name="resnet-tiny-onnx-fp32", step="classify", artifact="hf",
                             files={"hf/config.json": b"{}", "hf/model.onnx": os.urandom(300_000),
                                    "labels.txt": b"circle\nsquare\n"})
    pushed = registry.push_variant(folder)
    assert VERSION_RE.match(pushed.version) and pushed.files == 3 and pushed.step == "classify"

    pulled = registry.pull_variant("resnet-tiny-onnx-fp32", tmp_path / "pulled")
    assert pulled.version == pushed.version and pulled.files_verified == 3
    assert tree(tmp_path / "pulled") == tree(folder)
    assert load_manifest(pulled.folder) == load_manifest(folder)
    assert os.fspath(pulled) == str(tmp_path / "pulled")
    assert pulled.files_table()["verified"].all()
    assert pulled.summary()["sha256"] == load_manifest(folder).sha256
    assert not list(tmp_path.glob(".pulled.*")), "no staging folder left behind"


def test_two_pushes_make_two_versions_and_latest_is_the_default(registry: ModelRegistry, variant_factory,
                                                                 tmp_path: Path) -> None:
    first = registry.push_variant(variant_factory(files={"model.onnx": b"first" * 1000}))
    second = registry.push_variant(variant_factory(files={"model.onnx": b"second" * 1000}))
    assert first.version < second.version
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [first.version, second.version]

    assert registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "latest").version == second.version
    assert (tmp_path / "latest" / "model.onnx").read_bytes() == b"second" * 1000
    old = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "old", version=first.version)
    assert (old.folder / "model.onnx").read_bytes() == b"first" * 1000
    # Pulling over an existing folder replaces it whole.
    registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "old")
    assert (tmp_path / "old" / "model.onnx").read_bytes() == b"second" * 1000


def test_list_variants_is_a_table_of_manifest_fields(registry: ModelRegistry, variant_factory) -> None:
    assert registry.list_variants().empty
    assert {"name", "version", "step", "format", "precision", "size", "size_mb"} <= set(registry.list_variants())
    registry.push_variant(variant_factory(name="yolov8n-onnx-fp32", accuracy={"mAP50": 0.61, "mAP50-95": 0.4}))
    latest = registry.push_variant(variant_factory(name="yolov8n-onnx-fp32", accuracy={"mAP50": 0.62}))
    registry.push_variant(variant_factory(name="resnet-tiny-onnx-fp32", step="classify", accuracy={"top1": 0.93}))

    table = registry.list_variants()
    assert len(table) == 3
    expected = {"name", "version", "latest", "step", "family", "size", "format", "precision", "parameters",
                "size_mb", "files", "created_at", "pushed_at", "accuracy_mAP50", "accuracy_mAP50-95", "accuracy_top1"}
    assert expected <= set(table.columns)
    row = table[table.version == latest.version].iloc[0]
    fields = (row["step"], row["format"], row["precision"], row["size"], row["accuracy_mAP50"])
    assert fields == ("detect", "onnx", "fp32", "n", 0.62)
    assert row.latest and table.latest.sum() == 2
    assert table[table.name == "resnet-tiny-onnx-fp32"].iloc[0].accuracy_top1 == 0.93

    assert len(registry.list_variants(latest_only=True)) == 2
    assert list(registry.list_variants(step="classify").name) == ["resnet-tiny-onnx-fp32"]
    assert len(registry.list_variants(name="yolov8n-onnx-fp32")) == 2


def test_delete_a_version(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    first = registry.push_variant(variant_factory(files={"model.onnx": b"a" * 100}))
    second = registry.push_variant(variant_factory(files={"model.onnx": b"b" * 100}))

    assert registry.delete_variant("yolov8n-onnx-fp32", second.version) == 2
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [first.version]
    assert registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p").version == first.version
    with pytest.raises(VariantNotFoundError, match=f"version '{second.version}' is not in bucket"):
        registry.delete_variant("yolov8n-onnx-fp32", second.version)
    with pytest.raises(RegistryError, match="needs an exact version"):
        registry.delete_variant("yolov8n-onnx-fp32", "latest")

    # With bucket versioning the bytes of a plain delete stay recoverable; `purge` removes them too.
    client, bucket = registry._client, registry.settings.models_bucket
    prefix = registry._prefix("detect", "yolov8n-onnx-fp32", second.version)
    kept = {o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True)}
    assert kept == {prefix + "model.onnx", prefix + MANIFEST_NAME}
    registry.delete_variant("yolov8n-onnx-fp32", first.version, purge=True)
    prefix = registry._prefix("detect", "yolov8n-onnx-fp32", first.version)
    assert not list(client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True))
    assert registry.list_variants().empty


def test_push_variants_pushes_every_folder_or_names_notebook_01(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no variants in .*run notebooks/01_build_variants.ipynb"):
        registry.push_variants(tmp_path / "empty")
    make_variant(tmp_path / "variants" / "yolov8n-onnx-fp32", files={"model.onnx": b"d" * 5000})
    make_variant(tmp_path / "variants" / "resnet-tiny-onnx-fp32", name="resnet-tiny-onnx-fp32", step="classify",
                 files={"model.onnx": b"c" * 1000})
    assert list(registry.push_variants(tmp_path / "variants", limit=1).name) == ["resnet-tiny-onnx-fp32"]
    pushed = registry.push_variants(tmp_path / "variants")
    assert list(pushed.name) == ["resnet-tiny-onnx-fp32", "yolov8n-onnx-fp32"]
    assert len(registry.list_variants()) == 3
