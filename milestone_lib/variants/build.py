"""Build every variant of both steps, measure them, and write a manifest beside each.

    build_variants(BuildConfig()) -> BuildResult
      dataset (synthetic unless given)
      for each detector size:   train -> pytorch, onnx fp32, onnx int8-static, onnx int8-dynamic, tensorrt*
      for each classifier size: train -> the same formats
      every variant: accuracy (mAP or top-1) and raw latency -> manifest.json
      every detector x classifier pair: end-to-end pipeline mAP

A variant whose manifest records the same fingerprint (dataset + training settings + format) is
reused, so re-running the notebook after a crash or with more formats only builds what is new.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..accuracy import (
    ValImages,
    classifier_top1,
    detector_map,
    load_val_images,
    pipeline_map,
    serving_detections,
)
from ..contracts import TensorSpec, VariantManifest, load_manifest
from ..data.crops import collect_crops
from ..data.synthetic import SyntheticSpec, generate_synthetic_dataset
from ..data.yolo import YoloDataset, load_dataset, read_image
from ..errors import UnsupportedFormatError, VariantError
from ..inference import Classifier, Detector, preprocess_classifier, preprocess_detector
from ..settings import ProjectSettings
from .hf import (
    CLASSIFIER_SIZES,
    ClassifierTraining,
    export_classifier_onnx,
    train_classifier,
)
from .latency import measure_latency_side_by_side
from .quantize import (
    QUANTIZED_OPS,
    quantize_dynamic_int8,
    quantize_static_int8,
    static_quantized_ops,
)
from .tensorrt import build_tensorrt_engine, tensorrt_unavailable_reason
from .yolo import (
    DETECTOR_CLASS_NAMES,
    DETECTOR_SIZES,
    DetectorTraining,
    count_parameters,
    export_detector_onnx,
    train_detector,
)

__all__ = ["FORMATS", "BuildConfig", "BuildResult", "build_variants", "variant_name"]

# format key -> (manifest format, precision)
FORMATS: dict[str, tuple[str, str]] = {
    "pytorch-fp32": ("pytorch", "fp32"),
    "onnx-fp32": ("onnx", "fp32"),
    "onnx-int8-static": ("onnx", "int8-static"),
    "onnx-int8-dynamic": ("onnx", "int8-dynamic"),
    "tensorrt-fp16": ("tensorrt", "fp16"),
    "tensorrt-int8": ("tensorrt", "int8-static"),
}
DEFAULT_FORMATS = ["pytorch-fp32", "onnx-fp32", "onnx-int8-static", "onnx-int8-dynamic", "tensorrt-fp16", "tensorrt-int8"]


class BuildConfig(BaseModel):
    """What to build. The defaults are the embedded, offline milestone build."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, description="YOLO dataset yaml; None = generate the synthetic one")
    synthetic_seed: int = 0
    synthetic_train_images: int = 400
    synthetic_val_images: int = 100
    detector_family: str = "yolov8"
    detector_sizes: list[str] = Field(default_factory=lambda: ["n", "s"])
    detector_epochs: dict[str, int] = Field(default_factory=lambda: {"n": 5, "s": 4})
    detector_weights: dict[str, str] = Field(default_factory=dict, description="size -> pretrained weights")
    detector_batch: int = 16
    imgsz: int = 128
    classifier_sizes: list[str] = Field(default_factory=lambda: ["tiny", "small"])
    classifier_epochs: int = 6
    classifier_imgsz: int = 64
    classifier_checkpoints: dict[str, str] = Field(default_factory=dict, description="size -> HF checkpoint id")
    formats: list[str] | Literal["auto"] = Field(
        default="auto",
        description="'auto' = every format, TensorRT shown as unavailable where it cannot be built; "
        "a list names formats that must be built (an impossible one is an error)",
    )
    latency_batches: list[int] = Field(default_factory=lambda: [1, 8])
    latency_threads: list[int] = Field(default_factory=lambda: [1, 2])
    calibration_images: int = 64
    seed: int = 0
    rebuild: bool = False

    @field_validator("detector_sizes")
    @classmethod
    def _known_detector_sizes(cls, sizes: list[str]) -> list[str]:
        for size in sizes:
            if size not in DETECTOR_SIZES:
                raise VariantError("detector size", size, choices=list(DETECTOR_SIZES))
        return sizes

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: list[str] | str) -> list[str] | str:
        if formats == "auto":
            return formats
        for fmt in formats:
            if fmt not in FORMATS:
                raise VariantError("format", fmt, choices=list(FORMATS))
        return formats

    @classmethod
    def smoke(cls, **overrides: Any) -> BuildConfig:
        """A tiny build for tests and `smoke=True` runs: one size per step, a few epochs."""
        values: dict[str, Any] = {
            "synthetic_train_images": 160, "synthetic_val_images": 24, "detector_sizes": ["n"],
            "detector_epochs": {"n": 6}, "detector_batch": 8, "classifier_sizes": ["tiny"], "classifier_epochs": 3,
            "latency_batches": [1, 4], "latency_threads": [1], "calibration_images": 16,
        }
        values.update(overrides)
        return cls(**values)

    @model_validator(mode="after")
    def _known_classifier_sizes(self) -> BuildConfig:
        for size in self.classifier_sizes:
            if size not in CLASSIFIER_SIZES and size not in self.classifier_checkpoints:
                raise VariantError("classifier size", size, choices=list(CLASSIFIER_SIZES),
                                   hint="or map it to a Hugging Face id in `classifier_checkpoints`")
        return self

    @property
    def format_list(self) -> list[str]:
        return list(DEFAULT_FORMATS) if self.formats == "auto" else list(self.formats)

    def epochs_for(self, size: str) -> int:
        return self.detector_epochs.get(size, max(self.detector_epochs.values(), default=5))


