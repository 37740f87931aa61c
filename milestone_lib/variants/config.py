"""What a variant build makes: its formats, model sizes, epochs and measurement settings.

`BuildConfig()` is the embedded offline milestone build; `BuildConfig.smoke()` the tiny one for
tests and `smoke=True` notebook runs.
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

    def buildable_formats(self) -> list[str]:
        """The formats of `format_list` this machine can build (TensorRT only where it is available)."""
        if tensorrt_unavailable_reason() is None:
            return self.format_list
        return [fmt for fmt in self.format_list if not fmt.startswith("tensorrt")]

    def epochs_for(self, size: str) -> int:
        return self.detector_epochs.get(size, max(self.detector_epochs.values(), default=5))


def variant_name(family: str, size: str, fmt_key: str) -> str:
    family_size = f"{family}{size}" if family.startswith("yolo") else f"{family}-{size}"
    return f"{family_size}-{fmt_key}"
