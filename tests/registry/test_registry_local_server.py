"""A checkout's local S3 server: start, find, stop, its CLI, and two checkouts side by side (real servers)."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from milestone_lib.containers.engine import describe_private_engine
from milestone_lib.errors import RegistryServerError, RegistryUnreachableError
from milestone_lib.net import free_port
from milestone_lib.registry import ModelRegistry, open_registry
from milestone_lib.registry.credentials import read_credentials, with_local_credentials
from milestone_lib.registry.local_server import (
    describe_left_running,
    server_status,
    start_server,
    stop_server,
)
from milestone_lib.settings import RegistrySettings

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import (
    checkout_registry_settings,
    local_registry_settings,
    registry_env,
    tree,
)


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "milestone_lib.registry", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _checkout_env(settings: RegistrySettings) -> dict[str, str]:
    """The environment of a process of that checkout: no endpoint set, its folders and default port."""
    env = {k: v for k, v in os.environ.items() if k != "MILESTONE_REGISTRY_ENDPOINT"}
    env.update({"MILESTONE_REGISTRY_DATA_DIR": str(settings.data_dir),
                "MILESTONE_REGISTRY_CREDENTIALS_FILE": str(settings.credentials_file),
                "MILESTONE_REGISTRY_LOCAL_PORT": str(settings.local_port)})
    return env


def test_start_server_is_idempotent(registry_server: RegistrySettings) -> None:
    running = server_status(registry_server)
    assert running is not None and running.endpoint == registry_server.endpoint
    again = start_server(registry_server)
    assert again.already_running and again.pid == running.pid
    recorded = json.loads(Path(again.data_dir, "server.json").read_text())
    assert recorded["pid"] == running.pid and recorded["endpoint"] == registry_server.endpoint
    # Logs and temp files stay inside the data folder.
    assert again.log_file.is_file() and again.log_file.is_relative_to(again.data_dir)


def test_an_explicit_endpoint_held_by_another_server_is_an_error(registry_server: RegistrySettings,
                                                                  tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path, endpoint=registry_server.endpoint)
    port = registry_server.endpoint.rpartition(":")[2]
    with pytest.raises(RegistryServerError, match=f"port {port} on 127.0.0.1 is taken by another process.*"
                                                  "unset MILESTONE_REGISTRY_ENDPOINT"):
        start_server(settings)
    assert server_status(settings) is None


def test_cli_up_status_down(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    env = {**os.environ, **registry_env(settings)}  # empty keys: `up` generates them into the tmp folder
    up = _cli(["up"], env, tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        assert "started seaweedfs" in up.stdout or "started minio" in up.stdout
        assert "buckets: models (versioning on), images (versioning on), results (versioning on)" in up.stdout
        state = json.loads((settings.data_dir / "server.json").read_text())
        assert state["endpoint"] == settings.endpoint and psutil.pid_exists(state["pid"])
        access, secret = read_credentials(settings.credentials_file) or ("", "")
        assert stat.S_IMODE(settings.credentials_file.stat().st_mode) == 0o600
        again = _cli(["up"], env, tmp_path)
        assert again.returncode == 0 and "already running" in again.stdout
        status = _cli(["status"], env, tmp_path)
        assert status.returncode == 0 and f"pid {state['pid']}" in status.stdout
        # Only 127.0.0.1 is bound.
        listening = {c.laddr.ip for c in psutil.Process(state["pid"]).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}
        for output in (up, again, status):
            assert secret not in output.stdout + output.stderr
            assert access not in output.stdout + output.stderr
    finally:
        down = _cli(["down"], env, tmp_path)
    assert down.returncode == 0 and f"registry stopped: seaweedfs (pid {state['pid']})" in down.stdout
    assert not psutil.pid_exists(state["pid"])
    assert _cli(["status"], env, tmp_path).returncode == 3
    assert "no local server was running" in _cli(["down"], env, tmp_path).stdout
    assert not [p for p in Path("/tmp").glob("seaweedfs-*-grpc-*.sock")
                if any(str(port) in p.name for port in state["ports"].values())]


def test_open_registry_starts_a_server_on_an_explicit_local_endpoint(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    try:
        registry = open_registry(settings)
        state = server_status(settings)
        assert state is not None and state.endpoint == settings.endpoint and state.moved_from is None
        assert registry.endpoint == f"http://{settings.endpoint}"
        assert registry.list_variants().empty
    finally:
        stopped = stop_server(settings)
    assert stopped is not None and not psutil.pid_exists(stopped.pid)
    assert describe_left_running(settings).startswith("Left running: nothing")


def test_open_registry_does_not_start_a_server_for_a_remote_endpoint(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path, endpoint="192.0.2.1:9", timeout_s=0.5)  # TEST-NET: never answers
    with pytest.raises(RegistryUnreachableError, match="192.0.2.1:9"):
        open_registry(settings)
    assert not (settings.data_dir / "server.json").exists()


def test_two_checkouts_run_their_own_registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                variant_factory, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("MILESTONE_REGISTRY_ENDPOINT", raising=False)
    default_port = free_port()  # both checkouts' default, like 8333 for two clones of main
    first = checkout_registry_settings(tmp_path / "checkout-a", local_port=default_port)
    second = checkout_registry_settings(tmp_path / "checkout-b", local_port=default_port)
    try:
        registry_a = open_registry(first)
        with caplog.at_level(logging.WARNING, logger="milestone_lib.registry"):
            registry_b = open_registry(second)
        state_a, state_b = server_status(first), server_status(second)
        assert state_a is not None and state_b is not None
        assert (state_a.port, state_a.moved_from) == (default_port, None)
        assert state_b.moved_from == default_port and state_b.port != default_port
        assert f"port {default_port} on 127.0.0.1 is held by another process" in caplog.text
        assert f"takes port {state_b.port}" in caplog.text
        assert (registry_a.endpoint, registry_b.endpoint) == (f"http://{state_a.endpoint}",
                                                              f"http://{state_b.endpoint}")
        assert read_credentials(first.credentials_file) != read_credentials(second.credentials_file)

        # Both push and pull, and each sees only its own variants.
        pulled = {}
        for label, registry in (("a", registry_a), ("b", registry_b)):
            folder = variant_factory(files={"model.onnx": label.encode() * 5000})
            pushed = registry.push_variant(folder)
            pulled[label] = registry.pull_variant("yolov8n-onnx-fp32", tmp_path / f"pulled-{label}")
            assert pulled[label].version == pushed.version and tree(pulled[label].folder) == tree(folder)
        assert len(registry_a.list_variants()) == len(registry_b.list_variants()) == 1
        assert pulled["a"].version != pulled["b"].version

        # Every later consumer of checkout b finds the moved endpoint in its state: a client, the CLI.
        recorded = json.loads((second.data_dir / "server.json").read_text())
        assert (recorded["endpoint"], recorded["moved_from"]) == (state_b.endpoint, default_port)
        assert ModelRegistry(second).list_variants().version.tolist() == [pulled["b"].version]
        status = _cli(["status"], _checkout_env(second), tmp_path)
        assert status.returncode == 0, status.stderr
        assert f"at http://127.0.0.1:{state_b.port}" in status.stdout
        assert f"port {default_port} was held by another process" in status.stdout

        message = describe_left_running(second)
        assert message.splitlines()[0] == "Left running:"
        assert f"pid {state_b.pid}" in message and f"http://127.0.0.1:{state_b.port}" in message
        assert "make registry-down" in message
    finally:
        stopped = [stop_server(first), stop_server(second)]
    assert all(s is not None and not psutil.pid_exists(s.pid) for s in stopped)


def test_the_default_port_is_reused_once_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILESTONE_REGISTRY_ENDPOINT", raising=False)
    settings = checkout_registry_settings(tmp_path, local_port=free_port())
    try:
        state = start_server(settings)
        assert (state.port, state.moved_from) == (settings.local_port, None)
        assert ModelRegistry(settings).endpoint == f"http://127.0.0.1:{settings.local_port}"
    finally:
        stop_server(settings)


def test_milestone_command_ends_by_saying_what_it_left_running(registry_server: RegistrySettings,
                                                               tmp_path: Path) -> None:
    state = server_status(registry_server)
    assert state is not None
    env = {**os.environ, **registry_env(registry_server)}
    done = subprocess.run([sys.executable, "-m", "milestone_lib.cli", "milestone", "--only", "no-such-notebook"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    engine = describe_private_engine()  # CI runs the tests beside this checkout's private Docker engine
    last = lines[-4:-1] if engine else lines[-3:]
    assert last == describe_left_running(registry_server).splitlines()
    assert last[0] == "Left running:" and f"(pid {state.pid}) at http://{state.endpoint}" in last[1]
    assert "make registry-down" in last[2]
    if engine:
        assert lines[-1] == f"  {engine}" and "make docker-down" in engine


def test_a_server_holds_many_written_buckets(tmp_path: Path) -> None:
    """Each bucket takes storage volumes of its own; the server must not run out after a couple of dozen.

    SeaweedFS caps its volumes at free disk / volume size: with its automatic 1 GiB volumes a machine
    with 27 GB free failed the 26th bucket's first write (HTTP 500), which broke CI's registry tests.
    """
    settings = local_registry_settings(tmp_path)
    start_server(settings, bind_to_parent=True)
    try:
        settings = with_local_credentials(settings)
        for index in range(20):
            registry = ModelRegistry(settings.model_copy(update={
                "models_bucket": f"models-{index}", "images_bucket": f"images-{index}",
                "results_bucket": f"results-{index}",
            }))
            registry.ensure_buckets()
            for bucket in registry.buckets.values():  # one written object per bucket: 60 collections
                registry._put_bytes(bucket, "probe.txt", b"written")
    finally:
        stop_server(settings)
