"""A step model: a variant folder turned into `validate` (on the event loop) + `run_batch` (in the executor).

Built on `milestone_lib.inference`: `run_batch` calls the `timed` path of the same `Detector` /
`Classifier` objects that accuracy is measured with, so a step server returns exactly what
in-process inference returns, and reports the stage times that path measured.

- detect: `IMAGES` UINT8 [B, H, W, 3] -> `DETECTIONS` FP32 [N, 6] + `COUNTS` INT32 [B]; requests
  with different H, W share a batch (each image is letterboxed, then stacked).
- classify: `CROPS` UINT8 [K, S, S, 3] -> `PROBABILITIES` FP32 [K, C].
- raw tensors (option, for benchmarks): `INPUT` FP32 [N, 3, H, W] straight into the runtime ->
  `OUTPUT` FP32, no pre/post-processing; requests batch together when their H, W match.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import VariantManifest, load_manifest
from ..errors import InvalidInputError
from ..inference import Classifier, Detector, StageTimes
from ..runtimes import load_runtime
from .protocol import DATATYPES

__all__ = ["ClassifyModel", "DetectModel", "RawTensorModel", "StepModel", "TensorInfo", "load_step_model"]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    datatype: str
    shape: list[int]


def _ms(start: float, end: float) -> float:
    return 1000.0 * (end - start)


def _with_split(times: StageTimes, *, preprocess_ms: float = 0.0, postprocess_ms: float = 0.0) -> dict[str, float]:
    """The model's stage times plus joining the requests before and splitting them after."""
    stages = times.as_dict()
    stages["preprocess_ms"] += preprocess_ms
    stages["postprocess_ms"] += postprocess_ms
    return stages


def _single_input(inputs: dict[str, np.ndarray], spec: TensorInfo, model: str) -> np.ndarray:
    if spec.name not in inputs:
        raise InvalidInputError(
            f"model '{model}' takes input '{spec.name}' ({spec.datatype} {spec.shape}) but the request has "
            f"{', '.join(repr(n) for n in inputs)}"
        )
    array = inputs[spec.name]
    if array.dtype != DATATYPES[spec.datatype]:
        raise InvalidInputError(
            f"input '{spec.name}' has datatype {_dtype_name(array)}; model '{model}' takes {spec.datatype}"
        )
    if array.ndim != len(spec.shape) or any(s not in (-1, d) for s, d in zip(spec.shape, array.shape)):
        raise InvalidInputError(
            f"input '{spec.name}' has shape {list(array.shape)}; model '{model}' takes {spec.shape} (-1: any)"
        )
    if array.size == 0:
        raise InvalidInputError(f"input '{spec.name}' of shape {list(array.shape)} is empty; send at least one item")
    return array


def _dtype_name(array: np.ndarray) -> str:
    return next((name for name, dtype in DATATYPES.items() if dtype == array.dtype), str(array.dtype))


class StepModel:
    """What a step server needs from a model. Subclasses fill in the tensors and the batch function."""

    manifest: VariantManifest
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def step(self) -> str:
        return self.manifest.step

    @property
    def platform(self) -> str:
        return {"onnx": "onnxruntime_onnx", "pytorch": "pytorch", "tensorrt": "tensorrt_plan"}[self.manifest.format]

    def validate(self, inputs: dict[str, np.ndarray]) -> tuple[Any, int]:
        """Check a request's tensors; return the payload to batch and its row count."""
        raise NotImplementedError

    def run_batch(self, payloads: list[Any]) -> tuple[Sequence[dict[str, np.ndarray]], dict[str, float]]:
        """Compute payloads together; one output dict per payload, stage times in ms."""
        raise NotImplementedError


