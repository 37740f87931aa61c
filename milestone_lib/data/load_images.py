"""Images of a YOLO dataset split, to send as requests (a load run's payload)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contracts import load_manifest
from ..errors import DatasetError
from .yolo import load_dataset, read_image

__all__ = ["load_images"]


def load_images(dataset_yaml: str | Path | None = None, *, variant_folder: str | Path | None = None,
                split: str = "val", limit: int | None = 32) -> list[np.ndarray]:
    """RGB uint8 images of `split`, at most `limit` of them.

    Without `dataset_yaml`, the dataset a variant was built on (its manifest's `dataset.yaml`).
    """
    if dataset_yaml is None:
        if variant_folder is None:
            raise DatasetError("(none)", "neither `dataset_yaml` nor `variant_folder` was given",
                               hint="pass the dataset yaml, or the variant folder whose dataset to send")
        dataset_yaml = load_manifest(Path(variant_folder)).dataset.get("yaml")
        if not dataset_yaml:
            raise DatasetError(f"of variant {variant_folder}", "the variant's manifest records no dataset yaml",
                               hint="pass `dataset_yaml` explicitly")
    paths = load_dataset(dataset_yaml).images(split)
    return [read_image(p) for p in paths[:limit]]
