"""The S3 connection and the object operations the rest of the registry builds on.

Every object carries its sha256 as user metadata (`SHA256_META`); `_get` recomputes the digest of
every byte it writes and refuses a mismatch. `_errors` turns the SDK's exceptions into the package's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.versioningconfig import ENABLED, VersioningConfig

from ..errors import (
    BucketMissingError,
    ChecksumMismatchError,
    ObjectNotFoundError,
    RegistryCredentialsError,
    RegistryError,
    RegistryServerFailureError,
    RegistryUnreachableError,
)
from ..settings import RegistrySettings
from .connection import resolve_settings
from .credentials import mask_key
from .endpoint import LOCAL_HOSTS, split_endpoint

__all__ = ["SHA256_META", "S3Store"]

log = logging.getLogger(__name__)

SHA256_META = "sha256"  # travels as the `x-amz-meta-sha256` header
_PART_SIZE = 64 * 1024 * 1024  # one PUT up to 64 MiB; multipart above (faster here than 5 MiB parts)
_CHUNK = 1024 * 1024
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken",
    "AuthorizationHeaderMalformed", "InvalidSecurity",
}
_MISSING_CODES = {"NoSuchKey", "NoSuchVersion", "ResourceNotFound", "NoSuchObject"}


def _short_cause(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = re.sub(r"<[^>]*>:\s*", "", str(reason))  # drop "<HTTPConnection object at 0x...>: "
    return f"{type(reason).__name__}: {text}"[:200]


class S3Store:
    """One S3 endpoint with the registry's buckets; the base of `ModelRegistry` (see it for the arguments)."""

    def __init__(self, settings: RegistrySettings | None = None, *, max_workers: int = 4) -> None:
        self.settings = resolve_settings(settings)
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
        except urllib3.exceptions.MaxRetryError as error:
            if isinstance(error.reason, urllib3.exceptions.ResponseError):  # every retry got a 5xx
                raise RegistryServerFailureError(self.endpoint, error.reason, log_hint=self._log_hint()) from None
            raise RegistryUnreachableError(self.endpoint, _short_cause(error)) from None
        except urllib3.exceptions.HTTPError as error:
            raise RegistryUnreachableError(self.endpoint, _short_cause(error)) from None

    def _log_hint(self) -> str:
        host, _, _ = split_endpoint(self.settings.endpoint)
        if host in LOCAL_HOSTS:
            logs = Path(self.settings.data_dir) / "logs"
            return (f"read its log (the local server's is under {logs}); if the disk is short, free some and "
                    "restart it with `make registry-down registry-up`")
        return "read the server's log, or ask its operator"

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

    # ----------------------------------------------------------------------- parallel transfers

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
