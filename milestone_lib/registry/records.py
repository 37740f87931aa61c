"""What the registry's operations return: published versions, push and pull results, stored objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from minio.datatypes import Object

from ..contracts import MANIFEST_NAME, VariantManifest

__all__ = ["PulledVariant", "PushedVariant", "StoredObject", "VariantVersion", "VersionScan"]


@dataclass(frozen=True)
class VariantVersion:
    """One published (manifest present) version of a variant."""

    name: str
    step: str
    version: str
    bucket: str
    prefix: str
    """Key prefix of the version's objects, ending in '/'."""
    pushed_at: datetime | None = None

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME


@dataclass(frozen=True)
class PushedVariant:
    """What `push_variant` published."""

    name: str
    step: str
    version: str
    prefix: str
    files: int
    size_bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.size_bytes / 1e6 / max(self.seconds, 1e-9)


@dataclass(frozen=True)
class PulledVariant:
    """A variant folder written by `pull_variant`, every file verified against its manifest."""

    name: str
    version: str
    folder: Path
    manifest: VariantManifest
    size_bytes: int
    seconds: float
    files_verified: int

    def __fspath__(self) -> str:
        return str(self.folder)

    @property
    def mb_per_s(self) -> float:
        return self.size_bytes / 1e6 / max(self.seconds, 1e-9)

    def files_table(self) -> pd.DataFrame:
        """The manifest's files, each marked verified (a pull that returned verified them all)."""
        return pd.DataFrame(
            [{"path": f.path, "size_bytes": f.size_bytes, "sha256": f.sha256, "verified": True}
             for f in self.manifest.files]
        )

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": m.name, "version": self.version, "step": m.step, "format": m.format,
            "precision": m.precision, "artifact": m.artifact, "sha256": m.sha256, "files_verified": self.files_verified,
            "size_mb": round(self.size_bytes / 1e6, 3), "accuracy": dict(m.accuracy), "folder": str(self.folder),
        }


@dataclass(frozen=True)
class StoredObject:
    """One object pushed to or pulled from the registry."""

    bucket: str
    key: str
    size_bytes: int
    sha256: str
    seconds: float = 0.0
    path: Path | None = field(default=None, compare=False)
    """The local file (pushed from or pulled to)."""


@dataclass
class VersionScan:
    """One version prefix found by a listing, published (manifest present) or not."""

    step: str
    name: str
    version: str
    prefix: str
    manifest: Object | None = None
    objects: int = 0
    size_bytes: int = 0
    last_modified: datetime | None = None
