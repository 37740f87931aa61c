"""The gateway follows a mounted ConfigMap the way the kubelet updates it (no cluster needed).

The Kubernetes backend routes the gateway by rewriting the endpoints ConfigMap it mounts. The
kubelet never edits a mounted file in place: it writes a new timestamped folder and swaps the
`..data` symlink (its AtomicWriter). Here a real gateway process reads a folder laid out and
updated exactly that way, with the ConfigMap data the renderer produces.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from milestone_lib.deploy.kubernetes import default_deployment
from milestone_lib.deploy.kubernetes.render import ENDPOINTS_FILE, endpoints_configmap
from milestone_lib.net import LOOPBACK, parse_ready_line
from milestone_lib.serving.membership import wait_for_membership


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


@pytest.fixture
def gateway(tmp_path: Path):
    """A real gateway reading `<volume>/endpoints.json`, seeded with the rendered ConfigMap."""
    spec = default_deployment()
    volume = tmp_path / "etc-milestone"
    volume.mkdir()
    rendered = endpoints_configmap(spec, "milestone", {
        "detect": ["detect-classify-detect.milestone.svc:8001"],
        "classify": ["detect-classify-classify.milestone.svc:8001"]})
    _kubelet_write(volume, rendered["data"])
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
        yield f"{ready[0]}:{ready[1]}", volume, spec
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_the_gateway_applies_each_configmap_update_the_kubelet_publishes(gateway) -> None:
    address, volume, spec = gateway
    first = wait_for_membership(address, expected={
        "detect": ["detect-classify-detect.milestone.svc:8001"],
        "classify": ["detect-classify-classify.milestone.svc:8001"]}, timeout_s=30)
    generation = first.generation
    # what the backend writes after a deploy, a scale up to 3, and a scale back down
    for detect in (["10.244.0.5:8001"], ["10.244.0.5:8001", "10.244.0.6:8001", "10.244.0.7:8001"],
                   ["10.244.0.5:8001"]):
        endpoints = {"detect": detect, "classify": ["10.244.0.9:8001"]}
        _kubelet_write(volume, endpoints_configmap(spec, "milestone", endpoints)["data"])
        seen = wait_for_membership(address, expected=endpoints, after_generation=generation, timeout_s=30)
        assert seen.generation == generation + 1  # one update, applied once
        generation = seen.generation
    assert len([p for p in volume.iterdir() if p.name.startswith("..2")]) == 1  # the kubelet's layout, cleaned up
