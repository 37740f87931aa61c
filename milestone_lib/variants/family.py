"""Building the variants of one model: train once, derive every format, measure, write manifests.

A variant whose manifest records the same fingerprint (dataset + training settings + format) is
reused, so re-running after a crash or with more formats only builds what is new.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import TensorSpec, VariantManifest, load_manifest
from ..data.yolo import YoloDataset
from ..runtimes.tensorrt import tensorrt_unavailable_reason
from ..settings import ProjectSettings
from .config import FORMATS, BuildConfig, variant_name
from .quantize import (
    QUANTIZED_OPS,
    quantize_dynamic_int8,
    quantize_static_int8,
    static_quantized_ops,
)
from .speed import measure_latency_side_by_side
from .tensorrt import build_tensorrt_engine
from .yolo import count_parameters

__all__ = ["FamilyBuilder", "StageTimer"]


class StageTimer:
    """Seconds spent per named stage, summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, stage: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return action()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _reusable(folder: Path, fingerprint: str) -> VariantManifest | None:
    try:
        manifest = load_manifest(folder)
    except (FileNotFoundError, ValueError):
        return None
    return manifest if manifest.training.get("fingerprint") == fingerprint else None


def _onnx_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def spec(arg) -> TensorSpec:
        return TensorSpec(name=arg.name, datatype="FP32",
                          shape=[d if isinstance(d, int) else -1 for d in arg.shape])

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


