"""The manifest of a variant: what it is, where it came from, what it measured.

Written as `manifest.json` beside the artifact; the registry stores it with the files and
verifies each file's sha256 against it on pull.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..files import atomic_write_text
from .steps import Step

__all__ = [
    "MANIFEST_NAME",
    "FileEntry",
    "Format",
    "Precision",
    "TensorSpec",
    "VariantManifest",
    "load_manifest",
    "sha256_file",
]

MANIFEST_NAME = "manifest.json"

Format = Literal["pytorch", "onnx", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8-static", "int8-dynamic"]


class TensorSpec(BaseModel):
    """One input or output tensor, in Open Inference Protocol terms."""

    name: str
    datatype: str = "FP32"
    shape: list[int] = Field(description="-1 marks a dynamic dimension")


class FileEntry(BaseModel):
    """One file of the variant, relative to its folder."""

    path: str
    size_bytes: int
    sha256: str


class VariantManifest(BaseModel):
    """Everything needed to serve, compare and verify one variant."""

    name: str = Field(description="unique name, e.g. 'yolov8n-onnx-int8-static'")
    step: Step
    family: str = Field(description="e.g. 'yolov8', 'resnet'")
    size: str = Field(description="e.g. 'n', 's', 'tiny', 'small'")
    format: Format
    precision: Precision
    parameters: int
    artifact: str = Field(description="main file (or folder) relative to the variant folder")
    files: list[FileEntry]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    class_names: list[str]
    imgsz: int
    dataset: dict[str, Any] = Field(default_factory=dict, description="name, yaml path, counts, seed")
    training: dict[str, Any] = Field(default_factory=dict, description="epochs, optimizer, source weights…")
    accuracy: dict[str, float] = Field(default_factory=dict, description="mAP50/mAP50-95 or top1, measured")
    latency_ms: dict[str, float] = Field(default_factory=dict, description="ms per image by batch and threads")
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def sha256(self) -> str:
        """Digest of the main artifact (of the file list, for a folder artifact)."""
        for entry in self.files:
            if entry.path == self.artifact:
                return entry.sha256
        joined = "".join(f"{f.path}:{f.sha256}\n" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(joined.encode()).hexdigest()

    def write(self, folder: Path) -> Path:
        # Atomic, so a server or a registry push never reads half a manifest; 0o644 as a plain
        # write would leave it (a temp file starts at 0o600), so a container's user can read it.
        return atomic_write_text(Path(folder) / MANIFEST_NAME, self.model_dump_json(indent=2), mode=0o644)

    @classmethod
    def describe_files(cls, folder: Path, artifact: str) -> list[FileEntry]:
        """List the files of a variant folder (the artifact file, or every file under it)."""
        folder = Path(folder)
        target = folder / artifact
        paths = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        return [
            FileEntry(path=str(p.relative_to(folder)), size_bytes=p.stat().st_size, sha256=sha256_file(p))
            for p in paths
        ]


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder_or_file: Path) -> VariantManifest:
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / MANIFEST_NAME
    return VariantManifest.model_validate(json.loads(path.read_text()))
