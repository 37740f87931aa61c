"""Fan-out: how many crops each detector variant sends the classifier per image.

Measured by running each detector variant (the same `inference.Detector` a step server runs) on
the validation images; the crops themselves are the classifier's load when it is measured alone.
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

__all__ = ["detector_crops", "fanout_table"]


def detector_crops(folder: Path, images: Sequence[np.ndarray], *, crop_size: int) -> list[np.ndarray]:
    """Per image, the (K, crop_size, crop_size, 3) crops the detector variant in `folder` cuts."""
    detector = Detector(load_manifest(Path(folder)), Path(folder))
    detections = detect_all(detector, images)
    return [cut_crops(image, boxes, crop_size) for image, boxes in zip(images, detections, strict=True)]


def fanout_table(detector_folders: Mapping[str, Path], images: Sequence[np.ndarray], *,
                 crop_size: int = 32) -> tuple[pd.DataFrame, dict[str, list[np.ndarray]]]:
    """Crops per image (mean, std) of each detector variant, and the crops themselves per variant."""
    rows, crops = [], {}
    for variant, folder in detector_folders.items():
        crops[variant] = detector_crops(folder, images, crop_size=crop_size)
        counts = np.array([len(c) for c in crops[variant]], dtype=float)
        rows.append({"detector_variant": variant, "crops_per_image_mean": float(counts.mean()),
                     "crops_per_image_std": float(counts.std()), "images": len(counts)})
    return pd.DataFrame(rows, columns=FANOUT_COLUMNS), crops
