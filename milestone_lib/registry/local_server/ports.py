"""The local server's ports: its S3 port, and the ports of SeaweedFS's other services.

All bind 127.0.0.1. The S3 port is the one asked for; when the endpoint was left to its default
and another process (most often another checkout's registry) holds that port, a free one is taken.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

from ...errors import RegistryServerError
from ...files import atomic_write_json
from ...net import free_port, port_answers, port_is_free

__all__ = ["GRPC_OFFSET", "MINIO_PORTS", "SEAWEED_PORTS", "choose_s3_port", "claim_service_ports"]

log = logging.getLogger(__name__)

PORTS_NAME = "ports.json"
# SeaweedFS services besides S3, each with an HTTP and a gRPC port.
SEAWEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port",
)
MINIO_PORTS = ("console",)
# SeaweedFS's maintenance worker dials the admin at admin.port + 10000 whatever -admin.port.grpc
# says, so that port is left implied and must be free too.
GRPC_OFFSET = 10000
_OFFSET_PAIRED = {"admin.port"}
_NO_PORT_HINT = "close some servers and try again"


def choose_s3_port(port: int, *, may_move: bool, data_dir: Path) -> tuple[int, int | None]:
    """`(port to serve S3 on, port it moved from or None)`.

    Args:
        port: the port asked for.
        may_move: take a free port when `port` is held (the endpoint was not set explicitly);
            otherwise a held port is an error.
        data_dir: named in the messages (where the chosen endpoint gets recorded).
    """
    if not port_answers(port):
        return port, None
    if not may_move:
        raise RegistryServerError(
            f"port {port} on 127.0.0.1 is taken by another process",
            hint="stop that process, or unset MILESTONE_REGISTRY_ENDPOINT so that this checkout's registry "
            "takes a free port",
        )
    try:
        moved = free_port(avoid={port})
    except OSError:
        raise RegistryServerError("no free TCP port on 127.0.0.1", hint=_NO_PORT_HINT) from None
    log.warning("registry: port %d on 127.0.0.1 is held by another process (another checkout's registry?); "
                "this checkout's registry takes port %d, recorded in %s", port, moved, data_dir / "server.json")
    return moved, port


def claim_service_ports(data_dir: Path, names: tuple[str, ...], taken: set[int]) -> dict[str, int]:
    """Ports for the server's other services: those used last time when still free, else new ones.

    Kept stable across restarts because SeaweedFS names its master folder after the master port.
    """
    path = data_dir / PORTS_NAME
    try:
        previous: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    ports: dict[str, int] = {}
    for name in names:
        paired = name in _OFFSET_PAIRED
        port = previous.get(name)
        if port is None or not _usable(port, taken, paired=paired):
            port = _free_paired_port(taken) if paired else _free(taken)
        ports[name] = port
        taken.add(port)
        if paired:
            taken.add(port + GRPC_OFFSET)
    atomic_write_json(path, ports)
    return ports


def _free(taken: set[int]) -> int:
    try:
        return free_port(avoid=taken)
    except OSError:
        raise RegistryServerError("no free TCP port on 127.0.0.1", hint=_NO_PORT_HINT) from None


def _usable(port: int, taken: set[int], *, paired: bool) -> bool:
    if not port or port in taken or not port_is_free(port):
        return False
    return not paired or (port + GRPC_OFFSET not in taken and port_is_free(port + GRPC_OFFSET))


def _free_paired_port(taken: set[int]) -> int:
    """A free port p whose p + 10000 is free too."""
    for _ in range(200):
        port = secrets.choice(range(20000, 65535 - GRPC_OFFSET))
        if _usable(port, taken, paired=True):
            return port
    raise RegistryServerError("no free pair of TCP ports on 127.0.0.1", hint=_NO_PORT_HINT)
