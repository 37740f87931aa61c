"""A TensorRT engine as a runtime, where `tensorrt` and a CUDA GPU are importable.

Elsewhere `tensorrt_unavailable_reason()` says plainly why; the build (`variants/tensorrt.py`)
asks the same question before it builds an engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedFormatError

__all__ = ["EngineRuntime", "tensorrt_unavailable_reason"]


def tensorrt_unavailable_reason() -> str | None:
    """None when engines can be built and run here, else the reason they cannot."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` Python package is not installed (it needs NVIDIA's index and a CUDA GPU)"
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch"
    except ImportError:
        return "PyTorch is not installed, so no CUDA context can be made"
    return None


class EngineRuntime:  # pragma: no cover - needs a GPU
    """A serialized engine; torch tensors serve as its CUDA buffers."""

    def __init__(self, engine_path: Path) -> None:
        reason = tensorrt_unavailable_reason()
        if reason:
            raise UnsupportedFormatError("tensorrt", reason)
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine: Any = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        self.context: Any = self.engine.create_execution_context()
        self.input_name = self.engine.get_tensor_name(0)
        self.output_name = self.engine.get_tensor_name(1)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        source = torch.from_numpy(batch).cuda()
        self.context.set_input_shape(self.input_name, tuple(source.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output_name)), device="cuda")
        self.context.set_tensor_address(self.input_name, source.data_ptr())
        self.context.set_tensor_address(self.output_name, out.data_ptr())
        self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        torch.cuda.current_stream().synchronize()
        return out.cpu().numpy()
