"""Build every variant of both steps, measure them, and write a manifest beside each.

    build_variants(BuildConfig()) -> BuildResult
      dataset (synthetic unless given)
      for each detector size:   train once -> for each input resolution (96/128/160):
                                pytorch, onnx fp32, onnx int8-static, onnx int8-dynamic, tensorrt*
      for each classifier size: train -> the same formats
      every variant: accuracy (mAP + fan-out, or top-1) and raw latency -> manifest.json
      every detector x classifier pair of the served formats: end-to-end pipeline mAP

What to build is `variants/config.py`; how one model's variants are built, reused and timed is
`variants/family.py`; this module runs both steps and the pipeline accuracy of every pair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..accuracy import (
    ValImages,
    classifier_top1,
    detection_fanout,
    detector_map,
    load_val_images,
    pipeline_map,
    serving_detections,
)
from ..contracts import VariantManifest, load_manifest
from ..data.crops import collect_crops
from ..data.synthetic import SyntheticSpec, generate_synthetic_dataset
from ..data.yolo import YoloDataset, load_dataset, read_image
from ..errors import UnsupportedFormatError
from ..inference import Classifier, Detector, preprocess_classifier, preprocess_detector
from ..settings import ProjectSettings
from .config import FORMATS, BuildConfig, variant_name
from .family import FamilyBuilder, ModelRecipe
from .hf import ClassifierTraining, export_classifier_onnx, train_classifier
from .yolo import (
    DETECTOR_CLASS_NAMES,
    DetectorTraining,
    export_detector_onnx,
    train_detector,
)

# The build's entry point; the config and naming are re-exported so one import is enough.
__all__ = ["FORMATS", "BuildConfig", "BuildResult", "build_variants", "variant_name"]


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


def _dataset(config: BuildConfig, settings: ProjectSettings) -> YoloDataset:
    if config.dataset:
        return load_dataset(config.dataset)
    spec = SyntheticSpec(seed=config.synthetic_seed, train_images=config.synthetic_train_images,
                         val_images=config.synthetic_val_images, **config.synthetic)
    return load_dataset(generate_synthetic_dataset(settings.datasets_dir, spec))


def build_variants(config: BuildConfig | None = None, *, settings: ProjectSettings | None = None) -> BuildResult:
    """Build, measure and record every requested variant; see the module docstring."""
    config = config or BuildConfig()
    settings = settings or ProjectSettings()
    builder = FamilyBuilder(config, settings)
    requested_trt = [f for f in config.format_list if f.startswith("tensorrt")]
    if requested_trt and builder.trt_reason and config.formats != "auto":
        # Asked for by name on a machine without it: refuse rather than silently skip.
        raise UnsupportedFormatError(requested_trt[0], builder.trt_reason)
    dataset = builder.stages.time("dataset", lambda: _dataset(config, settings))
    val: ValImages = builder.stages.time("load val images", lambda: load_val_images(dataset))
    rng_seed = config.seed

    def detector_calibration(imgsz: int) -> list[np.ndarray]:
        images = [read_image(p) for p in dataset.train_images[: config.calibration_images]]
        return [preprocess_detector(images[i : i + 8], imgsz)[0] for i in range(0, len(images), 8)]

    def measure_detector(manifest: VariantManifest, folder: Path) -> dict[str, float]:
        detector = Detector(manifest, folder, threads=2)
        return {**detector_map(detector, val), **detection_fanout(detector, val)}

    def classifier_calibration() -> list[np.ndarray]:
        crops, _ = collect_crops(dataset, "train", size=config.classifier_imgsz, jitter=0.1, seed=rng_seed,
                                 max_images=config.calibration_images)
        return [preprocess_classifier(crops[i : i + 32], config.classifier_imgsz) for i in range(0, len(crops), 32)]

    val_crops = collect_crops(dataset, "val", size=config.classifier_imgsz, jitter=0.1, seed=1234)
    detectors: list[str] = []
    for size in config.detector_sizes:
        training = DetectorTraining(family=config.detector_family, size=size, epochs=config.epochs_for(size),
                                    imgsz=config.imgsz, batch=config.detector_batch, seed=config.seed,
                                    weights=config.detector_weights.get(size))
        for px in config.input_resolutions:  # the first one trains; the others reuse those weights
            detectors += builder.build_family(ModelRecipe(
                step="detect", family=config.detector_family, size=size, training=training.as_dict(),
                class_names=DETECTOR_CLASS_NAMES, imgsz=px, trained_at=config.imgsz,
                train=lambda folder, t=training: train_detector(dataset, t, folder),
                export=lambda weights, folder, px=px: export_detector_onnx(weights, folder, imgsz=px),
                calibration=lambda px=px: detector_calibration(px),
                measure=measure_detector,
            ), dataset)
    classifiers: list[str] = []
    for size in config.classifier_sizes:
        ctraining = ClassifierTraining(size=size, epochs=config.classifier_epochs, imgsz=config.classifier_imgsz,
                                       crop_passes=config.classifier_crop_passes, seed=config.seed,
                                       checkpoint=config.classifier_checkpoints.get(size))
        classifiers += builder.build_family(ModelRecipe(
            step="classify", family=ctraining.family, size=size, training=ctraining.as_dict(),
            class_names=dataset.class_names, imgsz=config.classifier_imgsz,
            train=lambda folder, t=ctraining: train_classifier(dataset, t, folder)[0],
            export=lambda weights, folder: export_classifier_onnx(weights, folder, imgsz=config.classifier_imgsz),
            calibration=classifier_calibration,
            measure=lambda manifest, folder: classifier_top1(Classifier(manifest, folder, threads=2), dataset,
                                                             crops=val_crops),
        ), dataset)
    served = tuple(f"-{fmt}" for fmt in config.pipeline_formats)
    pipeline_rows = builder.stages.time("pipeline accuracy", lambda: _pipeline_accuracy(
        builder.variants, [d for d in detectors if d.endswith(served)], [c for c in classifiers if c.endswith(served)],
        val))
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
