"""Helpers of the deployment tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Self

import grpc
import numpy as np
import psutil

from milestone_lib.deploy import GatewayDeployment, PipelineDeployment, StepDeployment
from milestone_lib.serving.protocol import (
    make_infer_request,
    read_parameters,
    service_pb2_grpc,
)

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"


def pipeline_spec(variants: dict[str, Path], *, detect: int = 1, classify: int = 1, cpu: float = 1.0,
                  policy: str = "least-outstanding") -> PipelineDeployment:
    return PipelineDeployment(steps=[
        StepDeployment(step="detect", variant=DETECT, folder=variants[DETECT], replicas=detect, cpu=cpu),
        StepDeployment(step="classify", variant=CLASSIFY, folder=variants[CLASSIFY], replicas=classify),
    ], gateway=GatewayDeployment(policy=policy))  # type: ignore[arg-type]


def assert_no_process_left(pids: list[int]) -> None:
    alive = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    assert alive == [], f"processes {alive} survived teardown"


class Stream:
    """Pipeline requests from `concurrency` threads until `stop()`; every request sent gets one row.

    A row records the `phase` (set by the test between its actions) when the request was sent,
    its outcome (`OK` or the gRPC code) and the replicas that served it, so a test checks order
    and accounting instead of timing.
    """

    def __init__(self, address: str, images: list[np.ndarray], *, concurrency: int = 3, timeout_s: float = 30.0,
                 target: str = "pipeline") -> None:
        self.address, self.images, self.timeout_s, self.target = address, images, timeout_s, target
        self.phase = 0
        self.sent = 0
        self.rows: list[dict] = []
        self._lock = threading.Condition()
        self._ids = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(concurrency)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _worker(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while not self._stop.is_set():
                with self._lock:
                    request_id, phase = next(self._ids), self.phase
                    self.sent += 1
                image = self.images[request_id % len(self.images)]
                inputs = {"IMAGE": image[None]} if self.target == "pipeline" else {"IMAGES": image[None]}
                row: dict = {"id": request_id, "phase": phase}
                try:
                    response = stub.ModelInfer(make_infer_request(self.target, inputs), timeout=self.timeout_s)
                    row.update(status="OK", **read_parameters(response.parameters))
                except grpc.RpcError as exc:
                    row.update(status=exc.code().name, details=exc.details())
                with self._lock:
                    self.rows.append(row)
                    self._lock.notify_all()

    @property
    def completed(self) -> int:
        with self._lock:
            return len(self.rows)

    def wait_for(self, completed: int, timeout_s: float = 120.0) -> None:
        """Block until `completed` requests have an outcome."""
        end = time.monotonic() + timeout_s
        with self._lock:
            while len(self.rows) < completed:
                assert self._lock.wait(max(0.0, end - time.monotonic())) or len(self.rows) >= completed, \
                    f"only {len(self.rows)} of {completed} requests completed in {timeout_s} s"

    def stop(self) -> list[dict]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 10)
        return self.rows
