"""An ONNX Runtime session on the CPU execution provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxRuntime"]


class OnnxRuntime:
    """One `InferenceSession` of `path`; `threads` intra-op threads and one inter-op thread."""

    def __init__(self, path: Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.threads = threads
        self.session: Any = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name: str = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
