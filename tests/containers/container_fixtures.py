"""Fixtures of the tests that need a Docker engine: the client, tiny variants and their images.

Use them with `pytest_plugins = ["tests.containers.container_fixtures"]`. Where no engine answers,
the private engine is started for the session when root + Debian's docker.io allow it; only where
no engine can run are the tests skipped with the reason, and under CI (`CI` set, .ci/run starts the
engine) a missing engine fails them. Images are built once per engine data root and reused
(`containers.build` skips a build whose inputs are unchanged).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from milestone_lib.containers import (
    BuiltImage,
    build_runtime_image,
    build_variant_image,
    connect_engine,
    engine_answers,
    start_private_engine,
    stop_private_engine,
)
from milestone_lib.containers.engine import can_start_private_engine
from milestone_lib.errors import EngineUnavailableError
from milestone_lib.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests" / "serving"))
from serving_tiny_variants import build_tiny_variant

__all__ = ["docker_client", "runtime_image", "tiny_images", "tiny_variants"]

_CACHE = PROJECT_ROOT / ".cache" / "container-tests"
DETECT, CLASSIFY = "tiny-detect-onnx-fp32", "tiny-classify-onnx-fp32"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine in use; where none answers but root + docker.io allow one, the private engine,
    started for the session and stopped after it (its data root, with the images, stays)."""
    started = False
    try:
        if not engine_answers() and not os.environ.get("DOCKER_HOST") and can_start_private_engine():
            start_private_engine()
            started = True
        client = connect_engine()
    except EngineUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI starts the private engine (.ci/run), yet none answers: {exc}")
        pytest.skip(f"no Docker engine can run here: {exc}")
    yield client
    client.close()
    if started:
        stop_private_engine()


@pytest.fixture(scope="session")
def tiny_variants() -> dict[str, Path]:
    """detect / classify: tiny ONNX variants (seconds to build, no training)."""
    return {
        "detect": build_tiny_variant("detect", _CACHE / DETECT, imgsz=64, name=DETECT),
        "classify": build_tiny_variant("classify", _CACHE / CLASSIFY, imgsz=32, name=CLASSIFY),
    }


@pytest.fixture(scope="session")
def runtime_image(docker_client: docker.DockerClient) -> BuiltImage:
    return build_runtime_image(docker_client)


@pytest.fixture(scope="session")
def tiny_images(docker_client: docker.DockerClient, runtime_image: BuiltImage,
                tiny_variants: dict[str, Path]) -> dict[str, BuiltImage]:
    """step -> the tiny variant's image."""
    return {step: build_variant_image(docker_client, folder, runtime=runtime_image)
            for step, folder in tiny_variants.items()}
