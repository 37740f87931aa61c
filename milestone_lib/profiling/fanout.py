"""Fan-out: how many crops each detector variant sends the classifier per image.

Measured by running each detector variant (the same `inference.Detector` a step server runs) on
the validation images. The gateway calls the classifier only for an image with at least one
detection, with all its crops in one request: so the classifier's request rate is the pipeline
rate times `calls_per_image`, each request carrying `crops_per_call_mean` crops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..accuracy import detect_all
from ..contracts import load_manifest
from ..data.geometry import cut_crops
from ..inference import Detector
from .schema import FANOUT_COLUMNS

__all__ = ["cut_image_crops", "fanout_table"]


def fanout_table(detector_folders: Mapping[str, Path],
                 images: Sequence[np.ndarray]) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """Crops per image of each detector variant (`schema.FANOUT_COLUMNS`), and its detections per image."""
    rows, detections = [], {}
    for variant, folder in detector_folders.items():
        detections[variant] = detect_all(Detector(load_manifest(Path(folder)), Path(folder)), images)
        counts = np.array([len(d) for d in detections[variant]], dtype=float)
        called = counts[counts > 0]
        rows.append({"detector_variant": variant, "crops_per_image_mean": float(counts.mean()),
                     "crops_per_image_std": float(counts.std()), "images": len(counts),
                     "calls_per_image": float((counts > 0).mean()),
                     "crops_per_call_mean": float(called.mean()) if len(called) else 0.0})
    return pd.DataFrame(rows, columns=FANOUT_COLUMNS), detections


def cut_image_crops(images: Sequence[np.ndarray], detections: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """The classifier's requests: each image's crops at `size`, images without a detection left out (as the gateway)."""
    return [cut_crops(image, boxes, size) for image, boxes in zip(images, detections, strict=True) if len(boxes)]
