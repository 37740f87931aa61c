"""The Docker engine: find one that answers, or start this checkout's private one.

Where the engine is, in this order: `DOCKER_HOST`; the private engine of this checkout
(`<cache_dir>/docker/docker.sock`, started by `make docker-up`); the default socket
`/var/run/docker.sock`. Everything talks to it through the `docker` SDK.

The private engine (`start_private_engine`) needs root and Debian's `docker.io`; it keeps its
data root and socket under `<cache_dir>/docker/` and runs without a bridge or iptables rules, so
containers run only with `--network host` (and `--init`); no Docker network is ever created.

CLI: `python -m milestone_lib.containers up | down | status` (`make docker-up` / `make docker-down`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from ..errors import EngineUnavailableError
from ..settings import ProjectSettings

__all__ = ["DEFAULT_SOCKET", "can_start_private_engine", "connect_engine", "engine_answers", "engine_url", "private_engine_dir",
           "start_private_engine", "stop_private_engine"]

DEFAULT_SOCKET = "/var/run/docker.sock"
INSTALL_HINT = ("install Docker (Debian: `apt-get install docker.io`) and start it, or as root run `make docker-up` "
                "to start this checkout's private engine; or set DOCKER_HOST to an engine that answers")


def private_engine_dir(settings: ProjectSettings | None = None) -> Path:
    """Where the private engine keeps its socket, data root, pid file and log."""
    return (settings or ProjectSettings()).cache_dir / "docker"


def _private_socket(settings: ProjectSettings | None) -> Path:
    return private_engine_dir(settings) / "docker.sock"


def engine_url(settings: ProjectSettings | None = None) -> str:
    """The engine this checkout uses: DOCKER_HOST, else the private socket if present, else the default."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    private = _private_socket(settings)
    if private.exists():
        return f"unix://{private}"
    return f"unix://{DEFAULT_SOCKET}"


def can_start_private_engine() -> bool:
    """Root, and Debian's docker.io installed: `start_private_engine` can run here."""
    return os.geteuid() == 0 and (shutil.which("dockerd") is not None or Path("/usr/sbin/dockerd").exists())


def connect_engine(settings: ProjectSettings | None = None, *, timeout_s: float = 120.0,
                   start_private: bool = False) -> docker.DockerClient:
    """A client of an engine that answers, or `EngineUnavailableError` saying what to install or start.

    `start_private`: where nothing answers and this machine allows it (`can_start_private_engine`),
    start this checkout's private engine first (it keeps running, like after `make docker-up`).
    """
    if start_private and not os.environ.get("DOCKER_HOST") and can_start_private_engine():
        try:
            docker.DockerClient(base_url=engine_url(settings), timeout=5).ping()
        except (DockerException, OSError):
            start_private_engine(settings)
    url = engine_url(settings)
    try:
        client = docker.DockerClient(base_url=url, timeout=int(timeout_s))
        client.ping()
    except (DockerException, OSError) as exc:
        raise EngineUnavailableError(
            f"no Docker engine answers at {url} ({type(exc).__name__}: {str(exc)[:160]}); {INSTALL_HINT}"
        ) from exc
    return client


def engine_answers(settings: ProjectSettings | None = None) -> bool:
    """True when `connect_engine` would succeed (the notebooks' `backend="auto"`)."""
    try:
        connect_engine(settings, timeout_s=5).close()
    except EngineUnavailableError:
        return False
    return True


def _pid(directory: Path) -> int | None:
    try:
        pid = int((directory / "dockerd.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def describe_private_engine(settings: ProjectSettings | None = None) -> str | None:
    """One line naming this checkout's running private engine and how to stop it; None when it does not run."""
    directory = private_engine_dir(settings)
    pid = _pid(directory)
    if pid is None:
        return None
    return (f"private Docker engine (pid {pid}) at unix://{directory / 'docker.sock'}, data in {directory / 'data'}; "
            "stop it with `make docker-down` (`make clean` stops it too)")


def start_private_engine(settings: ProjectSettings | None = None, *, timeout_s: float = 60.0) -> str:
    """Start dockerd with its data root and socket under `<cache_dir>/docker/`; its URL. Idempotent."""
    directory = private_engine_dir(settings)
    url = f"unix://{directory / 'docker.sock'}"
    if _pid(directory) is not None:
        return url
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
    if dockerd is None or os.geteuid() != 0:
        why = "dockerd is not installed" if dockerd is None else "it needs root"
        raise EngineUnavailableError(f"cannot start the private Docker engine: {why}; {INSTALL_HINT}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "docker.sock").unlink(missing_ok=True)
    # The exec root holds the containerd socket, whose path must stay short (unix sockets: 108 bytes).
    exec_root = Path("/tmp") / f"milestone-docker-{hashlib.sha256(str(directory).encode()).hexdigest()[:10]}"
    args = [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            f"--data-root={directory / 'data'}", f"--exec-root={exec_root}",
            f"--pidfile={directory / 'dockerd.pid'}", f"--host={url}"]
    with open(directory / "dockerd.log", "ab") as log:
        subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client = docker.DockerClient(base_url=url, timeout=5)
            client.ping()
            client.close()
            return url
        except (DockerException, OSError):
            time.sleep(0.3)
    raise EngineUnavailableError(
        f"the private Docker engine did not answer at {url} within {timeout_s:.0f} s; read {directory / 'dockerd.log'}"
    )


def stop_private_engine(settings: ProjectSettings | None = None, *, timeout_s: float = 30.0) -> bool:
    """Stop the private engine (SIGTERM, then SIGKILL); False when it was not running."""
    directory = private_engine_dir(settings)
    pid = _pid(directory)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    (directory / "docker.sock").unlink(missing_ok=True)
    return True
