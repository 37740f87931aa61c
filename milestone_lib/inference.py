"""The inference path shared by accuracy measurement and the step servers.

Transport-free: pre-processing, a model runtime (`milestone_lib.runtimes`), post-processing
(YOLO decode + NMS, softmax). Measuring accuracy through these same objects is what makes the
measured accuracy the served accuracy.

Images are uint8 RGB arrays of shape (H, W, 3); detections are float32 arrays of shape (K, 6):
x1, y1, x2, y2 (pixels of the original image), score, class id.

`Detector` and `Classifier` are called plainly (accuracy) or through `timed` (the step servers),
which returns the same outputs and how long each stage took.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .contracts import VariantManifest
from .data.geometry import Letterbox, letterbox, resize_image, unletterbox_boxes
from .errors import InvalidInputError
from .runtimes import load_runtime

__all__ = [
    "CLASSIFIER_MEAN",
    "CLASSIFIER_STD",
    "Classifier",
    "Detector",
    "StageTimes",
    "decode_yolo",
    "nms",
    "preprocess_classifier",
    "preprocess_detector",
    "softmax",
]

CLASSIFIER_MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
CLASSIFIER_STD = np.array([0.5, 0.5, 0.5], dtype=np.float32)


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent in each stage of one call; the step servers report these names as they are."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


_NO_TIME = StageTimes(0.0, 0.0, 0.0)


def _ms(start: float, end: float) -> float:
    return 1000.0 * (end - start)


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
        xyxy, scores, class_ids = unletterbox_boxes(xyxy[keep], box), scores[keep], class_ids[keep]
        results.append(
            np.concatenate([xyxy, scores[:, None], class_ids[:, None]], axis=1).astype(np.float32)
        )
    return results


def preprocess_classifier(crops: np.ndarray, size: int) -> np.ndarray:
    """(K, H, W, 3) uint8 crops to a normalised float32 NCHW tensor."""
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise InvalidInputError(
            f"crops of shape {crops.shape} and dtype {crops.dtype} are not UINT8 [K, H, W, 3]; "
            "send a batch of RGB crops"
        )
    if crops.shape[1] != size or crops.shape[2] != size:
        crops = (np.stack([resize_image(c, size, size) for c in crops]) if len(crops)
                 else crops.reshape(0, size, size, 3))
    batch = (crops.astype(np.float32) / 255.0 - CLASSIFIER_MEAN) / CLASSIFIER_STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class Detector:
    """A detector variant ready to run: images in, detections out."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int = 1,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.7) -> None:
        self.manifest = manifest
        self.runtime = load_runtime(manifest, folder, threads=threads)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.timed(images)[0]

    def timed(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], StageTimes]:
        """Detections per image, and the time of letterboxing, the model, and decode + NMS."""
        if not len(images):
            return [], _NO_TIME
        t0 = time.perf_counter()
        batch, boxes = preprocess_detector(images, self.manifest.imgsz)
        t1 = time.perf_counter()
        raw = self.runtime.run(batch)
        t2 = time.perf_counter()
        detections = decode_yolo(raw, boxes, conf_threshold=self.conf_threshold, iou_threshold=self.iou_threshold)
        t3 = time.perf_counter()
        return detections, StageTimes(_ms(t0, t1), _ms(t1, t2), _ms(t2, t3))


class Classifier:
    """A classifier variant ready to run: crops in, class probabilities out."""

    def __init__(self, manifest: VariantManifest, folder: Path, *, threads: int = 1) -> None:
        self.manifest = manifest
        self.runtime = load_runtime(manifest, folder, threads=threads)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self.timed(crops)[0]

    def timed(self, crops: np.ndarray) -> tuple[np.ndarray, StageTimes]:
        """Probabilities float32 (K, classes), and the time of normalising, the model, and softmax."""
        if len(crops) == 0:
            return np.zeros((0, len(self.manifest.class_names)), dtype=np.float32), _NO_TIME
        t0 = time.perf_counter()
        batch = preprocess_classifier(crops, self.manifest.imgsz)
        t1 = time.perf_counter()
        logits = self.runtime.run(batch)
        t2 = time.perf_counter()
        probabilities = softmax(logits).astype(np.float32, copy=False)
        t3 = time.perf_counter()
        return probabilities, StageTimes(_ms(t0, t1), _ms(t1, t2), _ms(t2, t3))
