"""INT8 variants with ONNX Runtime's quantization: static (calibrated) and dynamic.

What makes static INT8 pay off on x86 CPUs: unsigned activations (QUInt8) with signed per-channel
weights (QInt8), and few fp32 <-> int8 boundaries, so whole stretches of the graph stay in int8
(measured earlier on 2 cores, batch 1, QDQ form: YOLOv8n 1.13x with Conv alone, 1.27x with its
SiLU, residual Adds, Concats, pooling and upsampling too; the "tiny" ResNet 1.26x -> 1.48x).
YOLO's decode head (DFL, anchors, strides: the box arithmetic) stays fp32: quantized, it shifts
every box (mAP 0).

YOLO is written in the QOperator form (QLinearConv, QLinearSigmoid, QLinearMul...) with its two
nearest-neighbour upsamples left in fp32: on this machine's 2 AVX-512 VNNI cores, batch 1, one
thread, yolov8n at 128 px went from 1.56-1.62x (QDQ, upsamples quantized) to 1.65-1.72x over
fp32, the same mAP (`benchmarks/bench_build.py`; interleaved runs of /tmp experiments in the
issue-15 note). About a quarter of YOLO's int8 time is its 57 SiLUs, two int8 ops each, where
fp32 fuses them into one (QuickGelu): that, not the convolutions, caps the small models' gain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "QUANTIZED_OPS",
    "RESNET_QUANTIZED_OPS",
    "YOLO_QUANTIZED_OPS",
    "StaticInt8Plan",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "static_int8_plan",
]

QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]
RESNET_QUANTIZED_OPS = [*QUANTIZED_OPS, "Add", "Relu", "MaxPool", "GlobalAveragePool"]
YOLO_QUANTIZED_OPS = [*QUANTIZED_OPS, "Sigmoid", "Mul", "Add", "Concat", "MaxPool", "Split"]
QuantForm = Literal["QDQ", "QOperator"]


@dataclass(frozen=True)
class StaticInt8Plan:
    """What static INT8 quantizes in a model family (op types), and the ONNX form it writes."""

    op_types: tuple[str, ...]
    form: QuantForm = "QDQ"


def static_int8_plan(step: str, family: str) -> StaticInt8Plan:
    """The static INT8 plan of a step's model family (the reasons are in the module docstring)."""
    if step == "detect":
        return StaticInt8Plan(tuple(YOLO_QUANTIZED_OPS), "QOperator")
    ops = RESNET_QUANTIZED_OPS if (step, family) == ("classify", "resnet") else QUANTIZED_OPS
    return StaticInt8Plan(tuple(ops))


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
    """YOLO's box decoding: the DFL conv, and every non-conv node of the Detect head outside its
    cv2/cv3 conv branches (anchors, strides, DFL softmax, the final concat). Empty for other models."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    dfl = [node.name for node in graph.node if "dfl" in node.name.lower()]
    if not dfl:
        return []
    head = dfl[0][: dfl[0].lower().index("dfl")]  # e.g. "/model.22/", the Detect module's prefix
    decode = [node.name for node in graph.node if node.name.startswith(head) and node.op_type != "Conv"
              and "/cv2." not in node.name and "/cv3." not in node.name]
    return sorted(set(dfl + decode))


def _preprocessed(model_path: Path, folder: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = folder / "preprocessed.onnx"
    # Symbolic shape inference fails on a dynamic-batch graph; the ONNX shape inference suffices.
    quant_pre_process(str(model_path), str(target), skip_symbolic_shape=True)
    return target


def quantize_static_int8(model_path: Path, target: Path, calibration: list[np.ndarray], *,
                         op_types: Sequence[str] = QUANTIZED_OPS, form: QuantForm = "QDQ") -> Path:
    """Static INT8 (per-channel weights) of the `op_types` nodes, in the ONNX `form`, calibrated on
    `calibration`: NCHW float32 batches."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    input_name = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = _preprocessed(Path(model_path), Path(tmp))
        quantize_static(
            str(source), str(target), _CalibrationReader(input_name, calibration),
            quant_format=QuantFormat.QOperator if form == "QOperator" else QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(op_types),
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
