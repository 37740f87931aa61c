"""Fixtures of the serving tests: the variants they serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from serving_tiny_variants import build_tiny_variant

from milestone_lib.settings import PROJECT_ROOT

_CACHE = PROJECT_ROOT / ".cache" / "serving-tests"


@pytest.fixture(scope="session")
def serving_variants(request: pytest.FixtureRequest) -> dict[str, Path]:
    """detect / classify: trained smoke variants when the project fixture exists, else tiny random ones;
    tiny-detect (black image -> no detections) and slow-classify (about 20 ms per batch of 4) always."""
    variants = {
        "tiny-detect": build_tiny_variant("detect", _CACHE / "tiny-detect", imgsz=64, name="tiny-detect-onnx-fp32"),
        "tiny-classify": build_tiny_variant("classify", _CACHE / "tiny-classify", imgsz=32,
                                            name="tiny-classify-onnx-fp32"),
        "slow-classify": build_tiny_variant("classify", _CACHE / "slow-classify", imgsz=64, width=64, depth=6,
                                            name="slow-classify-onnx-fp32"),
    }
    smoke: dict[str, Path] = {}
    if not os.environ.get("MILESTONE_SERVING_TINY_ONLY"):  # a fast local loop that skips the smoke build
        try:
            smoke = request.getfixturevalue("smoke_variants")
        except pytest.FixtureLookupError:
            pass
    for name in ("yolov8n-pytorch-fp32", "resnet-tiny-pytorch-fp32", "yolov8n-onnx-int8-static"):
        if name in smoke:
            variants[name] = smoke[name]
    variants["detect"] = smoke.get("yolov8n-onnx-fp32", variants["tiny-detect"])
    variants["classify"] = smoke.get("resnet-tiny-onnx-fp32", variants["tiny-classify"])
    return variants
