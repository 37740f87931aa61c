"""Container images in the registry, content-addressed: each layer stored once, whatever image holds it.

    <images>/blobs/sha256/<digest>            a layer (uncompressed tar) or an image config, by its sha256
    <images>/manifests/<repository>/<tag>.json  the image: its config and layers (digest, size), labels

In the spirit of the OCI image layout; Debian's engine writes the older `docker save` format
(manifest.json + `<id>/layer.tar` + `<config>.json`), which a push converts and a pull rebuilds.
All variant images share the runtime's layers, so pushing them uploads those once; a blob that
is already stored is not uploaded again. A pull verifies every blob against the digest its
manifest names (and every layer against the config's diff_ids) before `docker load`.
Only image content goes up: the registry's keys never enter an image.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from minio.error import S3Error

from ..contracts import sha256_file
from ..errors import ChecksumMismatchError, ObjectNotFoundError
from .store import S3Store

__all__ = ["ImageLayers", "PulledImage", "PushedImage"]

_BLOBS = "blobs/sha256/"
_MANIFESTS = "manifests/"
_LABEL_VARIANT = "org.milestone.variant"
_LABEL_STEP = "org.milestone.step"


@dataclass(frozen=True)
class PushedImage:
    """What a push stored: the image's bytes and how many of them had to be uploaded."""

    ref: str
    layers: int
    size_bytes: int
    uploaded_bytes: int
    seconds: float


@dataclass(frozen=True)
class PulledImage:
    """What a pull loaded: every blob verified."""

    ref: str
    layers: int
    size_bytes: int
    seconds: float


