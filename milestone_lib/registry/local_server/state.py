"""What a checkout's local server leaves on disk: `<data_dir>/server.json`, and whether its process lives.

`server.json` (kind, pid, endpoint, ports; never a secret) is the one place where clients of this
checkout find the server's endpoint: it may not be the default port when another checkout's server
held that one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import psutil

from ...files import atomic_write_json
from ...settings import RegistrySettings

__all__ = ["STATE_NAME", "ServerKind", "ServerState", "data_dir_of", "locked", "read_state", "server_process",
           "server_status", "write_state"]

ServerKind = Literal["minio", "seaweedfs"]
STATE_NAME = "server.json"


@dataclasses.dataclass(frozen=True)
class ServerState:
    """A running local server, as recorded in `<data_dir>/server.json` (no secrets)."""

    kind: ServerKind
    pid: int
    endpoint: str
    binary: str
    data_dir: str
    ports: dict[str, int]
    started_at: str
    moved_from: int | None = None
    """The port this server wanted but found held by another process (None: it got the one it wanted)."""
    already_running: bool = False
    """Set by `start_server` when it found the server running and started nothing (not recorded)."""

    @property
    def log_file(self) -> Path:
        return Path(self.data_dir) / "logs" / "server.log"

    @property
    def port(self) -> int:
        return int(self.endpoint.rpartition(":")[2])

    def describe(self) -> str:
        text = f"{self.kind} (pid {self.pid}) at http://{self.endpoint}, data in {self.data_dir}"
        if self.moved_from is not None:
            text += f" (port {self.moved_from} was held by another process)"
        return text


def data_dir_of(settings: RegistrySettings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def read_state(data_dir: Path) -> ServerState | None:
    """The recorded server, alive or not; None when nothing (readable) is recorded."""
    try:
        return ServerState(**json.loads((data_dir / STATE_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_state(state: ServerState) -> None:
    record = dataclasses.asdict(state)
    record.pop("already_running")
    atomic_write_json(Path(state.data_dir) / STATE_NAME, record)


def server_process(state: ServerState) -> psutil.Process | None:
    """The live process of a recorded server, or None (also when its pid now belongs to another program)."""
    try:
        proc = psutil.Process(state.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if not cmdline or Path(cmdline[0]).name != Path(state.binary).name:
        return None
    if state.data_dir not in " ".join(cmdline):
        return None
    return proc


def server_status(settings: RegistrySettings | None = None) -> ServerState | None:
    """This checkout's local server (the one recorded in `data_dir`) if its process is alive, else None."""
    state = read_state(data_dir_of(settings or RegistrySettings()))
    return state if state and server_process(state) else None


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` on one data folder, across processes."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(data_dir / ".server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
