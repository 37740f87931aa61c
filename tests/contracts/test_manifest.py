from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import get_args

from milestone_lib.contracts import (
    MANIFEST_NAME,
    STEPS,
    Step,
    TensorSpec,
    VariantManifest,
    load_manifest,
    sha256_file,
)


def _manifest(folder: Path) -> VariantManifest:
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "config.json").write_text('{"a": 1}')
    (folder / "hf" / "model.safetensors").write_bytes(b"\x00" * 1000)
    return VariantManifest(
        name="resnet-tiny-pytorch-fp32", step="classify", family="resnet", size="tiny", format="pytorch",
        precision="fp32", parameters=123_456, artifact="hf", files=VariantManifest.describe_files(folder, "hf"),
        inputs=[TensorSpec(name="pixel_values", shape=[-1, 3, 64, 64])],
        outputs=[TensorSpec(name="logits", shape=[-1, 6])], class_names=list("abcdef"), imgsz=64,
        accuracy={"top1": 0.75}, latency_ms={"b1_t1": 1.5},
    )


def test_steps_are_the_step_literal_in_pipeline_order() -> None:
    assert STEPS == ("detect", "classify") == get_args(Step)


def test_manifest_round_trips_and_lists_every_file_with_its_digest(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    assert [f.path for f in manifest.files] == ["hf/config.json", "hf/model.safetensors"]
    assert manifest.size_bytes == 8 + 1000
    for entry in manifest.files:
        assert entry.sha256 == hashlib.sha256((tmp_path / entry.path).read_bytes()).hexdigest()
    path = manifest.write(tmp_path)
    assert path == tmp_path / MANIFEST_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by a container's other user
    assert load_manifest(tmp_path) == manifest == load_manifest(path)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_folder_artifact_digest_covers_every_file(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    before = manifest.sha256
    (tmp_path / "hf" / "config.json").write_text('{"a": 2}')
    changed = manifest.model_copy(update={"files": VariantManifest.describe_files(tmp_path, "hf")})
    assert changed.sha256 != before
    assert sha256_file(tmp_path / "hf" / "config.json") == changed.files[0].sha256
