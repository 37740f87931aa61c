"""INT8 variants with ONNX Runtime's quantization: static (calibrated) and dynamic.

What makes static INT8 pay off on x86 CPUs: unsigned activations (QUInt8) with signed per-channel
weights (QInt8) in QDQ format, and few fp32 <-> int8 boundaries. For YOLO only Conv/Gemm/MatMul
are quantized: quantizing its decode head (the DFL and the box arithmetic) destroys its
coordinates (mAP 0). A small ResNet classifier gains more when its residual Adds, ReLUs and
pooling stay in int8 too (measured on 2 AVX2 cores, batch 1, 64x64, the "tiny" ResNet: 1.26x
with Conv/Gemm alone, 1.48x with the whole graph), so classifiers of the ResNet family get
`RESNET_QUANTIZED_OPS`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["QUANTIZED_OPS", "RESNET_QUANTIZED_OPS", "static_quantized_ops", "quantize_static_int8",
           "quantize_dynamic_int8"]

QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]
RESNET_QUANTIZED_OPS = [*QUANTIZED_OPS, "Add", "Relu", "MaxPool", "GlobalAveragePool"]


def static_quantized_ops(step: str, family: str) -> list[str]:
    """The op types static INT8 quantizes for a step's model family."""
    return RESNET_QUANTIZED_OPS if (step, family) == ("classify", "resnet") else QUANTIZED_OPS


class _CalibrationReader:
    """Feeds calibration batches to ONNX Runtime's calibrator."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self._input_name = input_name
        self._iterator: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._iterator, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:  # part of the reader interface; one pass is all we need
        pass


def _excluded_nodes(model_path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path)).graph
    # YOLO's DFL conv turns bin probabilities into distances; quantizing it shifts every box.
    return [node.name for node in graph.node if "dfl" in node.name.lower()]


def _preprocessed(model_path: Path, folder: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = folder / "preprocessed.onnx"
    # Symbolic shape inference fails on a dynamic-batch graph; the ONNX shape inference suffices.
    quant_pre_process(str(model_path), str(target), skip_symbolic_shape=True)
    return target


def quantize_static_int8(model_path: Path, target: Path, calibration: list[np.ndarray], *,
                         op_types: list[str] = QUANTIZED_OPS) -> Path:
    """Static INT8 (QDQ, per-channel) of the `op_types` nodes, calibrated on `calibration`: NCHW float32 batches."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    input_name = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = _preprocessed(Path(model_path), Path(tmp))
        quantize_static(
            str(source), str(target), _CalibrationReader(input_name, calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=op_types,
            nodes_to_exclude=_excluded_nodes(source),
            calibrate_method=CalibrationMethod.MinMax,
        )
    return Path(target)


def quantize_dynamic_int8(model_path: Path, target: Path) -> Path:
    """Dynamic INT8: weights quantized ahead, activations scaled at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = _preprocessed(Path(model_path), Path(tmp))
        quantize_dynamic(
            str(source), str(target),
            weight_type=QuantType.QUInt8,  # ConvInteger on CPU takes unsigned weights
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=_excluded_nodes(source),
        )
    return Path(target)
