"""A deterministic synthetic detection dataset in YOLO format, with its difficulty as knobs.

Objects are shapes × colours × details: look-alike pairs differ only in a detail (plain, a small
central dot, hatching) or in a close hue (red / orange), so crop classification is not solved.
They come in a wide range of sizes (small ones included), may overlap and occlude one another,
share the image with distractor shapes of no class, and every image gets its own lighting,
noise and sometimes blur; 0..many objects per image. The same spec always gives the same bytes.

Knobs (`SyntheticSpec`, also parameters of notebook 01 via `BuildConfig.synthetic`) and what
they change are recorded in `milestone_lib/data/CALIBRATION.md`, with the calibration runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["COLOURS", "DETAILS", "SHAPES", "SyntheticSpec", "generate_synthetic_dataset"]

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (215, 45, 40), "orange": (230, 120, 30), "green": (40, 170, 60), "blue": (50, 80, 220)}
DETAILS = ("plain", "dot", "hatched")
_DISTRACTOR_SHAPES = ("ring", "cross", "bar")


class SyntheticSpec(BaseModel):
    """Parameters of the generator; recorded in the dataset yaml (the folder name carries their hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    train_images: int = 400
    val_images: int = 100
    width: int = 160
    height: int = 128
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = ("red", "orange", "blue")
    details: tuple[str, ...] = DETAILS
    min_objects: int = Field(default=0, description="objects per image, uniform in [min, max]")
    max_objects: int = 8
    min_size: int = Field(default=8, description="object side in pixels, log-uniform in [min, max]")
    max_size: int = 40
    max_overlap: float = Field(default=0.3, description="an object may cover this share of another one's box")
    distractors: int = Field(default=2, description="shapes of no class per image, up to this many")
    colour_jitter: int = Field(default=40, description="per-object RGB jitter; red and orange meet near 45")
    noise: float = Field(default=14.0, description="std of the Gaussian pixel noise")
    blur: float = Field(default=0.3, description="share of images blurred (sigma 0.5-1.2)")
    lighting: float = Field(default=0.3, description="per-image brightness gain in [1-l, 1+l]")

    @property
    def class_names(self) -> list[str]:
        return [f"{c}_{s}" + ("" if d == "plain" else f"_{d}")
                for c in self.colours for s in self.shapes for d in self.details]

    @property
    def name(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]
        return f"synthetic-s{self.seed}-{self.train_images}x{self.val_images}-{self.width}x{self.height}-{digest}"

    def classes(self) -> list[tuple[str, str, str]]:
        return [(c, s, d) for c in self.colours for s in self.shapes for d in self.details]


def _background(rng: np.random.Generator, height: int, width: int, noise: float) -> np.ndarray:
    base = rng.integers(60, 200, size=3)
    gradient = np.linspace(-30, 30, width)[None, :, None] * rng.uniform(-1, 1)
    texture = rng.normal(0, noise, size=(height, width, 3))
    return np.clip(base[None, None, :] + gradient + texture, 0, 255).astype(np.float32)


def _draw_shape(image: np.ndarray, shape: str, fill: tuple[int, ...], box: tuple[int, int, int, int]) -> None:
    import cv2

    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    if shape == "circle":
        cv2.ellipse(image, (cx, cy), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, fill, -1)
    elif shape == "square":
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), fill, -1)
    elif shape == "triangle":
        cv2.fillPoly(image, [np.array([[cx, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)], fill)
    elif shape == "ring":
        thickness = max(1, (x2 - x1) // 6)
        cv2.ellipse(image, (cx, cy), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, fill, thickness)
    elif shape == "cross":
        thickness = max(1, (x2 - x1) // 5)
        cv2.line(image, (x1, cy), (x2 - 1, cy), fill, thickness)
        cv2.line(image, (cx, y1), (cx, y2 - 1), fill, thickness)
    else:  # bar: a thin stripe, easy to mistake for the edge of a square
        cv2.rectangle(image, (x1, cy - max(1, (y2 - y1) // 6)), (x2 - 1, cy + max(1, (y2 - y1) // 6)), fill, -1)


def _draw_detail(image: np.ndarray, shape: str, detail: str, fill: tuple[int, ...], box: tuple[int, int, int, int]) -> None:
    import cv2

    if detail == "plain":
        return
    x1, y1, x2, y2 = box
    side = min(x2 - x1, y2 - y1)
    dark = tuple(int(v * 0.45) for v in fill)
    # the detail sits where every shape has area (a triangle's centroid is low)
    cx, cy = (x1 + x2) // 2, (y1 + 2 * y2) // 3 if shape == "triangle" else (y1 + y2) // 2
    if detail == "dot":
        cv2.circle(image, (cx, cy), max(1, side // 7), dark, -1)
        return
    mask = np.zeros(image.shape[:2], dtype=np.uint8)
    _draw_shape(mask, shape, (255,), box)
    lines = np.zeros_like(mask)
    step = max(3, side // 4)
    for offset in range(-side, side, step):  # diagonal hatching, clipped to the shape
        cv2.line(lines, (x1 + offset, y2), (x1 + offset + side, y2 - side), 255, 1)
    image[(mask > 0) & (lines > 0)] = dark


def _covered(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], limit: float) -> bool:
    """True when `box` would cover more than `limit` of an existing box (or be covered as much)."""
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    for a1, b1, a2, b2 in others:
        inter = max(0, min(x2, a2) - max(x1, a1)) * max(0, min(y2, b2) - max(y1, b1))
        if inter > limit * min(area, (a2 - a1) * (b2 - b1)):
            return True
    return False


def _random_box(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[int, int, int, int]:
    w = round(np.exp(rng.uniform(np.log(spec.min_size), np.log(spec.max_size + 1))))
    w = int(np.clip(w, spec.min_size, min(spec.max_size, spec.width)))
    h = int(np.clip(w * rng.uniform(0.8, 1.25), spec.min_size, min(spec.max_size, spec.height)))
    x1 = int(rng.integers(0, spec.width - w + 1))
    y1 = int(rng.integers(0, spec.height - h + 1))
    return x1, y1, x1 + w, y1 + h


def _jittered(rng: np.random.Generator, colour: tuple[int, int, int], jitter: int) -> tuple[int, ...]:
    return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, rng.integers(-jitter, jitter + 1, size=3)))


def _make_image(rng: np.random.Generator, spec: SyntheticSpec) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    import cv2

    image = _background(rng, spec.height, spec.width, spec.noise)
    classes = spec.classes()
    labels: list[tuple[int, float, float, float, float]] = []
    placed: list[tuple[int, int, int, int]] = []  # objects and distractors: neither may hide the other
    wanted = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    distractors = int(rng.integers(0, spec.distractors + 1))
    kinds = ["object"] * wanted + ["distractor"] * distractors
    rng.shuffle(kinds)  # drawn in random order: distractors occlude objects and the other way round
    for kind in kinds:
        for _ in range(20):
            box = _random_box(rng, spec)
            if not _covered(box, placed, spec.max_overlap):
                break
        else:
            continue
        placed.append(box)
        if kind == "distractor":
            grey = int(rng.integers(40, 220))
            tint = _jittered(rng, (grey, grey, grey), spec.colour_jitter)
            _draw_shape(image, str(rng.choice(_DISTRACTOR_SHAPES)), tint, box)
            continue
        class_id = int(rng.integers(len(classes)))
        colour, shape, detail = classes[class_id]
        fill = _jittered(rng, COLOURS[colour], spec.colour_jitter)
        _draw_shape(image, shape, fill, box)
        _draw_detail(image, shape, detail, fill, box)
        x1, y1, x2, y2 = box
        labels.append((class_id, (x1 + x2) / 2 / spec.width, (y1 + y2) / 2 / spec.height,
                       (x2 - x1) / spec.width, (y2 - y1) / spec.height))
    image *= rng.uniform(1 - spec.lighting, 1 + spec.lighting)
    if rng.random() < spec.blur:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.2)))
    image += rng.normal(0, spec.noise / 2, size=image.shape)  # sensor noise over the objects too
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _check(spec: SyntheticSpec) -> None:
    from ..errors import DatasetError

    unknown = ([c for c in spec.colours if c not in COLOURS] + [s for s in spec.shapes if s not in SHAPES]
               + [d for d in spec.details if d not in DETAILS])
    if unknown:
        raise DatasetError(spec.name, f"unknown colours/shapes/details {unknown}",
                           hint=f"use colours from {sorted(COLOURS)}, shapes from {list(SHAPES)}, details from {list(DETAILS)}")
    if not 0 <= spec.min_objects <= spec.max_objects or not 2 <= spec.min_size <= spec.max_size:
        raise DatasetError(spec.name, f"objects {spec.min_objects}..{spec.max_objects}, sizes {spec.min_size}..{spec.max_size}",
                           hint="give 0 <= min_objects <= max_objects and 2 <= min_size <= max_size")


def generate_synthetic_dataset(root: Path, spec: SyntheticSpec | None = None, *, overwrite: bool = False) -> Path:
    """Write the dataset under `root/<spec.name>` and return the path of its yaml.

    An existing complete dataset with the same spec is reused; it is written to a temporary
    folder and renamed into place, so a crash never leaves a half dataset behind.
    """
    import cv2

    spec = spec or SyntheticSpec()
    _check(spec)
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
        "synthetic": spec.model_dump(mode="json"),
    }
    (tmp / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if overwrite:
        shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return yaml_path
