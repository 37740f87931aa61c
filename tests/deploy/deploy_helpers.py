"""Helpers of the deployment tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

import psutil

from milestone_lib.deploy import PipelineDeployment, StepDeployment

DETECT, CLASSIFY = "yolov8n-onnx-fp32", "resnet-tiny-onnx-fp32"


def pipeline_spec(variants: dict[str, Path], *, detect: int = 1, classify: int = 1) -> PipelineDeployment:
    return PipelineDeployment(steps=[
        StepDeployment(step="detect", variant=DETECT, folder=variants[DETECT], replicas=detect),
        StepDeployment(step="classify", variant=CLASSIFY, folder=variants[CLASSIFY], replicas=classify),
    ])


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
