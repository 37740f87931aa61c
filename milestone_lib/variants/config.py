"""What a variant build makes: its dataset, formats, model sizes, epochs and measurement settings.

`BuildConfig()` is the embedded offline milestone build; `BuildConfig.smoke()` the tiny one for
tests and `smoke=True` notebook runs. The defaults (dataset difficulty, epochs per size, input
resolutions) are calibrated in `milestone_lib/data/CALIBRATION.md`.

Variant names: `<model>[-<input px>]-<format>`, e.g. `yolov8n-onnx-fp32` (the detector at the
resolution it was trained at) and `yolov8n-96-onnx-int8-static` (the same weights exported for
96 px input). The resolution is in the name only where it differs from the training one, so a
build with one resolution names its variants as before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import VariantError
from ..runtimes.tensorrt import tensorrt_unavailable_reason
from .hf import CLASSIFIER_SIZES
from .yolo import DETECTOR_SIZES

__all__ = ["DEFAULT_FORMATS", "FORMATS", "BuildConfig", "variant_name"]

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
    synthetic: dict[str, Any] = Field(default_factory=dict, description="SyntheticSpec difficulty knobs to override, "
                                      "e.g. {'distractors': 4, 'min_size': 6}")
    detector_family: str = "yolov8"
    detector_sizes: list[str] = Field(default_factory=lambda: ["n", "s"])
    # calibrated: the small model gets fewer epochs, so capacity shows at every input resolution
    detector_epochs: dict[str, int] = Field(default_factory=lambda: {"n": 4, "s": 8})
    detector_weights: dict[str, str] = Field(default_factory=dict, description="size -> pretrained weights")
    detector_batch: int = 16
    imgsz: int = Field(default=128, description="detector training resolution (px)")
    detector_resolutions: list[int] = Field(
        default_factory=lambda: [96, 128, 160],
        description="input resolutions each trained detector is exported and measured at; [] = only `imgsz`")
    classifier_sizes: list[str] = Field(default_factory=lambda: ["tiny", "small"])
    classifier_epochs: int = 4
    classifier_imgsz: int = 48
    classifier_crop_passes: int = Field(default=1, description="jittered passes over the train boxes per epoch set")
    classifier_checkpoints: dict[str, str] = Field(default_factory=dict, description="size -> HF checkpoint id")
    formats: list[str] | Literal["auto"] = Field(
        default="auto",
        description="'auto' = every format, TensorRT shown as unavailable where it cannot be built; "
        "a list names formats that must be built (an impossible one is an error)",
    )
    latency_batches: list[int] = Field(default_factory=lambda: [1, 8])
    latency_threads: list[int] = Field(default_factory=lambda: [1, 2])
    calibration_images: int = 64
    pipeline_formats: list[str] = Field(
        default_factory=lambda: ["onnx-fp32", "onnx-int8-static"],
        description="formats paired in the end-to-end pipeline accuracy (both steps): the ones worth serving "
        "(INT8 dynamic is slower than fp32 for the detectors); every format costs pairs x val images")
    seed: int = 0
    rebuild: bool = False

    @field_validator("detector_sizes")
    @classmethod
    def _known_detector_sizes(cls, sizes: list[str]) -> list[str]:
        for size in sizes:
            if size not in DETECTOR_SIZES:
                raise VariantError("detector size", size, choices=list(DETECTOR_SIZES))
        return sizes

    @field_validator("synthetic")
    @classmethod
    def _known_knobs(cls, knobs: dict[str, Any]) -> dict[str, Any]:
        from ..data.synthetic import SyntheticSpec

        for key in knobs:
            if key not in SyntheticSpec.model_fields or key in ("seed", "train_images", "val_images"):
                raise VariantError("synthetic dataset knob", key, choices=[
                    k for k in SyntheticSpec.model_fields if k not in ("seed", "train_images", "val_images")])
        return knobs

    @field_validator("detector_resolutions")
    @classmethod
    def _sane_resolutions(cls, sizes: list[int]) -> list[int]:
        for size in sizes:
            if size < 32 or size % 32:
                raise VariantError("detector input resolution", size, hint="use a multiple of 32 (the YOLO stride), e.g. 96, 128, 160")
        return sorted(set(sizes))

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
        """A tiny build for tests and `smoke=True` runs: an easy dataset, one size per step and resolution."""
        values: dict[str, Any] = {
            "synthetic_train_images": 160, "synthetic_val_images": 24, "detector_sizes": ["n"],
            # the old, easy dataset: 6 classes of larger objects, no distractors; learnt in a few epochs
            "synthetic": {"colours": ("red", "blue"), "details": ("plain",), "min_objects": 1, "max_objects": 5,
                          "min_size": 14, "distractors": 0, "blur": 0.0, "lighting": 0.1, "colour_jitter": 25},
            "detector_epochs": {"n": 6}, "detector_batch": 8, "detector_resolutions": [],
            "classifier_sizes": ["tiny"], "classifier_epochs": 3, "classifier_imgsz": 64, "classifier_crop_passes": 2,
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

    def buildable_formats(self) -> list[str]:
        """The formats of `format_list` this machine can build (TensorRT only where it is available)."""
        if tensorrt_unavailable_reason() is None:
            return self.format_list
        return [fmt for fmt in self.format_list if not fmt.startswith("tensorrt")]

    def epochs_for(self, size: str) -> int:
        return self.detector_epochs.get(size, max(self.detector_epochs.values(), default=5))

    @property
    def input_resolutions(self) -> list[int]:
        """Detector input resolutions to build, the training one included when none are listed."""
        return list(self.detector_resolutions) or [self.imgsz]


def variant_name(family: str, size: str, fmt_key: str, input_px: int | None = None) -> str:
    """`yolov8n-onnx-fp32`; with `input_px` (a resolution other than the training one) `yolov8n-96-onnx-fp32`."""
    family_size = f"{family}{size}" if family.startswith("yolo") else f"{family}-{size}"
    return f"{family_size}-{input_px}-{fmt_key}" if input_px else f"{family_size}-{fmt_key}"
