"""Image geometry: letterboxing into a square network input, mapping boxes back, cutting crops.

Images are uint8 RGB arrays (H, W, 3); boxes are rows x1, y1, x2, y2 in pixels.
The same functions serve the training data (`data/crops.py`), inference and the gateway, so a
crop or a box means the same thing in every stage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ..errors import InvalidInputError

__all__ = ["PAD_VALUE", "Letterbox", "cut_crops", "letterbox", "resize_image", "unletterbox_boxes"]

PAD_VALUE = 114  # the grey ultralytics pads with, so our inputs match what the detector trained on


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the square network input."""

    scale: float
    pad_x: float
    pad_y: float
    height: int
    width: int


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize: area averaging to shrink, bilinear to enlarge; unchanged if already that size.

    OpenCV where it is installed (ultralytics brings it), else Pillow's box / bilinear filters,
    which agree with it within one grey level per pixel (tests/data/test_geometry.py): the
    serving image leaves OpenCV's 150 MB out.
    """
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width < image.shape[1]
    cv2 = _opencv()
    if cv2 is not None:
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(image, (width, height), interpolation=interp)
    from PIL import Image

    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((width, height), method))


@functools.cache
def _opencv() -> ModuleType | None:
    # imported on first use: importing OpenCV costs a few hundred ms that most callers never need
    try:
        import cv2
    except ImportError:
        return None
    return cv2


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
    resized = resize_image(image, new_w, new_h)
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale=scale, pad_x=left, pad_y=top, height=height, width=width)


def unletterbox_boxes(xyxy: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map (K, 4) boxes from network-input pixels back to the original image's, clipped to it (in place)."""
    xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - box.pad_x) / box.scale
    xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - box.pad_y) / box.scale
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, box.width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, box.height)
    return xyxy


def cut_crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut each box (first four columns) out of the image, resized to `size`×`size`; (K, size, size, 3) uint8."""
    crops = []
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in boxes[:, :4]:
        # Clamped inside the image: a degenerate box on the right/bottom edge still gives a 1-pixel crop.
        left, top = int(min(max(0, np.floor(x1)), width - 1)), int(min(max(0, np.floor(y1)), height - 1))
        right, bottom = int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2)))
        right, bottom = max(right, left + 1), max(bottom, top + 1)
        crops.append(resize_image(np.ascontiguousarray(image[top:bottom, left:right]), size, size))
    if not crops:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(crops)
