"""The inference path shared by accuracy measurement and the step servers.

Transport-free: pre-processing, a model runtime (ONNX Runtime, PyTorch or TensorRT), and
post-processing (YOLO decode + NMS, crop cutting, softmax). Measuring accuracy through these
same functions is what makes the measured accuracy the served accuracy.

Images are uint8 RGB arrays of shape (H, W, 3); detections are float32 arrays of shape (K, 6):
x1, y1, x2, y2 (pixels of the original image), score, class id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .contracts import VariantManifest
from .errors import InvalidInputError, UnsupportedFormatError

__all__ = [
    "CLASSIFIER_MEAN",
    "CLASSIFIER_STD",
    "Classifier",
    "Detector",
    "Letterbox",
    "ModelRuntime",
    "cut_crops",
    "decode_yolo",
    "letterbox",
    "load_runtime",
    "nms",
    "preprocess_classifier",
    "preprocess_detector",
    "softmax",
]

CLASSIFIER_MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
CLASSIFIER_STD = np.array([0.5, 0.5, 0.5], dtype=np.float32)
_PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the square network input."""

    scale: float
    pad_x: float
    pad_y: float
    height: int
    width: int


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2  # opencv comes with ultralytics; imported lazily to keep module import cheap

    if image.shape[1] == width and image.shape[0] == height:
        return image
    interp = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Scale the image to fit `size`×`size` keeping its aspect ratio, pad the rest (as ultralytics does)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInputError(
            f"image of shape {image.shape} and dtype {image.dtype} is not an RGB uint8 array (H, W, 3); "
            "send UINT8 images shaped [H, W, 3]"
        )
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise InvalidInputError(f"image of shape {image.shape} is empty; send a non-empty image")
    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = _resize(image, new_w, new_h)
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    canvas = np.full((size, size, 3), _PAD_VALUE, dtype=np.uint8)
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale=scale, pad_x=left, pad_y=top, height=height, width=width)


def preprocess_detector(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[Letterbox]]:
    """Letterbox a batch of images into one float32 NCHW tensor in [0, 1]."""
    boxes = [letterbox(image, size) for image in images]
    batch = np.stack([b[0] for b in boxes]).astype(np.float32) / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), [b[1] for b in boxes]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_yolo(
    output: np.ndarray,
    boxes: Sequence[Letterbox],
    *,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.7,
    max_detections: int = 300,
) -> list[np.ndarray]:
    """Turn the raw YOLOv8 head output (B, 4 + classes, anchors) into detections per image."""
    results = []
    for prediction, box in zip(output, boxes):
        prediction = prediction.T  # (anchors, 4 + classes)
        class_scores = prediction[:, 4:]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_ids)), class_ids]
        mask = scores > conf_threshold
        xywh, scores, class_ids = prediction[mask, :4], scores[mask], class_ids[mask]
        xyxy = np.empty_like(xywh)
        xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
        xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
        # Offsetting boxes by class keeps NMS per class in one call (ultralytics does the same).
        keep = nms(xyxy + class_ids[:, None] * 4096.0, scores, iou_threshold)[:max_detections]
        xyxy, scores, class_ids = xyxy[keep], scores[keep], class_ids[keep]
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - box.pad_x) / box.scale
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - box.pad_y) / box.scale
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, box.width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, box.height)
        results.append(
            np.concatenate([xyxy, scores[:, None], class_ids[:, None]], axis=1).astype(np.float32)
        )
    return results


def cut_crops(image: np.ndarray, detections: np.ndarray, size: int) -> np.ndarray:
    """Cut each detected box out of the image and resize it to `size`×`size`; (K, size, size, 3) uint8."""
    crops = []
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in detections[:, :4]:
        # Clamped inside the image: a degenerate box on the right/bottom edge still gives a 1-pixel crop.
        left, top = int(min(max(0, np.floor(x1)), width - 1)), int(min(max(0, np.floor(y1)), height - 1))
        right, bottom = int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2)))
        right, bottom = max(right, left + 1), max(bottom, top + 1)
        crops.append(_resize(np.ascontiguousarray(image[top:bottom, left:right]), size, size))
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)


def preprocess_classifier(crops: np.ndarray, size: int) -> np.ndarray:
    """(K, H, W, 3) uint8 crops to a normalised float32 NCHW tensor."""
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise InvalidInputError(
            f"crops of shape {crops.shape} and dtype {crops.dtype} are not UINT8 [K, H, W, 3]; "
            "send a batch of RGB crops"
        )
    if crops.shape[1] != size or crops.shape[2] != size:
        crops = np.stack([_resize(c, size, size) for c in crops]) if len(crops) else crops.reshape(0, size, size, 3)
    batch = (crops.astype(np.float32) / 255.0 - CLASSIFIER_MEAN) / CLASSIFIER_STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class ModelRuntime(Protocol):
    """Runs a float32 NCHW batch through a model and returns its first output."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class _OnnxRuntime:
    path: Path
    threads: int
    session: object = field(init=False)
    input_name: str = field(init=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name  # type: ignore[attr-defined]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]  # type: ignore[attr-defined]


@dataclass
class _TorchRuntime:
    module: object
    threads: int
    hf: bool

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch))  # type: ignore[operator]
        if self.hf:
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().numpy()


def load_runtime(manifest: VariantManifest, folder: Path, *, threads: int = 1) -> ModelRuntime:
    """Open the variant's artifact with the runtime its format needs."""
    artifact = Path(folder) / manifest.artifact
    if manifest.format == "onnx":
        return _OnnxRuntime(artifact, threads)
    if manifest.format == "pytorch":
        import torch

        torch.set_num_threads(threads)
        if manifest.step == "detect":
            from .settings import configure_offline_environment

            configure_offline_environment()
            from ultralytics import YOLO

            module = YOLO(str(artifact)).model.float().eval()
            return _TorchRuntime(module, threads, hf=False)
        from transformers import AutoModelForImageClassification

        module = AutoModelForImageClassification.from_pretrained(str(artifact)).eval()
        return _TorchRuntime(module, threads, hf=True)
    if manifest.format == "tensorrt":
        from .variants.tensorrt import load_engine_runtime

        return load_engine_runtime(artifact)
    raise UnsupportedFormatError(manifest.format, "no runtime is known for it")


class Detector:
    """A detector variant ready to run: images in, detections out."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int = 1,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.7) -> None:
        self.manifest = manifest
        self.runtime = load_runtime(manifest, folder, threads=threads)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not len(images):
            return []
        batch, boxes = preprocess_detector(images, self.manifest.imgsz)
        raw = self.runtime.run(batch)
        return decode_yolo(raw, boxes, conf_threshold=self.conf_threshold, iou_threshold=self.iou_threshold)


class Classifier:
    """A classifier variant ready to run: crops in, class probabilities out."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int = 1) -> None:
        self.manifest = manifest
        self.runtime = load_runtime(manifest, folder, threads=threads)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.manifest.class_names)), dtype=np.float32)
        return softmax(self.runtime.run(preprocess_classifier(crops, self.manifest.imgsz)))
