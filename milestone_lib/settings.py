"""Settings, read from the environment (and git-ignored env files), never from code.

Nothing happens at import time: build a settings object where it is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["PROJECT_ROOT", "ProjectSettings", "RegistrySettings", "configure_offline_environment", "registry_run_settings",
           "run_settings"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ProjectSettings(BaseSettings):
    """Where generated files go. Environment prefix `MILESTONE_`."""

    model_config = SettingsConfigDict(env_prefix="MILESTONE_", env_file=".env", extra="ignore")

    artifacts_dir: Path = PROJECT_ROOT / "artifacts"
    """Datasets, trained variants and their manifests (git-ignored)."""
    reports_dir: Path = PROJECT_ROOT / "reports"
    """Tables and plots that the notebooks write."""
    cache_dir: Path = PROJECT_ROOT / ".cache"
    """Config and cache folders of third-party tools (ultralytics, matplotlib)."""
    smoke_artifacts_dir: Path | None = None
    """Datasets and variants of smoke runs; None = `<artifacts_dir>/smoke`, so a smoke build never replaces a full one."""
    smoke_reports_dir: Path | None = None
    """Tables and plots of smoke runs; None = `<reports_dir>/smoke`, so a smoke run never overwrites a full one."""

    @property
    def datasets_dir(self) -> Path:
        return self.artifacts_dir / "datasets"

    @property
    def variants_dir(self) -> Path:
        return self.artifacts_dir / "variants"


class RegistrySettings(BaseSettings):
    """How to reach the MinIO/S3 model registry. Environment prefix `MILESTONE_REGISTRY_`.

    The local server writes its generated credentials to `model_registry/credentials.env`
    (git-ignored); a real MinIO is used by setting the endpoint and keys in the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="MILESTONE_REGISTRY_",
        env_file=(".env", str(PROJECT_ROOT / "model_registry" / "credentials.env")),
        extra="ignore",
    )

    endpoint: str = "127.0.0.1:8333"
    """host:port of the S3 API."""
    access_key: SecretStr = SecretStr("")
    """S3 access key id."""
    secret_key: SecretStr = SecretStr("")
    """S3 secret key."""
    secure: bool = False
    """Use TLS."""
    models_bucket: str = "models"
    """Bucket holding variants by pipeline/step/variant/version."""
    images_bucket: str = "images"
    """Bucket holding container image tarballs."""
    results_bucket: str = "results"
    """Bucket holding profiling results and reports."""
    pipeline: str = "detect-classify"
    """Pipeline name, the first level of the models bucket."""
    server_binary: str | None = None
    """Path of a `minio` server binary for the local registry; default: `minio` on PATH, else SeaweedFS."""
    data_dir: Path = PROJECT_ROOT / "model_registry" / "data"
    """Where the local registry server keeps its data."""
    credentials_file: Path = PROJECT_ROOT / "model_registry" / "credentials.env"
    """Git-ignored file holding the local server's generated credentials."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Connect/read timeout towards the server."""
    local_port: int = Field(default=8333, ge=1, le=65535)
    """Port this checkout's local server takes when MILESTONE_REGISTRY_ENDPOINT is not set; when another
    process holds it, the server takes a free port and records it in `data_dir/server.json`."""


def configure_offline_environment(settings: ProjectSettings | None = None) -> None:
    """Keep ultralytics, matplotlib and Hugging Face inside the project's folders and offline.

    Called by the functions that import those libraries, before importing them.
    """
    settings = settings or ProjectSettings()
    cache = settings.cache_dir
    defaults = {
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(cache / "ultralytics"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "HF_HOME": str(cache / "huggingface"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "YOLO_VERBOSE": "False",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for key in ("YOLO_CONFIG_DIR", "MPLCONFIGDIR"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)


def run_settings(*, smoke: bool, settings: ProjectSettings | None = None) -> ProjectSettings:
    """The settings a run uses: unchanged for a full run; a smoke run's artifacts and reports folders.

    Smoke runs build the same variant names with tiny parameters, so they get folders of their own.
    """
    settings = settings or ProjectSettings()
    if not smoke:
        return settings
    artifacts = settings.smoke_artifacts_dir or settings.artifacts_dir / "smoke"
    reports = settings.smoke_reports_dir or settings.reports_dir / "smoke"
    # The smoke fields point at themselves, so applying this twice does not nest `smoke/smoke`.
    return settings.model_copy(update={"artifacts_dir": artifacts, "reports_dir": reports,
                                       "smoke_artifacts_dir": artifacts, "smoke_reports_dir": reports})


def registry_run_settings(*, smoke: bool, settings: RegistrySettings | None = None) -> RegistrySettings:
    """The registry settings a run uses: a smoke run publishes under `<pipeline>-smoke`, so a
    deployment that asks the registry for `latest` never gets a smoke model."""
    settings = settings or RegistrySettings()
    if not smoke or settings.pipeline.endswith("-smoke"):
        return settings
    return settings.model_copy(update={"pipeline": f"{settings.pipeline}-smoke"})
