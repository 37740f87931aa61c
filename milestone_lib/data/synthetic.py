"""A deterministic synthetic detection dataset in YOLO format.

Coloured shapes (several per image) on noisy backgrounds: a detector learns "object" from it
in a minute on two CPU cores, and a classifier learns the shape × colour classes from the crops.
The same seed and sizes always give the same bytes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

__all__ = ["COLOURS", "SHAPES", "SyntheticSpec", "generate_synthetic_dataset"]

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220)}


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the generator; they are recorded in the dataset yaml."""

    seed: int = 0
    train_images: int = 400
    val_images: int = 100
    width: int = 160
    height: int = 128
    min_objects: int = 1
    max_objects: int = 5
    min_size: int = 14
    max_size: int = 40
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colours: tuple[str, ...] = ("red", "blue")

    @property
    def class_names(self) -> list[str]:
        return [f"{colour}_{shape}" for colour in self.colours for shape in self.shapes]

    @property
    def name(self) -> str:
        return f"synthetic-s{self.seed}-{self.train_images}x{self.val_images}-{self.width}x{self.height}"


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.integers(60, 200, size=3)
    gradient = np.linspace(-30, 30, width)[None, :, None] * rng.uniform(-1, 1)
    noise = rng.normal(0, 18, size=(height, width, 3))
    return np.clip(base[None, None, :] + gradient + noise, 0, 255).astype(np.uint8)


def _draw(image: np.ndarray, shape: str, colour: tuple[int, int, int], box: tuple[int, int, int, int],
          rng: np.random.Generator) -> None:
    import cv2

    x1, y1, x2, y2 = box
    jitter = rng.integers(-25, 26, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
    if shape == "circle":
        cv2.ellipse(image, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, fill, -1)
    elif shape == "square":
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), fill, -1)
    else:
        points = np.array([[(x1 + x2) // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)
        cv2.fillPoly(image, [points], fill)


def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> bool:
    x1, y1, x2, y2 = box
    for a1, b1, a2, b2 in others:
        if x1 < a2 + 2 and a1 < x2 + 2 and y1 < b2 + 2 and b1 < y2 + 2:
            return True
    return False


def _make_image(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    image = _background(rng, spec.height, spec.width)
    labels: list[tuple[int, float, float, float, float]] = []
    boxes: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    for _ in range(wanted * 20):
        if len(boxes) == wanted:
            break
        w = int(rng.integers(spec.min_size, spec.max_size + 1))
        h = int(np.clip(w * rng.uniform(0.8, 1.25), spec.min_size, spec.max_size))
        x1 = int(rng.integers(0, spec.width - w + 1))
        y1 = int(rng.integers(0, spec.height - h + 1))
        box = (x1, y1, x1 + w, y1 + h)
        if _overlaps(box, boxes):
            continue
        class_id = int(rng.integers(len(spec.class_names)))
        colour_name, shape = spec.class_names[class_id].split("_", 1)
        _draw(image, shape, COLOURS[colour_name], box, rng)
        boxes.append(box)
        labels.append((class_id, (x1 + w / 2) / spec.width, (y1 + h / 2) / spec.height, w / spec.width, h / spec.height))
    return image, labels


def generate_synthetic_dataset(root: Path, spec: SyntheticSpec | None = None, *, overwrite: bool = False) -> Path:
    """Write the dataset under `root/<spec.name>` and return the path of its yaml.

    An existing complete dataset with the same spec is reused; it is written to a temporary
    folder and renamed into place, so a crash never leaves a half dataset behind.
    """
    import cv2

    spec = spec or SyntheticSpec()
    unknown = [c for c in spec.colours if c not in COLOURS] + [s for s in spec.shapes if s not in SHAPES]
    if unknown:
        from ..errors import DatasetError

        raise DatasetError(spec.name, f"unknown colours/shapes {unknown}",
                           hint=f"use colours from {sorted(COLOURS)} and shapes from {list(SHAPES)}")
    target = Path(root) / spec.name
    yaml_path = target / "data.yaml"
    if yaml_path.exists() and not overwrite:
        return yaml_path
    tmp = Path(root) / f".{spec.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(spec.seed)
    for split, count in (("train", spec.train_images), ("val", spec.val_images)):
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "labels" / split).mkdir(parents=True)
        for index in range(count):
            image, labels = _make_image(rng, spec)
            stem = f"{split}_{index:05d}"
            cv2.imwrite(str(tmp / "images" / split / f"{stem}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            lines = [f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
            (tmp / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    config = {
        "path": str(target.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(spec.class_names)),
        "synthetic": {"seed": spec.seed, "train_images": spec.train_images, "val_images": spec.val_images,
                      "width": spec.width, "height": spec.height},
    }
    (tmp / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if overwrite:
        shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return yaml_path
