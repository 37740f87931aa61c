"""Fixtures around a real local S3 server (SeaweedFS here; MinIO where its binary is on PATH).

Use them from any test module with

    pytest_plugins = ["tests.registry_fixtures"]

`registry_server` starts one server per session in a temporary folder on a free port, with
generated credentials, and stops it at the end (it also dies with the test process if that is
killed). `registry` gives each test its own buckets on it, so tests do not see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from milestone_lib.contracts import TensorSpec, VariantManifest
from milestone_lib.net import free_port
from milestone_lib.registry import ModelRegistry
from milestone_lib.registry.credentials import with_local_credentials
from milestone_lib.registry.local_server import start_server, stop_server
from milestone_lib.settings import RegistrySettings

__all__ = [
    "checkout_registry_settings",
    "local_registry_settings",
    "make_variant",
    "registry",
    "registry_env",
    "registry_server",
    "secrets_of",
    "tree",
    "variant_factory",
]


def local_registry_settings(root: Path, **overrides: object) -> RegistrySettings:
    """Settings for a local server kept entirely under `root`, on a free port, keys to be generated.

    Every field is passed explicitly so that the developer's environment and .env do not leak in.
    """
    values: dict[str, object] = {
        "endpoint": f"127.0.0.1:{free_port()}",
        "access_key": SecretStr(""),
        "secret_key": SecretStr(""),
        "secure": False,
        "models_bucket": "models",
        "images_bucket": "images",
        "results_bucket": "results",
        "pipeline": "detect-classify",
        "data_dir": root / "data",
        "credentials_file": root / "credentials.env",
    }
    values.update(overrides)
    return RegistrySettings(**values)  # type: ignore[arg-type]


def checkout_registry_settings(root: Path, *, local_port: int) -> RegistrySettings:
    """Settings of a checkout rooted at `root` that leaves the endpoint unset (its registry may move).

    Env files are off and every other field is explicit; the caller also removes
    MILESTONE_REGISTRY_ENDPOINT from the environment.
    """
    explicit = local_registry_settings(root / "model_registry", local_port=local_port)
    values = {name: getattr(explicit, name) for name in explicit.model_fields_set if name != "endpoint"}
    settings = RegistrySettings(_env_file=None, **values)  # type: ignore[call-arg]
    assert "endpoint" not in settings.model_fields_set
    return settings


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def secrets_of(settings: RegistrySettings) -> list[str]:
    return [settings.access_key.get_secret_value(), settings.secret_key.get_secret_value()]


def registry_env(settings: RegistrySettings) -> dict[str, str]:
    """Environment variables that point a subprocess (or a notebook) at these settings."""
    return {
        "MILESTONE_REGISTRY_ENDPOINT": settings.endpoint,
        "MILESTONE_REGISTRY_ACCESS_KEY": settings.access_key.get_secret_value(),
        "MILESTONE_REGISTRY_SECRET_KEY": settings.secret_key.get_secret_value(),
        "MILESTONE_REGISTRY_SECURE": "false",
        "MILESTONE_REGISTRY_MODELS_BUCKET": settings.models_bucket,
        "MILESTONE_REGISTRY_IMAGES_BUCKET": settings.images_bucket,
        "MILESTONE_REGISTRY_RESULTS_BUCKET": settings.results_bucket,
        "MILESTONE_REGISTRY_PIPELINE": settings.pipeline,
        "MILESTONE_REGISTRY_DATA_DIR": str(settings.data_dir),
        "MILESTONE_REGISTRY_CREDENTIALS_FILE": str(settings.credentials_file),
    }


def make_variant(folder: Path, *, name: str = "yolov8n-onnx-fp32", step: str = "detect",
                 files: dict[str, bytes] | None = None, artifact: str | None = None,
                 accuracy: dict[str, float] | None = None) -> VariantManifest:
    """Write a variant folder with real files and a real manifest (what notebook 01 writes, in small)."""
    folder = Path(folder)
    files = files if files is not None else {"model.onnx": os.urandom(64 * 1024)}
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    artifact = artifact or next(iter(files))
    entries = VariantManifest.describe_files(folder, artifact)
    listed = {e.path for e in entries}
    entries += [e for p in sorted(files) if p not in listed
                for e in VariantManifest.describe_files(folder, p)]  # side files (e.g. labels)
    family, size = ("yolov8", "n") if step == "detect" else ("resnet", "tiny")
    manifest = VariantManifest(
        name=name, step=step, family=family, size=size, format="onnx", precision="fp32", parameters=1234,
        artifact=artifact, files=entries,
        inputs=[TensorSpec(name="images", shape=[-1, 3, 64, 64])],
        outputs=[TensorSpec(name="output0", shape=[-1, 6])],
        class_names=["circle", "square"], imgsz=64,
        accuracy=accuracy if accuracy is not None else ({"mAP50": 0.5} if step == "detect" else {"top1": 0.9}),
    )
    manifest.write(folder)
    return manifest


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistrySettings]:
    """A real S3 server for the whole session; yields settings holding its generated keys."""
    settings = local_registry_settings(tmp_path_factory.mktemp("registry"))
    state = start_server(settings, bind_to_parent=True)
    try:
        yield with_local_credentials(settings)
    finally:
        stop_server(settings)
        assert not psutil.pid_exists(state.pid) or psutil.Process(state.pid).status() == psutil.STATUS_ZOMBIE, (
            f"registry server pid {state.pid} survived stop_server"
        )


@pytest.fixture
def registry(registry_server: RegistrySettings) -> ModelRegistry:
    """A registry on the session's server with buckets of its own."""
    token = secrets.token_hex(4)
    settings = registry_server.model_copy(update={
        "models_bucket": f"models-{token}", "images_bucket": f"images-{token}", "results_bucket": f"results-{token}",
    })
    instance = ModelRegistry(settings)
    instance.ensure_buckets()
    return instance


@pytest.fixture
def variant_factory(tmp_path: Path) -> Callable[..., Path]:
    """`variant_factory(name=..., files=...)` -> a fresh variant folder under tmp_path."""
    counter = iter(range(1_000_000))

    def create(**kwargs: object) -> Path:
        name = str(kwargs.get("name", "yolov8n-onnx-fp32"))
        folder = tmp_path / "variants" / f"{next(counter)}" / name
        make_variant(folder, **kwargs)  # type: ignore[arg-type]
        return folder

    return create
