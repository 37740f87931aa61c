"""The model registry: variants, container images and profiling results on any S3 endpoint.

Speaks S3 through the `minio` SDK, so MinIO, AWS S3 and the local SeaweedFS (`local_server/`)
all work. Where to connect and with which keys comes from `RegistrySettings` (environment / env files);
without an explicit endpoint, from this checkout's local server (`local_server/`, `<data_dir>/server.json`).

    <models>/<pipeline>/<step>/<variant>/<version>/<file>...        the variant's files, as in its folder
    <models>/<pipeline>/<step>/<variant>/<version>/manifest.json    uploaded last: the version's commit mark
    <images>/blobs/sha256/<digest>, <images>/manifests/<repo>/<tag>.json   images as deduplicated layers
    <results>/profiles/<run>/<name>.csv                             profiling tables
    <results>/reports/<run>/<file>                                  report files (md, png, html...)

A version is `YYYYMMDDTHHMMSS.ffffffZ-xxxxxx`: the UTC start of its push plus a random suffix, so
versions sort by time and two pushes of one variant, concurrent or not, never share a prefix.
Readers only see versions whose manifest exists, and the manifest goes up after every file: an
interrupted push leaves no visible version (`sweep_incomplete` removes its orphaned objects).
Every object carries its sha256 as user metadata; a pull recomputes the digest of every byte it
writes and refuses a mismatch, against the manifest for variant files, against the metadata otherwise.

Modules:
    layout.py   version ids, name and path checks, the variant key layout
    records.py  what operations return: VariantVersion, PushedVariant, PulledVariant, StoredObject
    store.py    S3Store: the connection, buckets, verified object get/put/remove, S3 error translation
    catalog.py  VariantCatalog: list, resolve and read published versions; sweep interrupted pushes
    results.py  ResultStore: profiling tables and reports
    images.py   ImageLayers: container images as content-addressed layers (push, pull, list)
    client.py   ModelRegistry (all of the above, plus push/pull/delete of variants) and open_registry
    endpoint.py, credentials.py, connection.py   where to connect, with which keys
    local_server/   this checkout's local S3 server (start, stop, status, what is left running)
    __main__.py     `python -m milestone_lib.registry up | down | status`
"""

from .client import ModelRegistry, open_registry
from .images import PulledImage, PushedImage
from .layout import BUILD_NOTEBOOK, VERSION_RE, new_version_id
from .records import PulledVariant, PushedVariant, StoredObject, VariantVersion

__all__ = [
    "BUILD_NOTEBOOK",
    "VERSION_RE",
    "ModelRegistry",
    "PulledImage",
    "PulledVariant",
    "PushedImage",
    "PushedVariant",
    "StoredObject",
    "VariantVersion",
    "new_version_id",
    "open_registry",
]
