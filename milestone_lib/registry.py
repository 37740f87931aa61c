"""The model registry: variants, container images and profiling results on any S3 endpoint.

Speaks S3 through the `minio` SDK, so MinIO, AWS S3 and the local SeaweedFS (`registry_server`)
all work. Where to connect and with which keys comes from `RegistrySettings` (environment / env files).

    <models>/<pipeline>/<step>/<variant>/<version>/<file>...        the variant's files, as in its folder
    <models>/<pipeline>/<step>/<variant>/<version>/manifest.json    uploaded last: the version's commit mark
    <images>/<name>                                                 container image tarballs
    <results>/profiles/<run>/<name>.csv                             profiling tables
    <results>/reports/<run>/<file>                                  report files (md, png, html...)

A version is `YYYYMMDDTHHMMSS.ffffffZ-xxxxxx`: the UTC start of its push plus a random suffix, so
versions sort by time and two pushes of one variant, concurrent or not, never share a prefix.
Readers only see versions whose manifest exists, and the manifest goes up after every file: an
interrupted push leaves no visible version (`sweep_incomplete` removes its orphaned objects).
Every object carries its sha256 as user metadata; a pull recomputes the digest of every byte it
writes and refuses a mismatch, against the manifest for variant files, against the metadata otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, get_args

import certifi
import pandas as pd
import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.versioningconfig import ENABLED, VersioningConfig
from pydantic import ValidationError

from .errors import (
    BucketMissingError,
    ChecksumMismatchError,
    ObjectNotFoundError,
    RegistryCredentialsError,
    RegistryError,
    RegistryUnreachableError,
    VariantNotFoundError,
)
from .registry_server import (
    is_local_endpoint,
    mask_key,
    split_endpoint,
    start_server,
    with_local_credentials,
)
from .settings import ProjectSettings, RegistrySettings
from .variants.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Step,
    VariantManifest,
    sha256_file,
)

__all__ = [
    "BUILD_NOTEBOOK",
    "VERSION_RE",
    "ModelRegistry",
    "PulledVariant",
    "PushedVariant",
    "StoredObject",
    "VariantVersion",
    "new_version_id",
    "open_registry",
]

log = logging.getLogger(__name__)

BUILD_NOTEBOOK = "notebooks/01_build_variants.ipynb"
VERSION_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
SHA256_META = "sha256"  # travels as the `x-amz-meta-sha256` header
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_STEPS: tuple[str, ...] = get_args(Step)
_PART_SIZE = 64 * 1024 * 1024  # one PUT up to 64 MiB; multipart above (faster here than 5 MiB parts)
_CHUNK = 1024 * 1024
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken",
    "AuthorizationHeaderMalformed", "InvalidSecurity",
}
_MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "ResourceNotFound", "NoSuchObject"}
_LIST_COLUMNS = ["name", "version", "latest", "step", "family", "size", "format", "precision", "parameters",
                 "size_mb", "files", "created_at", "pushed_at"]


def new_version_id(now: datetime | None = None) -> str:
    """A fresh version: UTC time to the microsecond and 6 random hex digits, sortable as text."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(3)}"


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
class _VersionScan:
    step: str
    name: str
    version: str
    prefix: str
    manifest: Object | None = None
    objects: int = 0
    size_bytes: int = 0
    last_modified: datetime | None = None


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value or ""):
        raise RegistryError(f"{what} '{value}' cannot be a registry key; use letters, digits, '.', '_', '+' or '-'")
    return value


