"""MLServer 1.7 serving an ONNX model, for `bench_step_server.py` to compare against.

1.7 ships no ONNX runtime, so a small custom `MLModel` calls ONNX Runtime with the same session
options as the step server. MLServer lives in its own venv, `.cache/mlserver-venv` (git-ignored):
used when it is there, created with pip only when asked (`install=True`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_support import stop_process

from milestone_lib.net import free_port
from milestone_lib.serving.protocol import service_pb2_grpc
from milestone_lib.settings import ProjectSettings

__all__ = ["MLSERVER_VENV", "find_mlserver", "mlserver_running"]

MLSERVER_VENV = ProjectSettings().cache_dir / "mlserver-venv"
MLSERVER_PACKAGES = ["mlserver==1.7.*", "onnxruntime==1.31.*", "numpy<2.5", "uvloop<0.22"]

MLSERVER_MODEL = '''
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.settings.parameters.extra["threads"])
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(self.settings.parameters.uri, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = NumpyCodec.decode_input(payload.inputs[0])
        output = self.session.run(None, {self.input_name: batch})[0]
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("OUTPUT", output)])
'''


def find_mlserver(*, install: bool) -> Path:
    """The python of `.cache/mlserver-venv`; installs MLServer 1.7 there only if `install`. RuntimeError says why not."""
    python = MLSERVER_VENV / "bin" / "python"
    probe = [str(python), "-c", "import mlserver, onnxruntime; print(mlserver.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    if not install:
        raise RuntimeError(f"not installed in {MLSERVER_VENV} (pass --install-mlserver to create it with pip: "
                           f"{' '.join(MLSERVER_PACKAGES)})")
    shutil.rmtree(MLSERVER_VENV, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(MLSERVER_VENV)],
             [str(python), "-m", "pip", "install", "-q", *MLSERVER_PACKAGES]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(step)}` failed:\n{done.stderr[-2000:]}")
    return python


def wait_for_grpc(address: str, timeout: float) -> None:
    import grpc

    from milestone_lib.serving.protocol import service_pb2

    end = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < end:
            try:
                if stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=1).ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise RuntimeError(f"server at {address} not ready within {timeout} s")


@contextmanager
def mlserver_running(model: Path, threads: int, *, install: bool = False) -> Iterator[str]:
    """MLServer serving `model` as `classify` through ONNX Runtime with `threads`; yields its gRPC address."""
    python = find_mlserver(install=install)
    with tempfile.TemporaryDirectory(prefix="bench-mlserver-") as tmp:
        folder = Path(tmp)
        (folder / "onnx_model.py").write_text(MLSERVER_MODEL)
        grpc_port = free_port()
        (folder / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": free_port(), "grpc_port": grpc_port, "metrics_port": free_port(),
            "parallel_workers": 0, "debug": False, "grpc_max_message_length": 64 * 2**20,
        }))
        (folder / "model-settings.json").write_text(json.dumps({
            "name": "classify", "implementation": "onnx_model.OnnxModel",
            "parameters": {"uri": str(model), "extra": {"threads": threads}},
        }))
        env = {**os.environ, "PYTHONPATH": str(folder)}
        proc = subprocess.Popen([str(python.parent / "mlserver"), "start", str(folder)], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(folder / "mlserver.log", "wb"))  # noqa: SIM115
        try:
            address = f"127.0.0.1:{grpc_port}"
            try:
                wait_for_grpc(address, 120)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{(folder / 'mlserver.log').read_text()[-2000:]}") from None
            yield address
        finally:
            stop_process(proc)
