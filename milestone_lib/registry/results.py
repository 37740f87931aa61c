"""Profiling results: single objects, each verified by its sha256 metadata.

    <results>/profiles/<run>/<name>.csv                             profiling tables
    <results>/reports/<run>/<file>                                  report files (md, png, html...)
"""

from __future__ import annotations

import io
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from minio.datatypes import Object

from ..contracts import sha256_file
from ..errors import ObjectNotFoundError, RegistryError
from .layout import check_name, new_version_id
from .records import StoredObject
from .store import SHA256_META, S3Store

__all__ = ["ResultStore"]


class ResultStore(S3Store):
    """Profiles and reports, by run, in the results bucket (container images: `images.ImageLayers`)."""

    # ----------------------------------------------------------------------- profiles and reports

    def push_profile(self, table: pd.DataFrame, *, name: str, run: str | None = None) -> StoredObject:
        """Store a profiling table as CSV (index dropped) under `profiles/<run>/<name>.csv`."""
        run = check_name(run or new_version_id(), "run")
        key = f"profiles/{run}/{check_name(name, 'profile name')}.csv"
        data = table.to_csv(index=False).encode()
        bucket = self.settings.results_bucket
        started = time.perf_counter()
        with self._errors(bucket):
            digest = self._put_bytes(bucket, key, data, content_type="text/csv")
        return StoredObject(bucket, key, len(data), digest, time.perf_counter() - started)

    def pull_profile(self, name: str, *, run: str | None = None) -> pd.DataFrame:
        """A profiling table, verified: from `run`, or the latest run that stored one by that name."""
        bucket = self.settings.results_bucket
        key = self._result_key("profiles", f"{check_name(name, 'profile name')}.csv", run)
        with self._errors(bucket, missing=lambda e: ObjectNotFoundError(bucket, key, hint="push it first")):
            data, _ = self._get(bucket, key, None)
        return pd.read_csv(io.BytesIO(data))

    def push_report(self, path: Path | str, *, run: str | None = None) -> StoredObject:
        """Store a report file (markdown, plot, html...) under `reports/<run>/<file name>`."""
        path = Path(path)
        if not path.is_file():
            raise RegistryError(f"report '{path}' does not exist; run the notebook that writes it first")
        run = check_name(run or new_version_id(), "run")
        return self._push_file(self.settings.results_bucket,
                               f"reports/{run}/{check_name(path.name, 'report name')}", path)

    def pull_report(self, filename: str, dest_dir: Path | str, *, run: str | None = None) -> StoredObject:
        """Download and verify a report file (from `run`, or the latest run that stored it)."""
        bucket = self.settings.results_bucket
        key = self._result_key("reports", check_name(filename, "report name"), run)
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
            return f"{kind}/{check_name(run, 'run')}/{filename}"
        with self._errors(bucket):
            runs = sorted(o.object_name.split("/")[1] for o in
                          self._client.list_objects(bucket, prefix=f"{kind}/", recursive=True)
                          if o.object_name.endswith("/" + filename) and o.object_name.count("/") == 2)
        if not runs:
            raise ObjectNotFoundError(bucket, f"{kind}/<run>/{filename}", hint=f"push it with `push_{kind[:-1]}` first")
        return f"{kind}/{runs[-1]}/{filename}"

    # ----------------------------------------------------------------------- single objects

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