class DetectModel(StepModel):
    """`IMAGES` in, `DETECTIONS` + `COUNTS` out, through `Detector.timed`."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int) -> None:
        self.manifest = manifest
        self.detector = Detector(manifest, folder, threads=threads)
        self.inputs = [TensorInfo("IMAGES", "UINT8", [-1, -1, -1, 3])]
        self.outputs = [TensorInfo("DETECTIONS", "FP32", [-1, 6]), TensorInfo("COUNTS", "INT32", [-1])]

    def validate(self, inputs: dict[str, np.ndarray]) -> tuple[Any, int]:
        images = _single_input(inputs, self.inputs[0], self.name)
        return images, int(images.shape[0])

    def run_batch(self, payloads: list[Any]) -> tuple[Sequence[dict[str, np.ndarray]], dict[str, float]]:
        images = [image for batch in payloads for image in batch]
        detections, times = self.detector.timed(images)
        t0 = time.perf_counter()
        results = []
        start = 0
        for batch in payloads:
            mine = detections[start : start + len(batch)]
            start += len(batch)
            results.append({
                "DETECTIONS": np.concatenate(mine).astype(np.float32).reshape(-1, 6),
                "COUNTS": np.asarray([len(d) for d in mine], dtype=np.int32),
            })
        return results, _with_split(times, postprocess_ms=_ms(t0, time.perf_counter()))


class ClassifyModel(StepModel):
    """`CROPS` in, `PROBABILITIES` out, through `Classifier.timed`."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int) -> None:
        self.manifest = manifest
        self.classifier = Classifier(manifest, folder, threads=threads)
        size = manifest.imgsz
        self.inputs = [TensorInfo("CROPS", "UINT8", [-1, size, size, 3])]
        self.outputs = [TensorInfo("PROBABILITIES", "FP32", [-1, len(manifest.class_names)])]

    def validate(self, inputs: dict[str, np.ndarray]) -> tuple[Any, int]:
        crops = _single_input(inputs, self.inputs[0], self.name)
        return crops, int(crops.shape[0])

    def run_batch(self, payloads: list[Any]) -> tuple[Sequence[dict[str, np.ndarray]], dict[str, float]]:
        t0 = time.perf_counter()
        crops = payloads[0] if len(payloads) == 1 else np.concatenate(payloads)
        joined = _ms(t0, time.perf_counter())
        probabilities, times = self.classifier.timed(crops)
        t1 = time.perf_counter()
        results, start = [], 0
        for batch in payloads:
            results.append({"PROBABILITIES": probabilities[start : start + len(batch)]})
            start += len(batch)
        return results, _with_split(times, preprocess_ms=joined, postprocess_ms=_ms(t1, time.perf_counter()))


class RawTensorModel(StepModel):
    """FP32 NCHW in, the model's first output out: no pre/post-processing (benchmarks, custom clients)."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int) -> None:
        self.manifest = manifest
        self.runtime = load_runtime(manifest, folder, threads=threads)
        self.inputs = [TensorInfo("INPUT", "FP32", [-1, 3, -1, -1])]
        self.outputs = [TensorInfo("OUTPUT", "FP32", [-1, -1])]

    def validate(self, inputs: dict[str, np.ndarray]) -> tuple[Any, int]:
        tensor = _single_input(inputs, self.inputs[0], self.name)
        return tensor, int(tensor.shape[0])

    def run_batch(self, payloads: list[Any]) -> tuple[Sequence[dict[str, np.ndarray]], dict[str, float]]:
        t0 = time.perf_counter()
        results: list[dict[str, np.ndarray] | None] = [None] * len(payloads)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, tensor in enumerate(payloads):
            by_shape.setdefault(tensor.shape[1:], []).append(index)
        for indices in by_shape.values():
            group = [payloads[i] for i in indices]
            tensor = group[0] if len(group) == 1 else np.concatenate(group)
            output = np.asarray(self.runtime.run(tensor), dtype=np.float32)
            start = 0
            for i in indices:
                results[i] = {"OUTPUT": output[start : start + len(payloads[i])]}
                start += len(payloads[i])
        t1 = time.perf_counter()
        return results, {"preprocess_ms": 0.0, "inference_ms": _ms(t0, t1), "postprocess_ms": 0.0}  # type: ignore[return-value]


def load_step_model(folder: Path, *, threads: int = 1, raw_tensors: bool = False) -> StepModel:
    """Open a variant folder as the step model its manifest says (or as a raw-tensor model)."""
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(
            f"'{folder}' is not a variant folder (no manifest.json); build variants with `make variants` "
            "or pull one from the registry"
        )
    manifest = load_manifest(folder)
    if raw_tensors:
        return RawTensorModel(manifest, folder, threads=threads)
    if manifest.step == "detect":
        return DetectModel(manifest, folder, threads=threads)
    return ClassifyModel(manifest, folder, threads=threads)
