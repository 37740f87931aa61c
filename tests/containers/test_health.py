"""grpc.health.v1 on a real step server and gateway (subprocesses on loopback), and the checker CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from milestone_lib.net import free_port
from milestone_lib.serving.health import check_health, main
from milestone_lib.serving.membership import write_endpoints
from milestone_lib.settings import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests" / "serving"))
from serving_helpers import spawn, step_server_args
from serving_tiny_variants import build_tiny_variant

_CACHE = PROJECT_ROOT / ".cache" / "container-tests"


@pytest.fixture(scope="module")
def tiny_classify() -> Path:
    return build_tiny_variant("classify", _CACHE / "tiny-classify-onnx-fp32", imgsz=32, name="tiny-classify-onnx-fp32")


def test_step_server_and_gateway_answer_the_standard_health_service(tiny_classify: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with spawn("milestone_lib.serving.server", step_server_args(tiny_classify), tmp_path) as server:
        for service in ("", "tiny-classify-onnx-fp32", "classify"):
            assert check_health(server.address, service=service) == "SERVING", service
        assert check_health(server.address, service="detect") == "NOT_FOUND"
        with grpc.insecure_channel(server.address) as channel:  # Watch: the current status first
            stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
            stream.cancel()
        port = server.address.rsplit(":", 1)[1]
        assert main(["--port", port]) == 0 and capsys.readouterr().out.strip() == "SERVING"

        endpoints = tmp_path / "endpoints.json"
        write_endpoints(endpoints, {"detect": [], "classify": [server.address]})
        gateway_args = ["--endpoints", str(endpoints), "--host", "127.0.0.1", "--port", "0"]
        with spawn("milestone_lib.serving.gateway", gateway_args, tmp_path) as gateway:
            # no detect replica: the pipeline cannot serve, the classify pool can
            assert check_health(gateway.address) == "NOT_SERVING"
            assert check_health(gateway.address, service="pipeline") == "NOT_SERVING"
            assert check_health(gateway.address, service="classify") == "SERVING"
            assert main(["--port", gateway.address.rsplit(":", 1)[1]]) == 1


def test_checker_cli_without_a_server_or_port(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["--port", str(free_port()), "--timeout-s", "0.5"]) == 1
    assert capsys.readouterr().out.strip() == "UNAVAILABLE"
    monkeypatch.delenv("MILESTONE_PORT", raising=False)
    assert main([]) == 2
    assert "pass --port N or set MILESTONE_PORT" in capsys.readouterr().err
