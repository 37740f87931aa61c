"""A checkout's own local S3 server behind the default registry: MinIO when at hand, else SeaweedFS.

    python -m milestone_lib.registry up | down | status      (`make registry-up` / `registry-down`)

Modules:
    state.py        `<data_dir>/server.json` (kind, pid, endpoint, ports; no secret) and the live process
    ports.py        the S3 port (the default, or a free one when another checkout holds it), service ports
    commands.py     which binary runs, and its command line
    supervision.py  spawn, wait until S3 accepts the keys, stop (SIGTERM, then SIGKILL)
    launcher.py     start_server / stop_server: the above under a lock on the data folder
    summary.py      describe_left_running: what a run leaves running and how to stop it

A user with a real MinIO or S3 starts nothing here: they set MILESTONE_REGISTRY_ENDPOINT and the keys.
"""

from __future__ import annotations

from .commands import find_server_binary
from .launcher import start_server, stop_server
from .state import ServerKind, ServerState, server_status
from .summary import STOP_COMMAND, describe_left_running

__all__ = [
    "STOP_COMMAND",
    "ServerKind",
    "ServerState",
    "describe_left_running",
    "find_server_binary",
    "server_status",
    "start_server",
    "stop_server",
]
