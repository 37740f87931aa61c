"""Contracts shared by every stage: the pipeline's steps and the manifest of a variant.

The bottom layer: it imports nothing else of the package but `files`, so data, runtimes,
variants, registry, serving and deploy can all depend on it without a cycle.
"""

from __future__ import annotations

from .manifest import (
    MANIFEST_NAME,
    FileEntry,
    Format,
    Precision,
    TensorSpec,
    VariantManifest,
    load_manifest,
    sha256_file,
)
from .steps import STEPS, Step

__all__ = [
    "MANIFEST_NAME",
    "STEPS",
    "FileEntry",
    "Format",
    "Precision",
    "Step",
    "TensorSpec",
    "VariantManifest",
    "load_manifest",
    "sha256_file",
]
