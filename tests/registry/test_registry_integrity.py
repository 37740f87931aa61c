"""What a pull refuses and what a push never publishes: tampered, missing or changed bytes, killed and concurrent pushes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from milestone_lib.contracts import MANIFEST_NAME, sha256_file
from milestone_lib.errors import (
    ChecksumMismatchError,
    RegistryError,
    VariantNotFoundError,
)
from milestone_lib.registry import ModelRegistry

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import registry_env, tree

_PUSH_SLOWLY = textwrap.dedent("""
    import sys, time
    from milestone_lib.registry import ModelRegistry
    registry = ModelRegistry(max_workers=1)
    print("pushing", flush=True)
    # Slow the upload down (like a slow link) so that the test can kill it half way.
    registry.push_variant(sys.argv[1], progress=lambda path, size: time.sleep(0.3))
    print("finished", flush=True)
""")


def test_a_tampered_object_is_refused_and_leaves_the_destination_alone(registry: ModelRegistry, variant_factory,
                                                                        tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory(files={"model.onnx": os.urandom(200_000), "extra.bin": b"x"}))
    dest = tmp_path / "serving" / "served"
    registry.pull_variant("yolov8n-onnx-fp32", dest)
    before = tree(dest)

    key = pushed.prefix + "model.onnx"
    evil = b"not the measured model"
    registry._client.put_object(registry.settings.models_bucket, key, io.BytesIO(evil), len(evil))
    with pytest.raises(ChecksumMismatchError, match=f"'{registry.settings.models_bucket}/{key}' has sha256 .* "
                                                    "but its manifest records .*tampered with"):
        registry.pull_variant("yolov8n-onnx-fp32", dest)
    assert tree(dest) == before, "a refused pull must not touch the folder being served"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["served"], "no staging folder left behind"


def test_an_object_missing_from_a_version_is_refused(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory(files={"model.onnx": b"m" * 10, "labels.txt": b"l"}))
    registry._client.remove_object(registry.settings.models_bucket, pushed.prefix + "labels.txt")
    with pytest.raises(ChecksumMismatchError, match="labels.txt' has sha256 <missing>.*push the variant again"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_a_tampered_manifest_is_refused(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    pushed = registry.push_variant(variant_factory())
    manifest_key = pushed.prefix + MANIFEST_NAME
    client, bucket = registry._client, registry.settings.models_bucket
    data = client.get_object(bucket, manifest_key).read().replace(b'"fp32"', b'"fp16"')
    stored_sha = client.stat_object(bucket, manifest_key).metadata["x-amz-meta-sha256"]
    client.put_object(bucket, manifest_key, io.BytesIO(data), len(data), metadata={"sha256": stored_sha})
    with pytest.raises(ChecksumMismatchError, match=MANIFEST_NAME):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")


def test_a_local_file_changed_after_its_manifest_is_not_pushed(registry: ModelRegistry, variant_factory) -> None:
    folder = variant_factory()
    (folder / "model.onnx").write_bytes(b"edited after the manifest was written")
    with pytest.raises(ChecksumMismatchError, match="model.onnx' has sha256 .* rebuild it with notebooks/01"):
        registry.push_variant(folder)
    assert registry.list_variants().empty and registry.list_incomplete().empty


def test_push_refuses_a_folder_without_manifest(registry: ModelRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="holds no manifest.json; build the variant with notebooks/01"):
        registry.push_variant(tmp_path)


def test_a_push_killed_mid_upload_leaves_no_visible_version(registry: ModelRegistry, variant_factory,
                                                             tmp_path: Path) -> None:
    complete = registry.push_variant(variant_factory(files={"model.onnx": b"complete" * 100}))
    big = variant_factory(files={f"shard-{i:02d}.bin": os.urandom(256 * 1024) for i in range(20)})
    script = tmp_path / "push_slowly.py"
    script.write_text(_PUSH_SLOWLY)
    env = {**os.environ, **registry_env(registry.settings)}
    proc = subprocess.Popen([sys.executable, str(script), str(big)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client, bucket = registry._client, registry.settings.models_bucket
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            incomplete = registry.list_incomplete()
            if len(incomplete) and incomplete.objects.iloc[0] >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the push ended before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Objects of the killed push are there, but no version shows.
    incomplete = registry.list_incomplete()
    assert len(incomplete) == 1 and 3 <= incomplete.objects.iloc[0] < 20
    assert [v.version for v in registry.list_versions("yolov8n-onnx-fp32")] == [complete.version]
    assert list(registry.list_variants().version) == [complete.version]
    pulled = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "pulled")
    assert pulled.version == complete.version and tree(pulled.folder)["model.onnx"] == b"complete" * 100
    with pytest.raises(VariantNotFoundError, match="stored versions"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "x", version=incomplete.version.iloc[0])

    # A recent interrupted push is kept (it may still be running); an old one is swept.
    assert registry.sweep_incomplete() == 0
    assert registry.sweep_incomplete(older_than_s=0) == incomplete.objects.iloc[0]
    assert registry.list_incomplete().empty
    assert len(list(client.list_objects(bucket, recursive=True))) == 2  # the complete version's file + manifest


def test_concurrent_pushes_of_one_variant_never_mix(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    contents = {i: {f"part-{j}.bin": bytes([i]) * (50_000 + j) for j in range(4)} for i in range(6)}
    folders = {i: variant_factory(files=files) for i, files in contents.items()}

    def push(i: int) -> str:
        return ModelRegistry(registry.settings).push_variant(folders[i]).version

    with ThreadPoolExecutor(6) as pool:
        versions = dict(zip(folders, pool.map(push, folders)))
    assert len(set(versions.values())) == 6
    assert len(registry.list_versions("yolov8n-onnx-fp32")) == 6
    for i, version in versions.items():
        pulled = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / f"p{i}", version=version)
        files = tree(pulled.folder)
        assert {k: v for k, v in files.items() if k != MANIFEST_NAME} == contents[i]
        assert all(e.sha256 == sha256_file(pulled.folder / e.path) for e in pulled.manifest.files)
