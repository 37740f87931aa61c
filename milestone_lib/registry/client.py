"""`ModelRegistry`, the registry's one class, with the variants' write side; and `open_registry`.

A push uploads every file of a variant folder under a fresh version prefix, then its manifest: the
version becomes visible only once complete. A pull verifies every byte against that manifest and
replaces the destination folder only once all files verified.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from minio.deleteobjects import DeleteObject
from pydantic import ValidationError

from ..contracts import MANIFEST_NAME, FileEntry, VariantManifest, sha256_file
from ..errors import (
    ChecksumMismatchError,
    RegistryCredentialsError,
    RegistryError,
    RegistryUnreachableError,
)
from ..settings import ProjectSettings, RegistrySettings
from .catalog import VariantCatalog
from .credentials import mask_key
from .endpoint import endpoint_is_explicit, is_local_endpoint
from .images import ImageLayers
from .layout import BUILD_NOTEBOOK, check_name, check_relative, new_version_id
from .local_server.launcher import start_server
from .local_server.state import server_status
from .records import PulledVariant, PushedVariant
from .results import ResultStore

__all__ = ["ModelRegistry", "open_registry"]

log = logging.getLogger(__name__)


class ModelRegistry(VariantCatalog, ResultStore, ImageLayers):
    """Variants, images and results in an S3 registry. Build one per process; methods are thread-safe.

    Args:
        settings: endpoint, keys, TLS, bucket names; default: `RegistrySettings()` from the environment.
            Empty keys are filled from the local server's credentials file when it holds them.
        max_workers: files transferred in parallel by one push or pull.

    The connection and the object operations come from `S3Store` (store.py), listing and reading
    variants from `VariantCatalog` (catalog.py), images and results from `ResultStore` (results.py),
    container images as deduplicated layers from `ImageLayers` (images.py).
    """

    def __repr__(self) -> str:
        return f"ModelRegistry(endpoint='{self.endpoint}', access_key={mask_key(self.settings.access_key)})"

    # ----------------------------------------------------------------------- variants: push, pull, delete

    def push_variant(self, folder: Path | str, *,
                     progress: Callable[[str, int], None] | None = None) -> PushedVariant:
        """Publish a variant folder (its files, then its manifest) as a new version.

        Every local file is checked against the manifest first. `progress(path, bytes)` is called
        from the upload threads after each file.
        """
        folder = Path(folder)
        manifest_path = folder / MANIFEST_NAME
        if not manifest_path.is_file():
            raise RegistryError(f"'{folder}' holds no {MANIFEST_NAME}; build the variant with {BUILD_NOTEBOOK} first")
        manifest_bytes = manifest_path.read_bytes()
        try:
            manifest = VariantManifest.model_validate_json(manifest_bytes)
        except ValidationError as error:
            raise RegistryError(
                f"'{manifest_path}' is not a valid VariantManifest ({error.error_count()} errors); "
                f"rebuild the variant with {BUILD_NOTEBOOK}"
            ) from None
        check_name(manifest.name, "variant name")
        for entry in manifest.files:
            check_relative(entry.path, manifest.name)
        self._verify_local(folder, manifest)

        bucket = self.settings.models_bucket
        version = new_version_id()
        prefix = self._prefix(manifest.step, manifest.name, version)
        started = time.perf_counter()

        def upload(entry: FileEntry) -> None:
            self._put_file(bucket, prefix + entry.path, folder / entry.path, entry.sha256)
            if progress is not None:
                progress(entry.path, entry.size_bytes)

        with self._errors(bucket):
            try:
                self._run_all(upload, manifest.files)
                # Last: the version becomes visible only now, with every file in place.
                self._put_bytes(bucket, prefix + MANIFEST_NAME, manifest_bytes, content_type="application/json")
            except BaseException:
                with contextlib.suppress(Exception):  # best effort: unpublished objects are invisible anyway
                    self._remove(bucket, [o.object_name for o in
                                          self._client.list_objects(bucket, prefix=prefix, recursive=True)])
                raise
        pushed = PushedVariant(manifest.name, manifest.step, version, prefix, len(manifest.files),
                               manifest.size_bytes, time.perf_counter() - started)
        log.info("pushed %s version %s: %d files, %.1f MB in %.2f s", pushed.name, version, pushed.files,
                 pushed.size_bytes / 1e6, pushed.seconds)
        return pushed

    def _verify_local(self, folder: Path, manifest: VariantManifest) -> None:
        for entry in manifest.files:
            path = folder / entry.path
            if not path.is_file():
                raise RegistryError(
                    f"variant '{manifest.name}' lists '{entry.path}' but '{folder}' lacks it; "
                    f"rebuild the variant with {BUILD_NOTEBOOK}"
                )
        with ThreadPoolExecutor(self.max_workers) as pool:
            digests = list(pool.map(lambda e: sha256_file(folder / e.path), manifest.files))
        for entry, actual in zip(manifest.files, digests):
            if actual != entry.sha256:
                raise ChecksumMismatchError(
                    str(folder / entry.path), entry.sha256, actual,
                    hint=f"the local file changed after its manifest was written: rebuild it with {BUILD_NOTEBOOK}",
                )

    def push_variants(self, variants_dir: Path | str | None = None, *, limit: int | None = None) -> pd.DataFrame:
        """Push every variant folder under `variants_dir` (default: the project's), smallest first.

        Args:
            limit: push only this many (the smallest), e.g. for a smoke run.
        """
        root = Path(variants_dir) if variants_dir else ProjectSettings().variants_dir
        folders = sorted(p.parent for p in root.glob(f"*/{MANIFEST_NAME}")) if root.is_dir() else []
        if not folders:
            raise RegistryError(
                f"no variants in '{root}' (no */{MANIFEST_NAME}): nothing to push; "
                f"run {BUILD_NOTEBOOK} (or `make variants`) first"
            )
        folders.sort(key=lambda p: (sum(f.stat().st_size for f in p.rglob("*") if f.is_file()), p.name))
        rows = []
        for folder in folders[:limit]:
            pushed = self.push_variant(folder)
            rows.append({"name": pushed.name, "step": pushed.step, "version": pushed.version, "files": pushed.files,
                         "size_mb": round(pushed.size_bytes / 1e6, 3), "seconds": round(pushed.seconds, 3),
                         "mb_per_s": round(pushed.mb_per_s, 1)})
        return pd.DataFrame(rows)

    def pull_variant(self, name: str, dest: Path | str, *, version: str | None = None,
                     step: str | None = None) -> PulledVariant:
        """Download a version (default: the latest) into the folder `dest`, verifying every file.

        The files land in a hidden sibling folder first, which replaces `dest` only once all of
        them verified: a failed pull leaves `dest` as it was.
        """
        started = time.perf_counter()
        ref = self.resolve(name, version, step=step)
        manifest_bytes, _ = self._read_manifest_bytes(ref)
        manifest = self._parse_manifest(manifest_bytes, ref)
        for entry in manifest.files:
            check_relative(entry.path, name)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f".{dest.name}.pull-{secrets.token_hex(4)}"
        staging.mkdir()

        def download(entry: FileEntry) -> None:
            key = ref.prefix + entry.path
            gone = ChecksumMismatchError(
                f"{ref.bucket}/{key}", entry.sha256, "<missing>",
                hint="the manifest lists an object the registry lacks: push the variant again",
            )
            with self._errors(ref.bucket, missing=lambda e: gone):
                self._get(ref.bucket, key, staging / entry.path, expected=entry.sha256)

        try:
            self._run_all(download, manifest.files)
            (staging / MANIFEST_NAME).write_bytes(manifest_bytes)
            _replace_folder(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        pulled = PulledVariant(name, ref.version, dest, manifest, manifest.size_bytes,
                               time.perf_counter() - started, len(manifest.files))
        log.info("pulled %s version %s into %s: %d files verified", name, ref.version, dest, pulled.files_verified)
        return pulled

    def delete_variant(self, name: str, version: str, *, step: str | None = None, purge: bool = False) -> int:
        """Delete one published version; returns the objects removed.

        The manifest goes first, so readers stop seeing the version before any file disappears.
        With bucket versioning the old bytes stay recoverable unless `purge` removes every object
        version too.
        """
        if version in ("", "latest"):
            raise RegistryError(f"delete_variant needs an exact version of '{name}', not '{version}'; "
                                "list them with `list_variants(name=...)`")
        ref = self.resolve(name, version, step=step)
        bucket = ref.bucket
        with self._errors(bucket):
            self._client.remove_object(bucket, ref.manifest_key)
            keys = [o.object_name for o in self._client.list_objects(bucket, prefix=ref.prefix, recursive=True)]
            removed = 1 + self._remove(bucket, keys)
            if purge:
                versions = [DeleteObject(o.object_name, o.version_id) for o in
                            self._client.list_objects(bucket, prefix=ref.prefix, recursive=True, include_version=True)
                            if o.version_id]
                self._remove(bucket, versions)
        log.info("deleted %s version %s (%d objects%s)", name, version, removed, ", purged" if purge else "")
        return removed


def _replace_folder(staging: Path, dest: Path) -> None:
    """Put `staging` where `dest` is, keeping the window without a `dest` to two renames."""
    if dest.is_file() or dest.is_symlink():
        raise RegistryError(f"pull destination '{dest}' is a file; pass a folder path")
    if not dest.exists():
        staging.rename(dest)
        return
    old = dest.parent / f".{dest.name}.old-{secrets.token_hex(4)}"
    dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def open_registry(settings: RegistrySettings | None = None, *, start_local: bool = True) -> ModelRegistry:
    """Connect to the registry and make sure its buckets exist.

    Without an explicit endpoint the registry is this checkout's local server: it is started
    when not running (`start_local`), on `local_port` or on a free port when another checkout's
    server holds that one, and keeps running afterwards like after `make registry-up`. An explicit
    local endpoint where nothing answers gets a server on exactly that port.
    """
    settings = settings or RegistrySettings()
    explicit = endpoint_is_explicit(settings)
    if start_local and not explicit and server_status(settings) is None:
        log.info("registry: %s", start_server(settings).describe())
    registry = ModelRegistry(settings)
    try:
        registry.check()
    except RegistryCredentialsError as error:
        if not is_local_endpoint(registry.settings.endpoint):
            raise
        # Most often a local registry started from another checkout (with its own keys) holds the port.
        raise RegistryCredentialsError(error.endpoint, error.access_key_hint, hint=(
            "if another checkout's local registry holds this port, stop it there (`make registry-down`), "
            "or unset MILESTONE_REGISTRY_ENDPOINT so that this checkout's registry takes a free port")) from None
    except RegistryUnreachableError:
        if not (start_local and explicit and is_local_endpoint(settings.endpoint)):
            raise
        log.info("registry: %s", start_server(settings).describe())
        registry = ModelRegistry(settings)  # the server may just have generated the credentials
        registry.check()
    registry.ensure_buckets()
    return registry
