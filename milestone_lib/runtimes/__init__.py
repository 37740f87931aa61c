"""Model runtimes: a variant's artifact opened as something that runs a float32 NCHW batch.

"Runtime" means only this in the package: an ONNX Runtime session (`onnx`), a PyTorch module
(`torch`: ultralytics or Hugging Face) or a TensorRT engine (`tensorrt`), behind one
`ModelRuntime.run(batch) -> first output`. Pre- and post-processing live in `inference`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..contracts import VariantManifest
from ..errors import UnsupportedFormatError

__all__ = ["ModelRuntime", "load_runtime"]


class ModelRuntime(Protocol):
    """Runs a float32 NCHW batch through a model and returns its first output."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def load_runtime(manifest: VariantManifest, folder: Path, *, threads: int = 1) -> ModelRuntime:
    """Open the variant's artifact with the runtime its format needs, on `threads` CPU threads."""
    artifact = Path(folder) / manifest.artifact
    # Each branch imports its module here: opening an ONNX model should not import PyTorch.
    if manifest.format == "onnx":
        from .onnx import OnnxRuntime

        return OnnxRuntime(artifact, threads=threads)
    if manifest.format == "pytorch":
        from .torch import load_torch_runtime

        return load_torch_runtime(artifact, step=manifest.step, threads=threads)
    if manifest.format == "tensorrt":
        from .tensorrt import EngineRuntime

        return EngineRuntime(artifact)
    raise UnsupportedFormatError(manifest.format, "no runtime is known for it")