def _split(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    return repository, tag or "latest"


class ImageLayers(S3Store):
    """Push / pull / list container images as deduplicated blobs (needs a `docker` SDK client)."""

    def _blob_stored(self, digest: str) -> bool:
        try:
            self._client.stat_object(self.settings.images_bucket, _BLOBS + digest)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return False
            raise
        return True

    def push_container_image(self, docker_client: Any, ref: str, *, workdir: Path | None = None) -> PushedImage:
        """Store image `ref` of the engine: new blobs, then its manifest (the push's commit mark)."""
        started = time.perf_counter()
        repository, tag = _split(ref)
        bucket = self.settings.images_bucket
        image = docker_client.images.get(f"{repository}:{tag}")
        with tempfile.TemporaryDirectory(prefix="image-push-", dir=workdir) as tmp:
            saved = Path(tmp) / "image.tar"
            with open(saved, "wb") as out:
                out.writelines(image.save(named=False))
            uploaded = total = 0
            with tarfile.open(saved) as archive:
                (entry,) = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
                blobs: list[tuple[str, int, str]] = []  # (digest, size, member)
                for member in [entry["Config"], *entry["Layers"]]:
                    extracted = Path(tmp) / "blob"
                    with archive.extractfile(member) as source, open(extracted, "wb") as target:  # type: ignore[union-attr]
                        while chunk := source.read(1 << 20):
                            target.write(chunk)
                    digest, size = sha256_file(extracted), extracted.stat().st_size
                    blobs.append((digest, size, member))
                    total += size
                    with self._errors(bucket):
                        if not self._blob_stored(digest):
                            self._put_file(bucket, _BLOBS + digest, extracted, digest)
                            uploaded += size
            labels = (image.attrs.get("Config") or {}).get("Labels") or {}
            manifest = {
                "schemaVersion": 2, "name": repository, "tag": tag,
                "config": {"digest": f"sha256:{blobs[0][0]}", "size": blobs[0][1]},
                "layers": [{"digest": f"sha256:{d}", "size": s} for d, s, _ in blobs[1:]],
                "labels": labels,
            }
        data = json.dumps(manifest, indent=1).encode()
        with self._errors(bucket):
            self._put_bytes(bucket, f"{_MANIFESTS}{repository}/{tag}.json", data, content_type="application/json")
        return PushedImage(f"{repository}:{tag}", len(blobs) - 1, total, uploaded, time.perf_counter() - started)

    def image_manifest(self, ref: str) -> dict[str, Any]:
        """The stored manifest of `ref` (verified against its sha256); `:latest` = the last one pushed."""
        repository, tag = _split(ref)
        bucket, key = self.settings.images_bucket, f"{_MANIFESTS}{repository}/{tag}.json"
        if tag == "latest":
            with self._errors(bucket):
                stored = list(self._client.list_objects(bucket, prefix=f"{_MANIFESTS}{repository}/"))
            if stored and not any(o.object_name == key for o in stored):
                key = str(max(stored, key=lambda o: o.last_modified).object_name)
        hint = "push it first (notebooks/02 or milestone_lib.containers.push_images)"
        with self._errors(bucket, missing=lambda e: ObjectNotFoundError(bucket, key, hint=hint)):
            data, _ = self._get(bucket, key, None)
        return json.loads(data)

    def pull_container_image(self, docker_client: Any, ref: str, *, workdir: Path | None = None) -> PulledImage:
        """Fetch every blob of `ref`, verify each digest, rebuild a `docker save` tarball and load it."""
        started = time.perf_counter()
        manifest = self.image_manifest(ref)
        repository, tag = manifest["name"], manifest["tag"]
        bucket = self.settings.images_bucket
        with tempfile.TemporaryDirectory(prefix="image-pull-", dir=workdir) as tmp:
            folder = Path(tmp)
            paths: list[str] = []
            for blob in [manifest["config"], *manifest["layers"]]:
                digest = blob["digest"].removeprefix("sha256:")
                name = f"{digest}.json" if blob is manifest["config"] else f"{digest}/layer.tar"
                key = _BLOBS + digest
                with self._errors(bucket, missing=lambda e, k=key: ObjectNotFoundError(
                        bucket, k, hint=f"the image '{ref}' is incomplete in the registry; push it again")):
                    self._get(bucket, key, folder / name, expected=digest)
                paths.append(name)
            diff_ids = json.loads((folder / paths[0]).read_text())["rootfs"]["diff_ids"]
            layer_ids = [f"sha256:{p.split('/')[0]}" for p in paths[1:]]
            if diff_ids != layer_ids:
                raise ChecksumMismatchError(f"{bucket}/{_MANIFESTS}{repository}/{tag}.json (layers vs config)",
                                            ",".join(diff_ids)[:80], ",".join(layer_ids)[:80])
            (folder / "manifest.json").write_text(json.dumps(
                [{"Config": paths[0], "RepoTags": [f"{repository}:{tag}"], "Layers": paths[1:]}]))
            tarball = folder.parent / f"{folder.name}.tar"
            try:
                with tarfile.open(tarball, "w") as archive:
                    for name in ["manifest.json", *paths]:
                        archive.add(folder / name, arcname=name)
                with open(tarball, "rb") as data:
                    docker_client.images.load(data)
                if _split(ref)[1] == "latest":  # asked for latest: tag it so, as the engine would
                    docker_client.images.get(f"{repository}:{tag}").tag(repository, "latest")
            finally:
                tarball.unlink(missing_ok=True)
        size = sum(layer["size"] for layer in manifest["layers"])
        return PulledImage(f"{repository}:{tag}", len(manifest["layers"]), size, time.perf_counter() - started)

    def list_container_images(self) -> pd.DataFrame:
        """One row per stored image: name, tag, size, layers, the variant (and step) it serves."""
        bucket = self.settings.images_bucket
        with self._errors(bucket):
            keys = [str(o.object_name) for o in self._client.list_objects(bucket, prefix=_MANIFESTS, recursive=True)]
        rows = []
        for key in sorted(keys):
            with self._errors(bucket):
                data, _ = self._get(bucket, key, None)
            manifest = json.loads(data)
            labels = manifest.get("labels") or {}
            rows.append({"name": manifest["name"], "tag": manifest["tag"],
                         "size_mb": round(sum(layer["size"] for layer in manifest["layers"]) / 1e6, 1),
                         "layers": len(manifest["layers"]), "variant": labels.get(_LABEL_VARIANT, ""),
                         "step": labels.get(_LABEL_STEP, "")})
        return pd.DataFrame(rows, columns=["name", "tag", "size_mb", "layers", "variant", "step"])

    def stored_blob_bytes(self) -> int:
        """Bytes the image blobs take in the registry (each layer once)."""
        bucket = self.settings.images_bucket
        with self._errors(bucket):
            return sum(o.size or 0 for o in self._client.list_objects(bucket, prefix=_BLOBS, recursive=True))