class BuildResult(BaseModel):
    """Manifests and folders of what was built, what could not be, and how long each stage took."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    dataset_yaml: str
    variants: dict[str, str] = Field(description="variant name -> folder")
    unavailable: list[dict[str, str]] = Field(default_factory=list, description="variant, format, reason")
    pipeline_accuracy: list[dict[str, Any]] = Field(default_factory=list)
    stage_seconds: dict[str, float] = Field(default_factory=dict)

    def manifests(self) -> list[VariantManifest]:
        return [load_manifest(Path(folder)) for folder in self.variants.values()]


def variant_name(family: str, size: str, fmt_key: str) -> str:
    family_size = f"{family}{size}" if family.startswith("yolo") else f"{family}-{size}"
    return f"{family_size}-{fmt_key}"


class _Stages:
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


class _Builder:
    def __init__(self, config: BuildConfig, settings: ProjectSettings) -> None:
        self.config = config
        self.settings = settings
        self.stages = _Stages()
        self.variants: dict[str, str] = {}
        self.unavailable: list[dict[str, str]] = []
        self.trt_reason = tensorrt_unavailable_reason()

    # -- dataset ---------------------------------------------------------------------------------
    def dataset(self) -> YoloDataset:
        if self.config.dataset:
            return load_dataset(self.config.dataset)
        spec = SyntheticSpec(seed=self.config.synthetic_seed, train_images=self.config.synthetic_train_images,
                             val_images=self.config.synthetic_val_images)
        return load_dataset(generate_synthetic_dataset(self.settings.datasets_dir, spec))

    # -- one family of variants ------------------------------------------------------------------
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


def build_variants(config: BuildConfig | None = None, *, settings: ProjectSettings | None = None) -> BuildResult:
    """Build, measure and record every requested variant; see the module docstring."""
    config = config or BuildConfig()
    settings = settings or ProjectSettings()
    builder = _Builder(config, settings)
    requested_trt = [f for f in config.format_list if f.startswith("tensorrt")]
    if requested_trt and builder.trt_reason and config.formats != "auto":
        # Asked for by name on a machine without it: refuse rather than silently skip.
        raise UnsupportedFormatError(requested_trt[0], builder.trt_reason)
    dataset = builder.stages.time("dataset", builder.dataset)
    val: ValImages = builder.stages.time("load val images", lambda: load_val_images(dataset))
    rng_seed = config.seed

    def detector_calibration() -> list[np.ndarray]:
        images = [read_image(p) for p in dataset.train_images[: config.calibration_images]]
        return [preprocess_detector(images[i : i + 8], config.imgsz)[0] for i in range(0, len(images), 8)]

    def classifier_calibration() -> list[np.ndarray]:
        crops, _ = collect_crops(dataset, "train", size=config.classifier_imgsz, jitter=0.1, seed=rng_seed,
                                 max_images=config.calibration_images)
        return [preprocess_classifier(crops[i : i + 32], config.classifier_imgsz) for i in range(0, len(crops), 32)]

    val_crops = collect_crops(dataset, "val", size=config.classifier_imgsz, jitter=0.1, seed=1234)
    detectors: list[str] = []
    for size in config.detector_sizes:
        training = DetectorTraining(family=config.detector_family, size=size, epochs=config.epochs_for(size),
                                    imgsz=config.imgsz, batch=config.detector_batch, seed=config.seed, weights=config.detector_weights.get(size))
        detectors += builder.build_family(
            step="detect", family=config.detector_family, size=size, training=training.as_dict(), dataset=dataset,
            train=lambda folder, t=training: train_detector(dataset, t, folder),
            export=lambda weights, folder: export_detector_onnx(weights, folder, imgsz=config.imgsz),
            calibration=detector_calibration,
            measure=lambda manifest, folder: detector_map(Detector(manifest, folder, threads=2), val),
            class_names=DETECTOR_CLASS_NAMES, imgsz=config.imgsz,
        )
    classifiers: list[str] = []
    for size in config.classifier_sizes:
        ctraining = ClassifierTraining(size=size, epochs=config.classifier_epochs, imgsz=config.classifier_imgsz,
                                       seed=config.seed, checkpoint=config.classifier_checkpoints.get(size))
        classifiers += builder.build_family(
            step="classify", family=ctraining.family, size=size, training=ctraining.as_dict(), dataset=dataset,
            train=lambda folder, t=ctraining: train_classifier(dataset, t, folder)[0],
            export=lambda weights, folder: export_classifier_onnx(weights, folder, imgsz=config.classifier_imgsz),
            calibration=classifier_calibration,
            measure=lambda manifest, folder: classifier_top1(Classifier(manifest, folder, threads=2), dataset,
                                                             crops=val_crops),
            class_names=dataset.class_names, imgsz=config.classifier_imgsz,
        )
    pipeline_rows = builder.stages.time("pipeline accuracy", lambda: _pipeline_accuracy(
        builder.variants, detectors, classifiers, val))
    return BuildResult(dataset_yaml=str(dataset.yaml_path), variants=builder.variants,
                       unavailable=builder.unavailable, pipeline_accuracy=pipeline_rows,
                       stage_seconds=builder.stages.seconds)


def _pipeline_accuracy(folders: dict[str, str], detectors: list[str], classifiers: list[str],
                       val: ValImages) -> list[dict[str, Any]]:
    rows = []
    loaded = {name: (load_manifest(Path(folders[name])), Path(folders[name])) for name in classifiers}
    classifier_runs = {name: Classifier(m, f, threads=2) for name, (m, f) in loaded.items()}
    for detector_name in detectors:
        folder = Path(folders[detector_name])
        detections = serving_detections(Detector(load_manifest(folder), folder, threads=2), val)
        for classifier_name, classifier in classifier_runs.items():
            scores = pipeline_map(detections, classifier, val)
            rows.append({"detector": detector_name, "classifier": classifier_name, **scores})
    return rows
