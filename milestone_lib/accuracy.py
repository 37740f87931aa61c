"""Accuracy, measured through the same inference path the servers use.

- detector: COCO mAP50 and mAP50-95 on the val split (pycocotools), one generic class;
- classifier: top-1 on jittered val crops;
- pipeline: end-to-end COCO mAP of detector -> crops -> classifier against the dataset's classes,
  with the serving thresholds (what a client of the pipeline actually gets);
- fan-out: detections per val image at the serving threshold, i.e. the crops per image the
  classifier step receives (mean and spread), which sizes the classify step downstream.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .data.crops import collect_crops
from .data.geometry import cut_crops
from .data.yolo import YoloDataset, read_image
from .inference import Classifier, Detector

__all__ = [
    "EVAL_CONF_THRESHOLD",
    "SERVING_CONF_THRESHOLD",
    "ValImages",
    "classifier_top1",
    "coco_map",
    "detect_all",
    "detection_fanout",
    "detector_map",
    "load_val_images",
    "pipeline_map",
    "serving_detections",
]

EVAL_CONF_THRESHOLD = 0.001  # as ultralytics' val: the whole precision-recall curve
SERVING_CONF_THRESHOLD = 0.25  # what the step servers use


@dataclass(frozen=True)
class ValImages:
    """The val split in memory with its ground truth in pixels."""

    images: list[np.ndarray]
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    class_names: list[str]


def load_val_images(dataset: YoloDataset, *, limit: int | None = None) -> ValImages:
    images, boxes, classes = [], [], []
    for path in dataset.val_images[:limit]:
        image = read_image(path)
        b, c = dataset.boxes_xyxy(path, image.shape[1], image.shape[0])
        images.append(image)
        boxes.append(b)
        classes.append(c)
    return ValImages(images, boxes, classes, dataset.class_names)


def coco_map(
    gt_boxes: Sequence[np.ndarray],
    gt_classes: Sequence[np.ndarray],
    detections: Sequence[np.ndarray],
    image_sizes: Sequence[tuple[int, int]],
    num_classes: int,
) -> dict[str, float]:
    """COCO mAP50-95 and mAP50 with pycocotools; detections rows are x1, y1, x2, y2, score, class."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, ((height, width), boxes, classes, dets) in enumerate(
        zip(image_sizes, gt_boxes, gt_classes, detections), start=1
    ):
        images.append({"id": image_id, "height": height, "width": width})
        for (x1, y1, x2, y2), cls in zip(boxes.tolist(), classes.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        for x1, y1, x2, y2, score, cls in dets.tolist():
            results.append({"image_id": image_id, "category_id": int(cls) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    if not results:
        return {"mAP50": 0.0, "mAP50-95": 0.0}
    ground_truth = COCO()
    ground_truth.dataset = {"images": images, "annotations": annotations,
                            "categories": [{"id": i + 1, "name": str(i)} for i in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"mAP50": float(max(evaluation.stats[1], 0.0)), "mAP50-95": float(max(evaluation.stats[0], 0.0))}


def detect_all(detector: Detector, images: Sequence[np.ndarray], *, batch: int = 8) -> list[np.ndarray]:
    detections: list[np.ndarray] = []
    for start in range(0, len(images), batch):
        detections.extend(detector(images[start : start + batch]))
    return detections


def _sizes(images: Iterable[np.ndarray]) -> list[tuple[int, int]]:
    return [(int(i.shape[0]), int(i.shape[1])) for i in images]


def detector_map(detector: Detector, val: ValImages) -> dict[str, float]:
    """Class-agnostic mAP of a detector (every ground-truth box is one 'object' class)."""
    detector.conf_threshold = EVAL_CONF_THRESHOLD
    detections = detect_all(detector, val.images)
    for det in detections:
        det[:, 5] = 0
    return coco_map(val.boxes, [np.zeros_like(c) for c in val.classes], detections, _sizes(val.images), 1)


def classifier_top1(classifier: Classifier, dataset: YoloDataset, *, jitter: float = 0.1, seed: int = 1234,
                    crops: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float]:
    x, y = crops if crops is not None else collect_crops(
        dataset, "val", size=classifier.manifest.imgsz, jitter=jitter, seed=seed)
    predictions = np.concatenate([classifier(x[i : i + 128]).argmax(axis=1) for i in range(0, len(x), 128)])
    return {"top1": float((predictions == y).mean()), "val_crops": float(len(y))}


def pipeline_map(detections: Sequence[np.ndarray], classifier: Classifier, val: ValImages) -> dict[str, float]:
    """End-to-end mAP: the classifier names each detected crop; score = det score × class probability."""
    labelled = []
    for image, det in zip(val.images, detections):
        probabilities = classifier(cut_crops(image, det, classifier.manifest.imgsz))
        out = det.copy()
        if len(det):
            out[:, 5] = probabilities.argmax(axis=1)
            out[:, 4] = det[:, 4] * probabilities.max(axis=1)
        labelled.append(out)
    return coco_map(val.boxes, val.classes, labelled, _sizes(val.images), len(val.class_names))


def serving_detections(detector: Detector, val: ValImages) -> list[np.ndarray]:
    """Detections at the serving threshold, as the pipeline's classifier step receives them."""
    detector.conf_threshold = SERVING_CONF_THRESHOLD
    return detect_all(detector, val.images)



def detection_fanout(detector: Detector, val: ValImages) -> dict[str, float]:
    """Detections per val image at the serving threshold: `crops_per_image_mean` / `_std` (and the truth's mean)."""
    counts = np.array([len(d) for d in serving_detections(detector, val)], dtype=np.float64)
    truth = np.array([len(b) for b in val.boxes], dtype=np.float64)
    return {"crops_per_image_mean": float(counts.mean()) if len(counts) else 0.0,
            "crops_per_image_std": float(counts.std()) if len(counts) else 0.0,
            "objects_per_image_mean": float(truth.mean()) if len(truth) else 0.0}