class FamilyBuilder:
    """Builds families of variants into `settings.variants_dir`; remembers what it built and what it could not."""

    def __init__(self, config: BuildConfig, settings: ProjectSettings) -> None:
        self.config = config
        self.settings = settings
        self.stages = StageTimer()
        self.variants: dict[str, str] = {}
        self.unavailable: list[dict[str, str]] = []
        self.trt_reason = tensorrt_unavailable_reason()

    def build_family(
        self, *, step: str, family: str, size: str, training: dict[str, Any], dataset: YoloDataset,
        train: Callable[[Path], Path], export: Callable[[Path, Path], Path], calibration: Callable[[], list[np.ndarray]],
        measure: Callable[[VariantManifest, Path], dict[str, float]], class_names: list[str], imgsz: int,
    ) -> list[str]:
        config = self.config
        base_fp = _fingerprint(dataset.describe(), training, imgsz)
        built: list[str] = []
        names = {fmt: variant_name(family, size, fmt) for fmt in config.format_list}
        folders = {fmt: self.settings.variants_dir / name for fmt, name in names.items()}
        pytorch_folder = self.settings.variants_dir / variant_name(family, size, "pytorch-fp32")
        onnx_folder = self.settings.variants_dir / variant_name(family, size, "onnx-fp32")
        needs_onnx = any(f != "pytorch-fp32" for f in config.format_list)
        # PyTorch weights are the root of every other format, so they are built even if not listed.
        weights = self._ensure(pytorch_folder, base_fp + "pytorch-fp32",
                               lambda folder: self.stages.time(f"train {step} {size}", lambda: train(folder)))
        params: list[int] = []

        def parameters() -> int:  # counted once, and only when a manifest is (re)written
            if not params:
                params.append(self.stages.time("count parameters", lambda: self._parameters(step, weights)))
            return params[0]

        onnx_path = None
        if needs_onnx:
            onnx_path = self._ensure(onnx_folder, base_fp + "onnx-fp32",
                                     lambda folder: self.stages.time("export onnx", lambda: export(weights, folder)))
        inputs, outputs = _onnx_specs(onnx_path) if onnx_path else ([], [])
        calibration_batches: list[np.ndarray] | None = None
        measured_now = 0
        for fmt in config.format_list:
            fmt_name, precision = FORMATS[fmt]
            folder = folders[fmt]
            recipe = static_quantized_ops(step, family) if fmt == "onnx-int8-static" else None
            fingerprint = _fingerprint(base_fp, fmt, config.calibration_images, *([recipe] if recipe else []))
            if fmt.startswith("tensorrt") and self.trt_reason:
                self.unavailable.append({"variant": names[fmt], "step": step, "model": f"{family}-{size}",
                                         "format": fmt, "reason": self.trt_reason})
                continue
            reused = None if config.rebuild else _reusable(folder, fingerprint)
            if reused and reused.accuracy and reused.latency_ms:
                self.variants[names[fmt]] = str(folder)
                built.append(names[fmt])
                continue
            if fmt == "pytorch-fp32":
                artifact = weights
            elif fmt == "onnx-fp32":
                artifact = onnx_path
            else:
                if calibration_batches is None and fmt in ("onnx-int8-static", "tensorrt-int8"):
                    calibration_batches = self.stages.time("calibration data", calibration)
                artifact = self._derive(fmt, onnx_path, folder, calibration_batches, imgsz, recipe)
            assert artifact is not None
            relative = str(Path(artifact).relative_to(folder))
            manifest = VariantManifest(
                name=names[fmt], step=step, family=family, size=size, format=fmt_name, precision=precision,
                parameters=parameters(), artifact=relative, files=VariantManifest.describe_files(folder, relative),
                inputs=inputs, outputs=outputs, class_names=class_names, imgsz=imgsz,
                dataset=dataset.describe(), training={**training, "fingerprint": fingerprint},
            )
            manifest.accuracy = self.stages.time(f"accuracy {step}",
                                                 lambda m=manifest, f=folder: measure(m, f))
            manifest.write(folder)
            self.variants[names[fmt]] = str(folder)
            built.append(names[fmt])
            measured_now += 1
        if measured_now:  # time every variant of the model together, so their ratios are comparable
            family_variants = [(load_manifest(folders[fmt]), folders[fmt]) for fmt in config.format_list
                               if names[fmt] in built]
            latencies = self.stages.time("latency", lambda: measure_latency_side_by_side(
                family_variants, batches=config.latency_batches, threads=config.latency_threads))
            for (manifest, folder), latency in zip(family_variants, latencies):
                manifest.latency_ms = latency
                manifest.write(folder)
        return built

    def _ensure(self, folder: Path, fingerprint: str, make: Callable[[Path], Path]) -> Path:
        """Return the artifact in `folder`, rebuilding it unless a matching one is there."""
        marker = folder / ".source-fingerprint"
        artifact_file = folder / ".artifact"
        if not self.config.rebuild and marker.exists() and marker.read_text() == fingerprint and artifact_file.exists():
            artifact = folder / artifact_file.read_text()
            if artifact.exists():
                return artifact
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        artifact = make(folder)
        artifact_file.write_text(str(Path(artifact).relative_to(folder)))
        marker.write_text(fingerprint)
        return artifact

    def _derive(self, fmt: str, onnx_path: Path | None, folder: Path, calibration: list[np.ndarray] | None,
                imgsz: int, quantized_ops: list[str] | None = None) -> Path:
        assert onnx_path is not None
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        target = folder / "model.onnx"
        if fmt == "onnx-int8-static":
            return self.stages.time("quantize int8 static",
                                    lambda: quantize_static_int8(onnx_path, target, calibration or [],
                                                                 op_types=quantized_ops or QUANTIZED_OPS))
        if fmt == "onnx-int8-dynamic":
            return self.stages.time("quantize int8 dynamic", lambda: quantize_dynamic_int8(onnx_path, target))
        precision = "int8" if fmt == "tensorrt-int8" else "fp16"
        return self.stages.time("tensorrt", lambda: build_tensorrt_engine(
            onnx_path, folder / "model.engine", precision=precision, imgsz=imgsz, calibration=calibration))

    @staticmethod
    def _parameters(step: str, weights: Path) -> int:
        if step == "detect":
            return count_parameters(weights)
        from transformers import AutoModelForImageClassification

        return sum(p.numel() for p in AutoModelForImageClassification.from_pretrained(str(weights)).parameters())
