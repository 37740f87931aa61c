"""Crops cut from a dataset's ground-truth boxes, jittered the way a real detector's boxes are."""

from __future__ import annotations

import numpy as np

from .geometry import cut_crops
from .yolo import YoloDataset, read_image

__all__ = ["collect_crops"]


def collect_crops(
    dataset: YoloDataset,
    split: str,
    *,
    size: int,
    jitter: float = 0.1,
    seed: int = 0,
    max_images: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return crops (N, size, size, 3) uint8 and their class ids (N,).

    Each box is shifted and scaled by up to `jitter` of its size, so the classifier learns
    from boxes as imprecise as the detector's rather than from perfect ones.
    """
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for path in dataset.images(split)[:max_images]:
        image = read_image(path)
        height, width = image.shape[:2]
        boxes, classes = dataset.boxes_xyxy(path, width, height)
        if not len(boxes):
            continue
        if jitter:
            wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
            boxes = boxes + rng.uniform(-jitter, jitter, size=boxes.shape) * wh
        crops.append(cut_crops(image, boxes, size))
        labels.append(classes)
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8), np.zeros((0,), dtype=np.int64)
    return np.concatenate(crops), np.concatenate(labels)
