"""The serving package exports what it says, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

from milestone_lib import serving


def test_every_exported_name_resolves() -> None:
    for name in serving.__all__:
        assert getattr(serving, name) is not None


def test_importing_the_package_loads_no_runtime() -> None:
    code = "import sys, milestone_lib.serving; print(any(m in sys.modules for m in ('grpc', 'onnxruntime', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_the_clis_document_the_flags_the_deployer_relies_on() -> None:
    for module, flags in {
        "milestone_lib.serving.server": ["--variant", "--host", "--port", "--threads", "--max-batch-size",
                                         "--max-queue-delay-ms", "--max-queue-size", "--max-request-rows", "--metrics-port"],
        "milestone_lib.serving.gateway": ["--endpoints", "--host", "--port", "--metrics-port", "--policy"],
    }.items():
        usage = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True).stdout
        for flag in flags:
            assert flag in usage, (module, flag)
