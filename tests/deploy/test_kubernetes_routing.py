"""The gateway follows a mounted ConfigMap the way the kubelet updates it (no cluster needed).

The Kubernetes backend routes the gateway by rewriting the endpoints ConfigMap it mounts. The
kubelet never edits a mounted file in place: it writes a new timestamped folder and swaps the
`..data` symlink (its AtomicWriter). Here real gateway processes read folders laid out and
updated exactly that way, with the ConfigMap data the renderer produces; with two of them (two
gateway pods, each with its own mount), the backend's wait covers every gateway, not one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus

from milestone_lib.deploy.kubernetes import default_deployment
from milestone_lib.deploy.kubernetes.render import ENDPOINTS_FILE, endpoints_configmap
from milestone_lib.deploy.kubernetes.routing import sync_gateway, wait_for_every_gateway
from milestone_lib.errors import DeploymentError
from milestone_lib.net import LOOPBACK, parse_ready_line
from milestone_lib.serving.membership import query_membership, wait_for_membership

SERVICES = {"detect": ["detect-classify-detect.milestone.svc:8001"],
            "classify": ["detect-classify-classify.milestone.svc:8001"]}


def _kubelet_write(volume: Path, data: dict[str, str]) -> None:
    """Publish `data` like the kubelet's AtomicWriter: new `..<timestamp>` folder, `..data` swapped atomically."""
    stamp = volume / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for name, text in data.items():
        (stamp / name).write_text(text)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    (volume / "..data_tmp").symlink_to(stamp.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    for name in data:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(Path("..data") / name)
    if old is not None:
        for path in (volume / old).iterdir():
            path.unlink()
        (volume / old).rmdir()


@contextlib.contextmanager
def _running_gateway(volume: Path) -> Iterator[str]:
    """A real gateway process reading `<volume>/endpoints.json`; yields its address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "milestone_lib.serving.gateway", "--endpoints", str(volume / ENDPOINTS_FILE),
         "--host", LOOPBACK, "--port", "0", "--poll-s", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = None
        while ready is None:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the gateway exited: {process.stderr.read()}"  # type: ignore[union-attr]
            ready = parse_ready_line(line)
        yield f"{ready[0]}:{ready[1]}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def _mounted_volume(folder: Path, spec: Any) -> Path:
    """A kubelet-style ConfigMap mount, seeded with the rendered ConfigMap (the steps' Service names)."""
    folder.mkdir()
    _kubelet_write(folder, endpoints_configmap(spec, "milestone", SERVICES)["data"])
    return folder


@pytest.fixture
def gateway(tmp_path: Path):
    """A real gateway reading `<volume>/endpoints.json`, seeded with the rendered ConfigMap."""
    spec = default_deployment()
    volume = _mounted_volume(tmp_path / "etc-milestone", spec)
    with _running_gateway(volume) as address:
        yield address, volume, spec


@pytest.fixture
def two_gateways(tmp_path: Path):
    """Two gateway pods' worth: two real gateways, each on its own mounted folder."""
    spec = default_deployment()
    volumes = [_mounted_volume(tmp_path / f"gateway-{i}", spec) for i in range(2)]
    with _running_gateway(volumes[0]) as first, _running_gateway(volumes[1]) as second:
        yield [first, second], volumes, spec


def test_the_gateway_applies_each_configmap_update_the_kubelet_publishes(gateway) -> None:
    address, volume, spec = gateway
    first = wait_for_membership(address, expected=SERVICES, timeout_s=30)
    generation, last = first.generation, first
    # what the backend writes after a deploy, a scale up to 3, and a scale back down
    for detect in (["10.244.0.5:8001"], ["10.244.0.5:8001", "10.244.0.6:8001", "10.244.0.7:8001"],
                   ["10.244.0.5:8001"]):
        endpoints = {"detect": detect, "classify": ["10.244.0.9:8001"]}
        _kubelet_write(volume, endpoints_configmap(spec, "milestone", endpoints)["data"])
        seen = wait_for_membership(address, expected=endpoints, after=last, timeout_s=30)
        assert seen.generation == generation + 1 and seen.instance == first.instance  # one update, applied once
        generation, last = seen.generation, seen
    assert len([p for p in volume.iterdir() if p.name.startswith("..2")]) == 1  # the kubelet's layout, cleaned up


def test_the_wait_returns_only_once_every_gateway_applied_the_change(two_gateways) -> None:
    addresses, volumes, spec = two_gateways
    chooser = itertools.cycle(addresses)  # a Service in miniature: each query reaches the next gateway
    query = lambda: query_membership(next(chooser))
    before = wait_for_every_gateway(query, replicas=lambda: 2, expected=SERVICES, timeout_s=30)
    assert len(before) == 2 and all(m.generation == 1 for m in before.values())
    instance_of = {address: query_membership(address).instance for address in addresses}
    assert set(instance_of.values()) == set(before)

    endpoints = {"detect": ["10.244.0.5:8001", "10.244.0.6:8001"], "classify": ["10.244.0.9:8001"]}
    _kubelet_write(volumes[0], endpoints_configmap(spec, "milestone", endpoints)["data"])  # one pod remounted
    with pytest.raises(DeploymentError, match=(
            rf"1 of 2 ready gateway replicas reported membership .* within 1 s: 2 gateway instances answered, "
            rf"stale or gone: {instance_of[addresses[1]]} \(generation 1, routes to .*svc:8001.*; remount it")):
        wait_for_every_gateway(query, replicas=lambda: 2, expected=endpoints, after=before, timeout_s=1,
                               hint="remount it")

    published = threading.Event()

    def remount_the_other() -> None:
        time.sleep(0.5)
        _kubelet_write(volumes[1], endpoints_configmap(spec, "milestone", endpoints)["data"])
        published.set()

    late = threading.Thread(target=remount_the_other)
    late.start()
    try:
        after = wait_for_every_gateway(query, replicas=lambda: 2, expected=endpoints, after=before, timeout_s=30)
    finally:
        late.join()
    assert published.is_set() and set(after) == set(before)  # it returned only after the second gateway's update
    assert all(m.generation == 2 and m.matches(endpoints) for m in after.values())
    # nothing left to apply (equal data bumps no generation): the gateways count as they are, at once
    again = wait_for_every_gateway(query, replicas=lambda: 2, expected=endpoints, after=after, timeout_s=1)
    assert again == after
    with pytest.raises(DeploymentError, match=r"2 of 3 ready gateway replicas .* within 0.5 s: 2 gateway instances answered, "
                                              r"stale or gone: none"):
        wait_for_every_gateway(query, replicas=lambda: 3, expected=endpoints, after=after, timeout_s=0.5)


class _RoundRobin(socketserver.ThreadingTCPServer):
    """kube-proxy in miniature: each TCP connection to the Service goes to the next backend."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, backends: list[str]) -> None:
        self.backends = itertools.cycle(backends)
        super().__init__((LOOPBACK, 0), _Forward)


class _Forward(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        host, port = next(self.server.backends).rsplit(":", 1)  # type: ignore[attr-defined]
        with socket.create_connection((host, int(port))) as upstream:
            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join()


class _Cluster:
    """The cluster calls sync_gateway makes: apply publishes the ConfigMap into each gateway pod's mount."""

    def __init__(self, volumes: list[Path]) -> None:
        self.volumes, self.applied, self.annotated = volumes, [], []
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._pods = [V1Pod(metadata=V1ObjectMeta(name=f"gateway-{i}", creation_timestamp=now),
                            status=V1PodStatus(pod_ip=f"10.244.1.{i}", conditions=[
                                V1PodCondition(type="Ready", status="True")])) for i in range(len(volumes))]

    def apply(self, manifests: list[dict[str, Any]]) -> None:
        for manifest in manifests:
            self.applied.append(manifest)
            for volume in self.volumes:  # every kubelet remounts (the annotation below makes it prompt)
                _kubelet_write(volume, manifest["data"])

    def pods(self, namespace: str, selector: str) -> list[V1Pod]:
        assert selector.endswith("app.kubernetes.io/component=gateway")
        return self._pods

    def annotate_pods(self, namespace: str, names: list[str], annotations: dict[str, str]) -> None:
        self.annotated.append((names, annotations))


def test_sync_gateway_through_one_service_address_waits_for_both_gateway_pods(two_gateways) -> None:
    addresses, volumes, spec = two_gateways
    service = _RoundRobin(addresses)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    try:
        address = f"{LOOPBACK}:{service.server_address[1]}"
        cluster = _Cluster(volumes)
        seen = set()
        for _ in range(4):  # a new connection per query: the Service reaches both gateways
            seen.add(query_membership(address).instance)
        assert len(seen) == 2
        memberships = None
        for detect in (["10.244.0.5:8001"], ["10.244.0.5:8001", "10.244.0.6:8001"], ["10.244.0.5:8001"]):
            endpoints = {"detect": detect, "classify": ["10.244.0.9:8001"]}
            previous = memberships or {}
            memberships = sync_gateway(cluster, spec, "milestone", endpoints, gateway_address=address,  # type: ignore[arg-type]
                                       after=memberships, timeout_s=30)
            assert set(memberships) == seen and all(m.matches(endpoints) for m in memberships.values())
            assert all(m.newer_than(previous.get(i)) for i, m in memberships.items())
        assert [names for names, _ in cluster.annotated] == [["gateway-0", "gateway-1"]] * 3
    finally:
        service.shutdown()
        service.server_close()