def _check_relative(path: str, variant: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or path == MANIFEST_NAME:
        raise RegistryError(
            f"variant '{variant}' lists the file '{path}', which is not a plain path inside its folder; "
            f"rebuild it with {BUILD_NOTEBOOK}"
        )
    return path


def _short_cause(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = re.sub(r"<[^>]*>:\s*", "", str(reason))  # drop "<HTTPConnection object at 0x...>: "
    return f"{type(reason).__name__}: {text}"[:200]


class ModelRegistry:
    """Variants, images and results in an S3 registry. Build one per process; methods are thread-safe.

    Args:
        settings: endpoint, keys, TLS, bucket names; default: `RegistrySettings()` from the environment.
            Empty keys are filled from the local server's credentials file when it holds them.
        max_workers: files transferred in parallel by one push or pull.
    """

    def __init__(self, settings: RegistrySettings | None = None, *, max_workers: int = 4) -> None:
        self.settings = with_local_credentials(settings or RegistrySettings())
        host, port, scheme_tls = split_endpoint(self.settings.endpoint)
        if not host:
            raise RegistryUnreachableError(self.settings.endpoint, "no host in the endpoint")
        self.secure = self.settings.secure if scheme_tls is None else scheme_tls
        self._address = f"{host}:{port}" if port else host
        self.max_workers = max(1, max_workers)
        timeout = self.settings.timeout_s
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            maxsize=max(10, 4 * self.max_workers),
            # A refused connection is final (say so at once); a dropped one or a 5xx is retried.
            retries=urllib3.Retry(total=2, connect=0, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
        self._client = Minio(
            self._address,
            access_key=self.settings.access_key.get_secret_value(),
            secret_key=self.settings.secret_key.get_secret_value(),
            secure=self.secure,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"ModelRegistry(endpoint='{self.endpoint}', access_key={mask_key(self.settings.access_key)})"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self._address}"

    @property
    def buckets(self) -> dict[str, str]:
        s = self.settings
        return {"models": s.models_bucket, "images": s.images_bucket, "results": s.results_bucket}

    def describe(self) -> dict[str, str]:
        """Where this registry points; safe to print (the access key is masked, the secret absent)."""
        return {"endpoint": self.endpoint, "access_key": mask_key(self.settings.access_key),
                "pipeline": self.settings.pipeline, **{f"{k}_bucket": v for k, v in self.buckets.items()}}

    # ----------------------------------------------------------------------- errors

    @contextlib.contextmanager
    def _errors(self, bucket: str, *, missing: Callable[[S3Error], RegistryError] | None = None) -> Iterator[None]:
        """Turn the SDK's exceptions into the package's, naming the value and the next step."""
        try:
            yield
        except S3Error as error:
            raise self._translate(error, bucket, missing) from None
        except (ServerError, InvalidResponseError) as error:
            raise RegistryUnreachableError(self.endpoint, f"it does not answer as S3: {str(error)[:160]}") from None
        except urllib3.exceptions.HTTPError as error:
            raise RegistryUnreachableError(self.endpoint, _short_cause(error)) from None

    def _translate(self, error: S3Error, bucket: str,
                   missing: Callable[[S3Error], RegistryError] | None) -> RegistryError:
        if error.code in _CREDENTIAL_CODES:
            return RegistryCredentialsError(self.endpoint, mask_key(self.settings.access_key))
        if error.code == "NoSuchBucket":
            return BucketMissingError(error.bucket_name or bucket)
        if error.code in _MISSING_CODES and missing is not None:
            return missing(error)
        if error.code in _MISSING_CODES:
            return ObjectNotFoundError(bucket, error.object_name or "?", hint="push it first")
        return RegistryError(
            f"registry at '{self.endpoint}' refused a request on bucket '{bucket}': {error.code} ({error.message}); "
            "check the server's log and the bucket's permissions"
        )

    # ----------------------------------------------------------------------- buckets

    def check(self) -> None:
        """Reach the server and prove the credentials (one bucket listing)."""
        with self._errors(""):
            self._client.list_buckets()

    def ensure_buckets(self) -> dict[str, bool]:
        """Create the missing buckets and turn versioning on where the server supports it.

        Returns each bucket with whether its versioning is on.
        """
        versioning: dict[str, bool] = {}
        for bucket in dict.fromkeys(self.buckets.values()):
            with self._errors(bucket):
                if not self._client.bucket_exists(bucket):
                    try:
                        self._client.make_bucket(bucket)
                    except S3Error as error:  # created meanwhile by another process: fine
                        if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
                try:
                    if self._client.get_bucket_versioning(bucket).status != ENABLED:
                        self._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
                    versioning[bucket] = True
                except S3Error as error:
                    if error.code == "NoSuchBucket":
                        raise
                    # Not implemented by the server, or not allowed to these keys: publish works without it.
                    log.info("bucket '%s': versioning stays off (%s)", bucket, error.code)
                    versioning[bucket] = False
        return versioning

    # ----------------------------------------------------------------------- objects

    def _put_file(self, bucket: str, key: str, path: Path, sha256: str) -> None:
        self._client.fput_object(bucket, key, str(path), metadata={SHA256_META: sha256},
                                 part_size=_PART_SIZE, num_parallel_uploads=2)

    def _put_bytes(self, bucket: str, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                                metadata={SHA256_META: digest})
        return digest

    def _get(self, bucket: str, key: str, target: Path | None, *, expected: str | None = None) -> tuple[bytes, str]:
        """Download one object (to `target`, or into memory) and verify its sha256.

        `expected` is the manifest's digest; without it the object's own sha256 metadata is the reference.
        """
        digest = hashlib.sha256()
        buffer = io.BytesIO()
        response = self._client.get_object(bucket, key)
        try:
            recorded = response.headers.get(f"x-amz-meta-{SHA256_META}")
            reference = expected or recorded
            if not reference:
                raise RegistryError(
                    f"'{bucket}/{key}' carries no sha256, so it cannot be verified; "
                    "it was not stored by milestone_lib: push it again with the registry module"
                )
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") if target is not None else contextlib.nullcontext(buffer) as out:
                for chunk in response.stream(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        finally:
            response.close()
            response.release_conn()
        actual = digest.hexdigest()
        if actual != reference:
            if target is not None:
                target.unlink(missing_ok=True)
            raise ChecksumMismatchError(f"{bucket}/{key}", reference, actual)
        return buffer.getvalue(), actual

    def _remove(self, bucket: str, keys: Iterable[str | DeleteObject]) -> int:
        objects = [k if isinstance(k, DeleteObject) else DeleteObject(k) for k in keys]
        removed = 0
        for start in range(0, len(objects), 1000):
            batch = objects[start:start + 1000]
            errors = list(self._client.remove_objects(bucket, batch))
            if errors:
                raise RegistryError(
                    f"registry could not remove {len(errors)} object(s) from bucket '{bucket}', e.g. "
                    f"'{errors[0].name}' ({errors[0].code}); retry, or check the bucket's permissions"
                )
            removed += len(batch)
        return removed

    # ----------------------------------------------------------------------- variants: layout and listing

    def _prefix(self, step: str, name: str, version: str | None = None) -> str:
        base = f"{self.settings.pipeline}/{step}/{name}/"
        return base + f"{version}/" if version else base

    def _scan(self, *, name: str | None = None, step: str | None = None) -> list[_VersionScan]:
        """Every version under the models bucket (or one variant), with or without its manifest."""
        bucket = self.settings.models_bucket
        prefixes = [self._prefix(s, name) for s in ([step] if step else _STEPS)] if name else (
            [f"{self.settings.pipeline}/{step}/"] if step else [f"{self.settings.pipeline}/"])
        scans: dict[str, _VersionScan] = {}
        depth = len(PurePosixPath(self.settings.pipeline).parts)
        with self._errors(bucket):
            for prefix in prefixes:
                for obj in self._client.list_objects(bucket, prefix=prefix, recursive=True):
                    parts = obj.object_name.split("/")
                    if len(parts) < depth + 4 or not VERSION_RE.match(parts[depth + 2]):
                        continue
                    s_step, s_name, version = parts[depth:depth + 3]
                    vprefix = "/".join(parts[:depth + 3]) + "/"
                    scan = scans.setdefault(vprefix, _VersionScan(s_step, s_name, version, vprefix))
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
            for s in self._scan(name=_check_name(name, "variant"), step=step) if s.manifest is not None
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
        now = datetime.now(timezone.utc)
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
        _check_name(manifest.name, "variant name")
        for entry in manifest.files:
            _check_relative(entry.path, manifest.name)
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

    def _run_all(self, work: Callable[[Any], None], items: Iterable[Any]) -> None:
        """Run `work` on every item in the pool; on the first failure cancel the rest and raise it."""
        with ThreadPoolExecutor(self.max_workers) as pool:
            futures: list[Future[None]] = [pool.submit(work, item) for item in items]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

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
            _check_relative(entry.path, name)
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

    # ----------------------------------------------------------------------- images

    def push_image(self, tarball: Path | str, *, name: str | None = None) -> StoredObject:
        """Store a container image tarball (e.g. from `docker save`) under `name` (default: its file name)."""
        path = Path(tarball)
        if not path.is_file():
            raise RegistryError(f"image tarball '{path}' does not exist; build it first (`make images`)")
        return self._push_file(self.settings.images_bucket, _check_name(name or path.name, "image name"), path)

    def pull_image(self, name: str, dest_dir: Path | str) -> StoredObject:
        """Download and verify an image tarball into `dest_dir`."""
        bucket = self.settings.images_bucket
        return self._pull_file(bucket, _check_name(name, "image name"), Path(dest_dir) / name,
                               hint="push it with `push_image` (or `make images`) first")

    def list_images(self) -> pd.DataFrame:
        return self._list_bucket(self.settings.images_bucket, "")

    # ----------------------------------------------------------------------- profiles and reports

    def push_profile(self, table: pd.DataFrame, *, name: str, run: str | None = None) -> StoredObject:
        """Store a profiling table as CSV (index dropped) under `profiles/<run>/<name>.csv`."""
        run = _check_name(run or new_version_id(), "run")
        key = f"profiles/{run}/{_check_name(name, 'profile name')}.csv"
        data = table.to_csv(index=False).encode()
        bucket = self.settings.results_bucket
        started = time.perf_counter()
        with self._errors(bucket):
            digest = self._put_bytes(bucket, key, data, content_type="text/csv")
        return StoredObject(bucket, key, len(data), digest, time.perf_counter() - started)

    def pull_profile(self, name: str, *, run: str | None = None) -> pd.DataFrame:
        """A profiling table, verified: from `run`, or the latest run that stored one by that name."""
        bucket = self.settings.results_bucket
        key = self._result_key("profiles", f"{_check_name(name, 'profile name')}.csv", run)
        with self._errors(bucket, missing=lambda e: ObjectNotFoundError(bucket, key, hint="push it first")):
            data, _ = self._get(bucket, key, None)
        return pd.read_csv(io.BytesIO(data))

    def push_report(self, path: Path | str, *, run: str | None = None) -> StoredObject:
        """Store a report file (markdown, plot, html...) under `reports/<run>/<file name>`."""
        path = Path(path)
        if not path.is_file():
            raise RegistryError(f"report '{path}' does not exist; run the notebook that writes it first")
        run = _check_name(run or new_version_id(), "run")
        return self._push_file(self.settings.results_bucket,
                               f"reports/{run}/{_check_name(path.name, 'report name')}", path)

    def pull_report(self, filename: str, dest_dir: Path | str, *, run: str | None = None) -> StoredObject:
        """Download and verify a report file (from `run`, or the latest run that stored it)."""
        bucket = self.settings.results_bucket
        key = self._result_key("reports", _check_name(filename, "report name"), run)
        return self._pull_file(bucket, key, Path(dest_dir) / filename, hint="push it with `push_report` first")

    def list_results(self) -> pd.DataFrame:
        """Every stored profile and report, with its kind and run."""
        table = self._list_bucket(self.settings.results_bucket, "", with_sha256=False)
        parts = [(key.split("/", 2) + ["", ""])[:3] for key in table["key"]]
        for position, column in enumerate(("kind", "run", "name")):
            table.insert(position, column, [p[position] for p in parts])
        return table

    def _result_key(self, kind: str, filename: str, run: str | None) -> str:
        bucket = self.settings.results_bucket
        if run:
            return f"{kind}/{_check_name(run, 'run')}/{filename}"
        with self._errors(bucket):
            runs = sorted(o.object_name.split("/")[1] for o in
                          self._client.list_objects(bucket, prefix=f"{kind}/", recursive=True)
                          if o.object_name.endswith("/" + filename) and o.object_name.count("/") == 2)
        if not runs:
            raise ObjectNotFoundError(bucket, f"{kind}/<run>/{filename}", hint=f"push it with `push_{kind[:-1]}` first")
        return f"{kind}/{runs[-1]}/{filename}"

    def _push_file(self, bucket: str, key: str, path: Path) -> StoredObject:
        started = time.perf_counter()
        digest = sha256_file(path)
        with self._errors(bucket):
            self._put_file(bucket, key, path, digest)
        return StoredObject(bucket, key, path.stat().st_size, digest, time.perf_counter() - started, path)

    def _pull_file(self, bucket: str, key: str, target: Path, *, hint: str) -> StoredObject:
        """Download to a hidden sibling, verify, then rename into place."""
        started = time.perf_counter()
        staging = target.with_name(f".{target.name}.pull-{secrets.token_hex(4)}")
        try:
            with self._errors(bucket, missing=lambda e: ObjectNotFoundError(bucket, key, hint=hint)):
                _, digest = self._get(bucket, key, staging)
            staging.replace(target)
        finally:
            staging.unlink(missing_ok=True)
        return StoredObject(bucket, key, target.stat().st_size, digest, time.perf_counter() - started, target)

    def _list_bucket(self, bucket: str, prefix: str, *, with_sha256: bool = True) -> pd.DataFrame:
        with self._errors(bucket):
            objects = list(self._client.list_objects(bucket, prefix=prefix, recursive=True))

            def row(obj: Object) -> dict[str, Any]:
                item: dict[str, Any] = {"key": obj.object_name, "size_mb": round((obj.size or 0) / 1e6, 3),
                                        "pushed_at": obj.last_modified}
                if with_sha256:
                    stat = self._client.stat_object(bucket, str(obj.object_name))
                    item["sha256"] = (stat.metadata or {}).get(f"x-amz-meta-{SHA256_META}", "")
                return item

            with ThreadPoolExecutor(self.max_workers) as pool:
                rows = list(pool.map(row, objects))
        columns = ["key", "size_mb", "pushed_at"] + (["sha256"] if with_sha256 else [])
        return pd.DataFrame(rows, columns=columns)


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

    When the endpoint is on this machine and nothing answers there, the local server is started
    first (`start_local`), and it keeps running afterwards like after `make registry-up`.
    """
    settings = settings or RegistrySettings()
    registry = ModelRegistry(settings)
    try:
        registry.check()
    except RegistryUnreachableError:
        if not (start_local and is_local_endpoint(settings.endpoint)):
            raise
        state = start_server(settings)
        log.info("registry: %s", state.describe())
        registry = ModelRegistry(settings)  # the server may just have generated the credentials
        registry.check()
    registry.ensure_buckets()
    return registry
