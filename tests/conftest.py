"""Shared fixtures: small real variants, built once and cached under .cache/test-artifacts.

The build reuses variants whose manifest fingerprint matches, so only the first session pays
for training (about a minute on 2 cores); a file lock keeps parallel sessions from racing.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from milestone_lib.settings import PROJECT_ROOT, ProjectSettings
from milestone_lib.variants.build import BuildConfig, BuildResult, build_variants

TEST_ARTIFACTS = PROJECT_ROOT / ".cache" / "test-artifacts"


@pytest.fixture(scope="session")
def smoke_settings() -> ProjectSettings:
    return ProjectSettings(artifacts_dir=TEST_ARTIFACTS, reports_dir=TEST_ARTIFACTS / "reports")


@pytest.fixture(scope="session")
def smoke_build(smoke_settings: ProjectSettings) -> BuildResult:
    TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(TEST_ARTIFACTS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return build_variants(BuildConfig.smoke(), settings=smoke_settings)


@pytest.fixture(scope="session")
def smoke_variants(smoke_build: BuildResult) -> dict[str, Path]:
    """Variant name -> folder, e.g. 'yolov8n-onnx-fp32', 'resnet-tiny-onnx-int8-static'."""
    return {name: Path(folder) for name, folder in smoke_build.variants.items()}


@pytest.fixture(scope="session")
def smoke_dataset(smoke_build: BuildResult) -> Path:
    """Path of the smoke dataset's yaml."""
    return Path(smoke_build.dataset_yaml)
