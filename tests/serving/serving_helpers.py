"""Helpers of the serving tests: step servers / gateways as real subprocesses on loopback, scraping, images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np

from milestone_lib.net import (
    free_port,  # noqa: F401 - re-exported for the serving tests
    parse_ready_line,
)
from milestone_lib.serving.membership import write_endpoints  # noqa: F401 - the one writer of the contract
from milestone_lib.serving.protocol import grpc_channel_options, service_pb2_grpc
from milestone_lib.settings import PROJECT_ROOT


class ServerProcess:
    """A step server or gateway in its own process; `address` once it printed READY."""

    def __init__(self, proc: subprocess.Popen, address: str, log_path: Path) -> None:
        self.proc = proc
        self.address = address
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@contextmanager
def spawn(module: str, args: list[str], tmp_path: Path, *, timeout: float = 90.0) -> Iterator[ServerProcess]:
    """Start `python -m module args`, wait for `READY host:port`, always kill it on exit."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / f"{module.rsplit('.', 1)[-1]}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=log_file,
                                cwd=PROJECT_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server = None
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline().decode()), daemon=True)
        reader.start()
        reader.join(timeout)
        ready = parse_ready_line(line[0]) if line else None
        if ready is None:
            raise RuntimeError(f"{module} did not print READY within {timeout} s:\n{log_path.read_text()}")
        server = ServerProcess(proc, f"{ready[0]}:{ready[1]}", log_path)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()


def step_server_args(variant: Path, **options) -> list[str]:
    settings = {"threads": 1, "max_batch_size": 8, "max_queue_delay_ms": 2, "max_queue_size": 64, **options}
    args = ["--variant", str(variant), "--host", "127.0.0.1", "--port", "0"]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def scrape(port: int) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def stub_for(address: str) -> tuple[grpc.Channel, service_pb2_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(address, options=grpc_channel_options(256 * 2**20))
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def sample_images(count: int, *, seed: int = 0) -> list[np.ndarray]:
    """Images of different sizes with bright rectangles on a dark background."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        h, w = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        image = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        for _ in range(3):
            y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
            image[y : y + 20, x : x + int(rng.integers(10, 20))] = rng.integers(100, 255, 3, dtype=np.uint8)
        images.append(image)
    return images


