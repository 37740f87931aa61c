"""Registry errors name the bad value and the next step, and never a secret."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from milestone_lib.errors import (
    BucketMissingError,
    RegistryCredentialsError,
    RegistryError,
    RegistryServerFailureError,
    RegistryUnreachableError,
    VariantNotFoundError,
)
from milestone_lib.net import free_port
from milestone_lib.registry import ModelRegistry, open_registry
from milestone_lib.settings import RegistrySettings

pytest_plugins = ["tests.registry_fixtures"]

from tests.registry_fixtures import secrets_of


def test_unreachable_server(registry_server: RegistrySettings) -> None:
    settings = registry_server.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}"})
    with pytest.raises(RegistryUnreachableError,
                       match=r"at 'http://127\.0\.0\.1:\d+' is unreachable .*Connection refused.*make registry-up"):
        ModelRegistry(settings).list_variants()


def test_wrong_credentials(registry: ModelRegistry) -> None:
    secret = "definitely-wrong-secret"
    settings = registry.settings.model_copy(update={"secret_key": SecretStr(secret)})
    access = settings.access_key.get_secret_value()
    with pytest.raises(RegistryCredentialsError, match=r"rejected the credentials \(access key MS..…\(20 chars\)\); "
                                                       "check MILESTONE_REGISTRY_ACCESS_KEY") as caught:
        ModelRegistry(settings).list_variants()
    assert secret not in str(caught.value) and access not in str(caught.value)
    assert access not in repr(ModelRegistry(settings)) and secret not in repr(ModelRegistry(settings))
    # open_registry on a local endpoint: the usual cause is another checkout's server on the port.
    with pytest.raises(RegistryCredentialsError, match="another checkout's local registry holds this port") as caught:
        open_registry(settings)
    assert secret not in str(caught.value) and access not in str(caught.value)


def test_missing_bucket(registry: ModelRegistry) -> None:
    settings = registry.settings.model_copy(update={"models_bucket": "no-such-bucket"})
    with pytest.raises(BucketMissingError, match="bucket 'no-such-bucket' does not exist; run `make registry-up`"):
        ModelRegistry(settings).list_variants()
    with pytest.raises(BucketMissingError, match="no-such-bucket"):
        ModelRegistry(settings).resolve("yolov8n-onnx-fp32")


def test_unknown_variant_and_version(registry: ModelRegistry, variant_factory, tmp_path: Path) -> None:
    with pytest.raises(VariantNotFoundError, match="variant 'nope' is not in bucket 'models-.*push it first"):
        registry.pull_variant("nope", tmp_path / "p")
    pushed = registry.push_variant(variant_factory())
    with pytest.raises(VariantNotFoundError, match=f"version '20000101T000000.000000Z-000000' is not in bucket "
                                                   f".*stored versions: {pushed.version}"):
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p", version="20000101T000000.000000Z-000000")
    with pytest.raises(RegistryError, match="'../etc' cannot be a registry key"):
        registry.pull_variant("../etc", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_no_credential_in_logs(registry: ModelRegistry, variant_factory, tmp_path: Path,
                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        registry.push_variant(variant_factory())
        registry.pull_variant("yolov8n-onnx-fp32", tmp_path / "p")
        with pytest.raises(RegistryCredentialsError):
            ModelRegistry(registry.settings.model_copy(update={"secret_key": SecretStr("x" * 40)})).check()
    server_logs = "".join(p.read_text(errors="replace") for p in
                          (Path(registry.settings.data_dir) / "logs").rglob("*") if p.is_file())
    for value in secrets_of(registry.settings):
        assert value not in caplog.text
        assert value not in server_logs


def test_a_server_failing_every_retry_is_not_called_unreachable(registry_server: RegistrySettings) -> None:
    """A real loopback HTTP server that answers 500 to everything: the error says the server fails, and where its log is."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = registry_server.model_copy(update={"endpoint": f"127.0.0.1:{server.server_port}"})
        with pytest.raises(RegistryServerFailureError, match=(
                r"at 'http://127\.0\.0\.1:\d+' answers but fails the request \(too many 500 error responses\); "
                r"the fault is inside the server .*local server's is under .*/logs\)")) as caught:
            ModelRegistry(settings).list_variants()
        assert not isinstance(caught.value, RegistryUnreachableError)
        assert _AlwaysFails.requests >= 3, "the 5xx is retried before it is reported"
    finally:
        server.shutdown()
        server.server_close()


class _AlwaysFails(BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass
