"""Finding published variant versions: listing, resolving 'latest', reading manifests, sweeping leftovers.

Readers only see versions whose manifest exists, and the manifest goes up after every file: an
interrupted push leaves objects but no visible version (`sweep_incomplete` removes them).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ..contracts import MANIFEST_NAME, STEPS, VariantManifest
from ..errors import RegistryError, VariantNotFoundError
from .layout import VERSION_RE, check_name, variant_prefix
from .records import VariantVersion, VersionScan
from .store import S3Store

__all__ = ["VariantCatalog"]

log = logging.getLogger(__name__)

_LIST_COLUMNS = ["name", "version", "latest", "step", "family", "size", "format", "precision", "parameters",
                 "size_mb", "files", "created_at", "pushed_at"]


class VariantCatalog(S3Store):
    """The read side of variants in the models bucket (and the sweep of interrupted pushes)."""

    def _prefix(self, step: str, name: str, version: str | None = None) -> str:
        return variant_prefix(self.settings.pipeline, step, name, version)

    def _scan(self, *, name: str | None = None, step: str | None = None) -> list[VersionScan]:
        """Every version under the models bucket (or one variant), with or without its manifest."""
        bucket = self.settings.models_bucket
        prefixes = [self._prefix(s, name) for s in ([step] if step else STEPS)] if name else (
            [f"{self.settings.pipeline}/{step}/"] if step else [f"{self.settings.pipeline}/"])
        scans: dict[str, VersionScan] = {}
        depth = len(PurePosixPath(self.settings.pipeline).parts)
        with self._errors(bucket):
            for prefix in prefixes:
                for obj in self._client.list_objects(bucket, prefix=prefix, recursive=True):
                    parts = obj.object_name.split("/")
                    if len(parts) < depth + 4 or not VERSION_RE.match(parts[depth + 2]):
                        continue
                    s_step, s_name, version = parts[depth:depth + 3]
                    vprefix = "/".join(parts[:depth + 3]) + "/"
                    scan = scans.setdefault(vprefix, VersionScan(s_step, s_name, version, vprefix))
                    scan.objects += 1
                    scan.size_bytes += obj.size or 0
                    if obj.last_modified and (scan.last_modified is None or obj.last_modified > scan.last_modified):
                        scan.last_modified = obj.last_modified
                    if len(parts) == depth + 4 and parts[-1] == MANIFEST_NAME:
                        scan.manifest = obj
        return sorted(scans.values(), key=lambda s: (s.name, s.version))

    def list_versions(self, name: str, *, step: str | None = None) -> list[VariantVersion]:
        """The published versions of a variant, oldest first."""
        bucket = self.settings.models_bucket
        return [
            VariantVersion(s.name, s.step, s.version, bucket, s.prefix, s.manifest.last_modified)
            for s in self._scan(name=check_name(name, "variant"), step=step) if s.manifest is not None
        ]

    def resolve(self, name: str, version: str | None = None, *, step: str | None = None) -> VariantVersion:
        """A published version of a variant: `version`, or the latest when None or 'latest'."""
        versions = self.list_versions(name, step=step)
        bucket = self.settings.models_bucket
        if not versions:
            raise VariantNotFoundError(name, bucket=bucket)
        if version in (None, "latest"):
            return versions[-1]
        for candidate in versions:
            if candidate.version == version:
                return candidate
        raise VariantNotFoundError(name, version=version, bucket=bucket, known=[v.version for v in versions])

    def read_manifest(self, ref: VariantVersion) -> VariantManifest:
        """The stored manifest of a version, its bytes verified against their recorded sha256."""
        data, _ = self._read_manifest_bytes(ref)
        return self._parse_manifest(data, ref)

    def _read_manifest_bytes(self, ref: VariantVersion) -> tuple[bytes, str]:
        with self._errors(ref.bucket, missing=lambda e: VariantNotFoundError(ref.name, version=ref.version,
                                                                            bucket=ref.bucket)):
            return self._get(ref.bucket, ref.manifest_key, None)

    def _parse_manifest(self, data: bytes, ref: VariantVersion) -> VariantManifest:
        try:
            manifest = VariantManifest.model_validate_json(data)
        except ValidationError as error:
            raise RegistryError(
                f"the manifest of variant '{ref.name}' version '{ref.version}' is not a valid VariantManifest "
                f"({error.error_count()} errors); delete that version and push the variant again"
            ) from None
        if manifest.name != ref.name or manifest.step != ref.step:
            raise RegistryError(
                f"'{ref.bucket}/{ref.manifest_key}' describes '{manifest.step}/{manifest.name}', not its place "
                f"'{ref.step}/{ref.name}'; delete that version and push the variant again"
            )
        return manifest

    def list_variants(self, *, name: str | None = None, step: str | None = None,
                      latest_only: bool = False) -> pd.DataFrame:
        """Every published version as a table: manifest fields, size, accuracy (`accuracy_<metric>`)."""
        refs = [VariantVersion(s.name, s.step, s.version, self.settings.models_bucket, s.prefix,
                               s.manifest.last_modified) for s in self._scan(name=name, step=step) if s.manifest]
        latest = {ref.name: ref.version for ref in refs}  # refs are sorted by (name, version)
        if latest_only:
            refs = [ref for ref in refs if latest[ref.name] == ref.version]
        with ThreadPoolExecutor(self.max_workers) as pool:
            manifests = list(pool.map(self.read_manifest, refs))
        rows = []
        for ref, m in zip(refs, manifests):
            row: dict[str, Any] = {
                "name": ref.name, "version": ref.version, "latest": latest[ref.name] == ref.version, "step": m.step,
                "family": m.family, "size": m.size, "format": m.format, "precision": m.precision,
                "parameters": m.parameters, "size_mb": round(m.size_bytes / 1e6, 3), "files": len(m.files),
                "created_at": m.created_at, "pushed_at": ref.pushed_at,
            }
            row.update({f"accuracy_{metric}": value for metric, value in m.accuracy.items()})
            rows.append(row)
        return pd.DataFrame(rows, columns=None if rows else _LIST_COLUMNS)

    def list_incomplete(self, *, older_than_s: float = 0.0) -> pd.DataFrame:
        """Versions with objects but no manifest: pushes in progress, or interrupted ones."""
        now = datetime.now(UTC)
        rows = [
            {"name": s.name, "step": s.step, "version": s.version, "objects": s.objects,
             "size_mb": round(s.size_bytes / 1e6, 3), "last_modified": s.last_modified}
            for s in self._scan()
            if s.manifest is None and s.last_modified is not None
            and (now - s.last_modified).total_seconds() >= older_than_s
        ]
        return pd.DataFrame(rows, columns=["name", "step", "version", "objects", "size_mb", "last_modified"])

    def sweep_incomplete(self, *, older_than_s: float = 3600.0) -> int:
        """Remove the objects of interrupted pushes idle for `older_than_s`; returns objects removed.

        The default hour leaves pushes in progress alone.
        """
        bucket = self.settings.models_bucket
        removed = 0
        for row in self.list_incomplete(older_than_s=older_than_s).itertuples():
            prefix = self._prefix(row.step, row.name, row.version)
            with self._errors(bucket):
                keys = [o.object_name for o in self._client.list_objects(bucket, prefix=prefix, recursive=True)]
                removed += self._remove(bucket, keys)
            log.info("swept interrupted push %s (%d objects)", prefix, len(keys))
        return removed
