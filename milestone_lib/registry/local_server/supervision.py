"""The server process: spawned in its own session, waited on until S3 accepts its keys, stopped for good.

Everything the process writes stays in its data folder (logs, temp files), except SeaweedFS's gRPC
sockets, hard-coded in /tmp: it removes them on a clean stop, and `stop_process` removes those of
a server that had to be killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from ...errors import RegistryServerError
from .ports import GRPC_OFFSET
from .state import ServerState, server_process

__all__ = ["spawn", "stop_process", "wait_until_ready"]

log = logging.getLogger(__name__)

_started: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started, to reap them


def spawn(command: list[str], data_dir: Path, extra_env: dict[str, str], *,
          bind_to_parent: bool) -> subprocess.Popen[bytes]:
    """Start the server detached from this terminal; its output goes to `data_dir/logs/server.log`."""
    for folder in ("logs", "tmp"):
        (data_dir / folder).mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(data_dir / "tmp"), **extra_env}
    with open(data_dir / "logs" / "server.log", "ab") as out:
        popen = subprocess.Popen(
            command, cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent() if bind_to_parent else None,  # noqa: PLW1509 - one prctl call
        )
    _started[popen.pid] = popen
    return popen


def wait_until_ready(popen: subprocess.Popen[bytes], state: ServerState, keys: tuple[str, str], *,
                     wait_s: float) -> None:
    """Return once S3 on the state's endpoint accepts `keys`; else stop the process and raise."""
    deadline = time.monotonic() + wait_s
    while not _answers_s3(state.endpoint, keys):
        if popen.poll() is not None or time.monotonic() > deadline:
            problem = (f"{state.kind} exited with code {popen.returncode} while starting" if popen.poll() is not None
                       else f"{state.kind} did not answer on {state.endpoint} within {wait_s:.0f} s")
            stop_process(state)
            raise RegistryServerError(
                problem, hint=f"see {state.log_file}; its last lines:\n{_log_tail(state.log_file, keys[1])}"
            )
        time.sleep(0.1)


def stop_process(state: ServerState, *, timeout_s: float = 20.0) -> bool:
    """SIGTERM the recorded server, SIGKILL it after `timeout_s`; returns whether it was running."""
    proc = server_process(state)
    popen = _started.pop(state.pid, None)
    if proc is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
        try:
            (popen.wait if popen is not None else proc.wait)(timeout=timeout_s)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            log.warning("%s did not stop within %.0f s; killing it", state.describe(), timeout_s)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                (popen.wait if popen is not None else proc.wait)(timeout=timeout_s)
    elif popen is not None:
        popen.poll()  # reap it if it already exited
    if state.kind == "seaweedfs":
        _remove_seaweed_sockets(state.ports)
    return proc is not None


def _remove_seaweed_sockets(ports: dict[str, int]) -> None:
    grpc = {name.split(".")[0]: port for name, port in ports.items() if name.endswith(".grpc")}
    if "admin.port" in ports:
        grpc["admin"] = ports["admin.port"] + GRPC_OFFSET
    for service, port in grpc.items():
        Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)


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


def _answers_s3(endpoint: str, keys: tuple[str, str], *, timeout_s: float = 2.0) -> bool:
    """True once the server accepts these credentials (a bucket listing succeeds)."""
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
                               retries=urllib3.Retry(total=0))
    try:
        Minio(endpoint, access_key=keys[0], secret_key=keys[1], secure=False, http_client=http).list_buckets()
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        http.clear()
    return True


def _log_tail(path: Path, secret: str, *, lines: int = 15) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join(tail).replace(secret, "****")
