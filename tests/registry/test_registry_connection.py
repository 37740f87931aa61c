"""Where the registry connects and with which keys: endpoints, credentials, server binary (no server needed)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

import milestone_lib.registry as registry_module
from milestone_lib.errors import RegistryServerError
from milestone_lib.registry import VERSION_RE, new_version_id
from milestone_lib.registry.connection import resolve_settings
from milestone_lib.registry.credentials import (
    ensure_credentials,
    mask_key,
    read_credentials,
)
from milestone_lib.registry.endpoint import (
    endpoint_is_explicit,
    is_local_endpoint,
    split_endpoint,
)
from milestone_lib.registry.local_server import find_server_binary, start_server
from milestone_lib.settings import RegistrySettings

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import checkout_registry_settings, local_registry_settings

REPO = Path(__file__).resolve().parents[2]


def test_public_surface_is_what_the_readme_uses() -> None:
    assert set(registry_module.__all__) == {
        "BUILD_NOTEBOOK", "VERSION_RE", "ModelRegistry", "PulledVariant", "PushedVariant", "StoredObject",
        "VariantVersion", "new_version_id", "open_registry", "PushedImage", "PulledImage",
    }
    for method in ("push_variant", "list_variants", "pull_variant", "push_container_image", "pull_container_image",
                   "list_container_images"):
        assert callable(getattr(registry_module.ModelRegistry, method)), method


def test_versions_sort_by_time_and_never_collide() -> None:
    versions = [new_version_id() for _ in range(2000)]
    assert all(VERSION_RE.match(v) for v in versions)
    assert len(set(versions)) == len(versions)
    times = [v.split("-")[0] for v in versions]  # the suffix only breaks ties within a microsecond
    assert times == sorted(times)


def test_endpoint_parsing_and_key_masking() -> None:
    assert split_endpoint("127.0.0.1:8333") == ("127.0.0.1", 8333, None)
    assert split_endpoint("https://minio.example.org:9000/") == ("minio.example.org", 9000, True)
    assert split_endpoint("http://localhost") == ("localhost", None, False)
    assert split_endpoint("[::1]:9000") == ("::1", 9000, None)
    assert [is_local_endpoint(e) for e in ("127.0.0.1:1", "localhost:2", "[::1]:3", "10.0.0.1:4")] == [
        True, True, True, False]
    assert mask_key("AKIAIOSFODNN7EXAMPLE") == "AKIA…(20 chars)"
    assert mask_key("") == "<none set>"
    assert mask_key(SecretStr("short")) == "****(5 chars)"


def test_an_endpoint_is_explicit_only_when_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILESTONE_REGISTRY_ENDPOINT", raising=False)
    unset = checkout_registry_settings(tmp_path, local_port=18333)
    assert not endpoint_is_explicit(unset)
    assert endpoint_is_explicit(local_registry_settings(tmp_path))
    monkeypatch.setenv("MILESTONE_REGISTRY_ENDPOINT", "minio.example.org:9000")
    from_env = RegistrySettings(_env_file=None)  # type: ignore[call-arg]
    assert endpoint_is_explicit(from_env) and from_env.endpoint == "minio.example.org:9000"


def test_resolve_settings_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MILESTONE_REGISTRY_ENDPOINT", raising=False)
    unset = checkout_registry_settings(tmp_path, local_port=18333)
    assert resolve_settings(unset).endpoint == "127.0.0.1:18333"  # nothing recorded: the checkout's default port
    explicit = unset.model_copy(update={"endpoint": "minio.example.org:9000"})
    assert resolve_settings(explicit).endpoint == "minio.example.org:9000"
    keys = ensure_credentials(unset)
    resolved = resolve_settings(unset)
    assert (resolved.access_key.get_secret_value(), resolved.secret_key.get_secret_value()) == keys


def test_credentials_are_generated_once_into_a_private_file(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path)
    first = ensure_credentials(settings)
    assert ensure_credentials(settings) == first == read_credentials(settings.credentials_file)
    assert stat.S_IMODE(settings.credentials_file.stat().st_mode) == 0o600
    assert len(first[0]) == 20 and len(first[1]) >= 32
    assert ensure_credentials(local_registry_settings(tmp_path / "other")) != first
    given = settings.model_copy(update={"access_key": SecretStr("given-access"),
                                        "secret_key": SecretStr("given-s3cret")})
    assert ensure_credentials(given) == ("given-access", "given-s3cret")
    with pytest.raises(RegistryServerError, match="only one of the access key and the secret key"):
        ensure_credentials(settings.model_copy(update={"access_key": SecretStr("only-access")}))


def test_local_server_state_and_credentials_are_git_ignored() -> None:
    paths = ["model_registry/credentials.env", "model_registry/data/server.json", "model_registry/data/logs/x.log"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True, check=False)
    assert ignored.stdout.split() == paths
    defaults = RegistrySettings.model_fields
    assert defaults["credentials_file"].default == REPO / "model_registry" / "credentials.env"
    assert defaults["data_dir"].default == REPO / "model_registry" / "data"


def test_server_binary_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = local_registry_settings(tmp_path)
    kind, found = find_server_binary(settings)
    assert kind == ("minio" if shutil.which("minio") else "seaweedfs")
    weed = found if kind == "seaweedfs" else found.with_name("weed")
    fake = tmp_path / "bin" / "minio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert find_server_binary(settings) == ("minio", fake)  # a real MinIO on PATH wins
    assert find_server_binary(settings.model_copy(update={"server_binary": str(weed)}))[0] == "seaweedfs"
    with pytest.raises(RegistryServerError, match="SERVER_BINARY '/nowhere/minio' is not an executable file"):
        find_server_binary(settings.model_copy(update={"server_binary": "/nowhere/minio"}))


def test_local_server_refuses_a_remote_endpoint(tmp_path: Path) -> None:
    settings = local_registry_settings(tmp_path, endpoint="minio.example.org:9000")
    with pytest.raises(RegistryServerError, match="'minio.example.org:9000' is not a port on this machine"):
        start_server(settings)
    assert not (settings.data_dir / "server.json").exists()
