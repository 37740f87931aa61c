"""Loading any YOLO-format dataset: a yaml with train/val image folders and label files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import DatasetError

__all__ = ["IMAGE_SUFFIXES", "YoloDataset", "load_dataset", "read_image", "write_resolved_yaml"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass(frozen=True)
class YoloDataset:
    """A validated YOLO-format dataset."""

    yaml_path: Path
    root: Path
    class_names: list[str]
    train_images: list[Path]
    val_images: list[Path]

    @property
    def name(self) -> str:
        return self.root.name

    def images(self, split: str) -> list[Path]:
        if split not in ("train", "val"):
            raise DatasetError(self.yaml_path, f"unknown split '{split}'", hint="use 'train' or 'val'")
        return self.train_images if split == "train" else self.val_images

    def labels(self, image_path: Path) -> np.ndarray:
        """Labels of one image as (K, 5): class, cx, cy, w, h normalised to [0, 1]."""
        label_path = _label_path(image_path)
        if not label_path.exists():
            return np.zeros((0, 5), dtype=np.float32)
        rows = [line.split()[:5] for line in label_path.read_text().splitlines() if line.strip()]
        return np.asarray(rows, dtype=np.float32).reshape(-1, 5)

    def boxes_xyxy(self, image_path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes in pixels (K, 4) and class ids (K,) of one image."""
        labels = self.labels(image_path)
        cx, cy, w, h = labels[:, 1] * width, labels[:, 2] * height, labels[:, 3] * width, labels[:, 4] * height
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return boxes.astype(np.float32), labels[:, 0].astype(np.int64)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "yaml": str(self.yaml_path), "classes": len(self.class_names),
                "train_images": len(self.train_images), "val_images": len(self.val_images)}


def _label_path(image_path: Path) -> Path:
    # YOLO convention: .../images/<split>/x.png -> .../labels/<split>/x.txt
    parts = list(image_path.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _list_images(root: Path, entry: object, yaml_path: Path, split: str) -> list[Path]:
    if entry is None:
        raise DatasetError(yaml_path, f"has no '{split}' entry")
    folder = (root / str(entry)).resolve()
    if not folder.is_dir():
        raise DatasetError(yaml_path, f"its '{split}' folder '{folder}' does not exist")
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(yaml_path, f"its '{split}' folder '{folder}' holds no images")
    return images


def load_dataset(yaml_path: str | Path) -> YoloDataset:
    """Read and validate a dataset yaml; raises `DatasetError` naming what is wrong."""
    yaml_path = Path(yaml_path)
    if not yaml_path.is_file():
        raise DatasetError(yaml_path, "the file does not exist")
    try:
        config = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(yaml_path, f"is not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise DatasetError(yaml_path, "is not a mapping with train/val/names")
    root = Path(config.get("path") or yaml_path.parent)
    if not root.is_absolute():
        root = (yaml_path.parent / root).resolve()
    names = config.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not names:
        raise DatasetError(yaml_path, "has no class 'names'")
    train = _list_images(root, config.get("train"), yaml_path, "train")
    val = _list_images(root, config.get("val"), yaml_path, "val")
    dataset = YoloDataset(yaml_path=yaml_path.resolve(), root=root, class_names=list(map(str, names)),
                          train_images=train, val_images=val)
    for split, images in (("train", train), ("val", val)):
        if not any(_label_path(p).exists() and _label_path(p).stat().st_size > 0 for p in images):
            raise DatasetError(yaml_path, f"its '{split}' images have no labels (expected labels/<split>/*.txt)")
    return dataset


def write_resolved_yaml(dataset: YoloDataset, target: Path) -> Path:
    """Write a copy of the dataset yaml whose `path`, `train` and `val` are absolute; return `target`.

    Tools resolve a relative or missing `path:` differently (we read it against the yaml's folder,
    ultralytics' trainer against the working directory or its datasets folder), so they get this copy.
    """
    config = yaml.safe_load(dataset.yaml_path.read_text()) or {}
    config["path"] = str(dataset.root)
    for split in ("train", "val"):
        config[split] = str((dataset.root / str(config[split])).resolve())
    config["names"] = dict(enumerate(dataset.class_names))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def read_image(path: Path) -> np.ndarray:
    """Read an image file as an RGB uint8 array."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(path, "the image cannot be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
