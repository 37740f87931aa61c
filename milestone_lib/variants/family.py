"""Building the variants of one model: train once, derive every format, measure, write manifests.

A variant whose manifest records the same fingerprint (dataset + training settings + format) is
reused, so re-running after a crash or with more formats only builds what is new. A model built
at several input resolutions is trained once (at `trained_at`); each resolution is a family of
its own (every format, exported and calibrated at that resolution) from the same weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import Step, TensorSpec, VariantManifest, load_manifest
from ..data.yolo import YoloDataset
from ..runtimes.tensorrt import tensorrt_unavailable_reason
from ..settings import ProjectSettings
from .config import FORMATS, BuildConfig, variant_name
from .quantize import (
    StaticInt8Plan,
    quantize_dynamic_int8,
    quantize_static_int8,
    static_int8_plan,
)
from .speed import measure_latency_side_by_side
from .tensorrt import build_tensorrt_engine
from .yolo import count_parameters

__all__ = ["FamilyBuilder", "ModelRecipe", "StageTimer"]


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


def _copy_into(artifact: Path, source: Path, target: Path) -> Path:
    """Copy `artifact` (a file or folder under `source`) to the same place under `target`."""
    relative = Path(artifact).relative_to(source)
    if Path(artifact).is_dir():
        shutil.copytree(artifact, target / relative)
    else:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(artifact, target / relative)
    return target / relative


@dataclass(frozen=True)
class ModelRecipe:
    """One model to build in every format: how to train, export, calibrate and measure it."""

    step: Step
    family: str
    size: str
    training: dict[str, Any]
    class_names: list[str]
    imgsz: int
    train: Callable[[Path], Path]
    """folder -> PyTorch weights (a file or a Hugging Face folder) written in it"""
    export: Callable[[Path, Path], Path]
    """(weights, folder) -> ONNX file written in folder"""
    calibration: Callable[[], list[np.ndarray]]
    """pre-processed batches for static INT8"""
    measure: Callable[[VariantManifest, Path], dict[str, float]]
    """accuracy of a built variant"""
    trained_at: int | None = None
    """training resolution when `imgsz` is another input resolution of the same weights"""

    @property
    def input_px(self) -> int | None:
        """The resolution to put in variant names: only when it is not the training one."""
        return self.imgsz if self.trained_at and self.trained_at != self.imgsz else None

    def variant(self, fmt: str) -> str:
        return variant_name(self.family, self.size, fmt, self.input_px)


@dataclass
class _Sources:
    """What every format of one model derives from, made at most once per build."""

    weights: Path
    onnx_path: Path | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    parameters: int | None = None
    calibration: list[np.ndarray] | None = None


class FamilyBuilder:
    """Builds families of variants into `settings.variants_dir`; remembers what it built and what it could not."""

    def __init__(self, config: BuildConfig, settings: ProjectSettings) -> None:
        self.config = config
        self.settings = settings
        self.stages = StageTimer()
        self.variants: dict[str, str] = {}
        self.unavailable: list[dict[str, str]] = []
        self.trt_reason = tensorrt_unavailable_reason()
        self._made: dict[Path, Path] = {}  # folder -> artifact made by this builder (never remade, rebuild or not)

    def build_family(self, recipe: ModelRecipe, dataset: YoloDataset) -> list[str]:
        """Build (or reuse) every format of one model; return the names of its variants."""
        train_fp = _fingerprint(dataset.describe(), recipe.training, recipe.trained_at or recipe.imgsz)
        base_fp = _fingerprint(train_fp, recipe.imgsz)
        sources = self._sources(recipe, train_fp, base_fp)
        built: list[str] = []
        measured_now = 0
        for fmt in self.config.format_list:
            name = recipe.variant(fmt)
            if fmt.startswith("tensorrt") and self.trt_reason:
                self.unavailable.append({"variant": name, "step": recipe.step, "model": f"{recipe.family}-{recipe.size}",
                                         "format": fmt, "reason": self.trt_reason,
                                         "input_px": str(recipe.imgsz)})
                continue
            measured_now += self._build_format(recipe, dataset, fmt, base_fp, sources)
            self.variants[name] = str(self.settings.variants_dir / name)
            built.append(name)
        if measured_now:  # time every variant of the model together, so their ratios are comparable
            self._time_side_by_side([self.settings.variants_dir / name for name in built])
        return built

    def _sources(self, recipe: ModelRecipe, train_fp: str, base_fp: str) -> _Sources:
        def folder(fmt: str) -> Path:
            return self.settings.variants_dir / recipe.variant(fmt)

        # PyTorch weights are the root of every other format, so they are built even if not listed;
        # they live in the training resolution's folder and are copied for the other resolutions.
        trained = self.settings.variants_dir / variant_name(recipe.family, recipe.size, "pytorch-fp32")
        weights = self._ensure(trained, train_fp + "pytorch-fp32", lambda target: self.stages.time(
            f"train {recipe.step} {recipe.size}", lambda: recipe.train(target)))
        if recipe.input_px:
            weights = self._ensure(folder("pytorch-fp32"), base_fp + "pytorch-fp32", lambda target: _copy_into(
                weights, trained, target))
        onnx_path = None
        if any(f != "pytorch-fp32" for f in self.config.format_list):
            onnx_path = self._ensure(folder("onnx-fp32"), base_fp + "onnx-fp32", lambda target: self.stages.time(
                "export onnx", lambda: recipe.export(weights, target)))
        inputs, outputs = _onnx_specs(onnx_path) if onnx_path else ([], [])
        return _Sources(weights, onnx_path, inputs, outputs)

    def _build_format(self, recipe: ModelRecipe, dataset: YoloDataset, fmt: str, base_fp: str,
                      sources: _Sources) -> bool:
        """Write the variant of one format with its accuracy; False when a matching one was reused."""
        config = self.config
        name = recipe.variant(fmt)
        folder = self.settings.variants_dir / name
        plan = static_int8_plan(recipe.step, recipe.family) if fmt == "onnx-int8-static" else None
        fingerprint = _fingerprint(base_fp, fmt, config.calibration_images,
                                   *([list(plan.op_types), plan.form] if plan else []))
        reused = None if config.rebuild else _reusable(folder, fingerprint)
        if reused and reused.accuracy and reused.latency_ms:
            return False
        if fmt == "pytorch-fp32":
            artifact = sources.weights
        elif fmt == "onnx-fp32":
            artifact = sources.onnx_path
        else:
            if sources.calibration is None and fmt in ("onnx-int8-static", "tensorrt-int8"):
                sources.calibration = self.stages.time("calibration data", recipe.calibration)
            artifact = self._derive(fmt, sources.onnx_path, folder, sources.calibration, recipe.imgsz, plan)
        assert artifact is not None
        if sources.parameters is None:  # counted once, and only when a manifest is (re)written
            sources.parameters = self.stages.time("count parameters",
                                                  lambda: self._parameters(recipe.step, sources.weights))
        fmt_name, precision = FORMATS[fmt]
        relative = str(Path(artifact).relative_to(folder))
        manifest = VariantManifest(
            name=name, step=recipe.step, family=recipe.family, size=recipe.size, format=fmt_name,
            precision=precision, parameters=sources.parameters, artifact=relative,
            files=VariantManifest.describe_files(folder, relative), inputs=sources.inputs, outputs=sources.outputs,
            class_names=recipe.class_names, imgsz=recipe.imgsz, dataset=dataset.describe(),
            training={**recipe.training, "fingerprint": fingerprint},
        )
        manifest.accuracy = self.stages.time(f"accuracy {recipe.step}", lambda: recipe.measure(manifest, folder))
        manifest.write(folder)
        return True

    def _time_side_by_side(self, folders: list[Path]) -> None:
        variants = [(load_manifest(folder), folder) for folder in folders]
        latencies = self.stages.time("latency", lambda: measure_latency_side_by_side(
            variants, batches=self.config.latency_batches, threads=self.config.latency_threads))
        for (manifest, folder), latency in zip(variants, latencies):
            manifest.latency_ms = latency
            manifest.write(folder)

    def _ensure(self, folder: Path, fingerprint: str, make: Callable[[Path], Path]) -> Path:
        """Return the artifact in `folder`, rebuilding it unless a matching one is there."""
        marker = folder / ".source-fingerprint"
        artifact_file = folder / ".artifact"
        if folder in self._made and marker.read_text() == fingerprint:
            return self._made[folder]
        if not self.config.rebuild and marker.exists() and marker.read_text() == fingerprint and artifact_file.exists():
            artifact = folder / artifact_file.read_text()
            if artifact.exists():
                return artifact
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        artifact = make(folder)
        artifact_file.write_text(str(Path(artifact).relative_to(folder)))
        marker.write_text(fingerprint)
        self._made[folder] = artifact
        return artifact

    def _derive(self, fmt: str, onnx_path: Path | None, folder: Path, calibration: list[np.ndarray] | None,
                imgsz: int, plan: StaticInt8Plan | None = None) -> Path:
        assert onnx_path is not None
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        target = folder / "model.onnx"
        if fmt == "onnx-int8-static":
            assert plan is not None  # the caller's: it is part of the variant's fingerprint
            op_types, form = plan.op_types, plan.form
            return self.stages.time("quantize int8 static", lambda: quantize_static_int8(
                onnx_path, target, calibration or [], op_types=op_types, form=form))
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
