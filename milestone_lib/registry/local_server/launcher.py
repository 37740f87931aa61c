"""Start and stop a checkout's local registry server (idempotent, serialised on its data folder).

The server binds 127.0.0.1 only. Without an explicit MILESTONE_REGISTRY_ENDPOINT it serves on
`RegistrySettings.local_port`, or on a free port when another process (another checkout's
registry) holds that one; either way `<data_dir>/server.json` records where it is.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
from datetime import UTC, datetime

from ...errors import RegistryServerError
from ...settings import RegistrySettings
from ..credentials import ensure_credentials
from ..endpoint import LOCAL_HOSTS, endpoint_is_explicit, split_endpoint
from .commands import find_server_binary, server_command
from .ports import MINIO_PORTS, SEAWEED_PORTS, choose_s3_port, claim_service_ports
from .state import (
    STATE_NAME,
    ServerState,
    data_dir_of,
    locked,
    read_state,
    server_process,
    write_state,
)
from .supervision import spawn, stop_process, wait_until_ready

__all__ = ["start_server", "stop_server"]

log = logging.getLogger(__name__)


def _asked_port(settings: RegistrySettings) -> int:
    """The port of an explicit local endpoint, else `local_port`."""
    if not endpoint_is_explicit(settings):
        return settings.local_port
    host, port, _ = split_endpoint(settings.endpoint)
    if host not in LOCAL_HOSTS or port is None:
        raise RegistryServerError(
            f"endpoint '{settings.endpoint}' is not a port on this machine",
            hint="the local server binds 127.0.0.1 only: set MILESTONE_REGISTRY_ENDPOINT=127.0.0.1:<port> or "
            "unset it, or start nothing and use the server at that endpoint",
        )
    return port


def start_server(settings: RegistrySettings | None = None, *, wait_s: float = 60.0,
                 bind_to_parent: bool = False) -> ServerState:
    """Start this checkout's local registry server, or find it running (idempotent).

    Args:
        settings: endpoint (127.0.0.1 / localhost, or unset), `local_port`, data folder, credentials file, binary.
        wait_s: how long to wait for the S3 API to accept the credentials.
        bind_to_parent: stop the server when this process exits or dies (tests, notebooks);
            without it the server outlives the caller (`make registry-up`).

    Returns the server's state; `moved_from` is set when it had to leave its default port.
    """
    settings = settings or RegistrySettings()
    explicit = endpoint_is_explicit(settings)
    asked = _asked_port(settings)
    data_dir = data_dir_of(settings)
    with locked(data_dir):
        state = read_state(data_dir)
        if state and server_process(state):
            if explicit and state.port != asked:
                raise RegistryServerError(
                    f"a server for '{data_dir}' already runs at {state.endpoint}, not 127.0.0.1:{asked}",
                    hint="run `make registry-down` first, or set MILESTONE_REGISTRY_ENDPOINT to its endpoint "
                    "(or unset it)",
                )
            return dataclasses.replace(state, already_running=True)
        (data_dir / STATE_NAME).unlink(missing_ok=True)
        port, moved_from = choose_s3_port(asked, may_move=not explicit, data_dir=data_dir)
        keys = ensure_credentials(settings)
        kind, binary = find_server_binary(settings)
        ports = claim_service_ports(data_dir, SEAWEED_PORTS if kind == "seaweedfs" else MINIO_PORTS, {port})
        command, env = server_command(kind, binary, data_dir, port, ports, keys)
        popen = spawn(command, data_dir, env, bind_to_parent=bind_to_parent)
        state = ServerState(kind=kind, pid=popen.pid, endpoint=f"127.0.0.1:{port}", binary=str(binary),
                            data_dir=str(data_dir), ports=ports, moved_from=moved_from,
                            started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        write_state(state)
        if bind_to_parent:
            atexit.register(stop_server, settings)
        try:
            wait_until_ready(popen, state, keys, wait_s=wait_s)
        except RegistryServerError:
            (data_dir / STATE_NAME).unlink(missing_ok=True)
            raise
    log.info("started %s", state.describe())
    return state


def stop_server(settings: RegistrySettings | None = None, *, timeout_s: float = 20.0) -> ServerState | None:
    """Stop the local server recorded in `data_dir`; returns what was stopped (None: nothing ran)."""
    data_dir = data_dir_of(settings or RegistrySettings())
    if not (data_dir / STATE_NAME).is_file():
        return None
    with locked(data_dir):
        state = read_state(data_dir)
        if state is None:
            return None
        running = stop_process(state, timeout_s=timeout_s)
        (data_dir / STATE_NAME).unlink(missing_ok=True)
    if running:
        log.info("stopped %s", state.describe())
    return state if running else None
