from __future__ import annotations

import numpy as np
import pytest

from milestone_lib.data.geometry import (
    PAD_VALUE,
    cut_crops,
    letterbox,
    unletterbox_boxes,
)
from milestone_lib.errors import InvalidInputError


def _image(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def test_letterbox_pads_the_short_side_evenly_and_keeps_the_image_unscaled_when_it_fits() -> None:
    canvas, box = letterbox(_image(64, 128), 128)
    assert canvas.shape == (128, 128, 3) and box.scale == 1.0
    assert (box.pad_x, box.pad_y, box.height, box.width) == (0, 32, 64, 128)
    assert (canvas[:32] == PAD_VALUE).all() and (canvas[96:] == PAD_VALUE).all()
    assert np.array_equal(canvas[32:96], _image(64, 128))


def test_unletterbox_maps_network_pixels_back_to_the_original_image() -> None:
    _, box = letterbox(_image(100, 300), 150)  # scale 0.5, 50 pixels of padding above and below
    assert box.scale == 0.5 and box.pad_y == 50
    network = np.array([[10.0, 60.0, 60.0, 90.0], [-5.0, 0.0, 200.0, 140.0]], dtype=np.float32)
    original = unletterbox_boxes(network.copy(), box)
    np.testing.assert_allclose(original[0], [20, 20, 120, 80])
    np.testing.assert_allclose(original[1], [0, 0, 300, 100])  # clipped to the image


def test_cut_crops_resizes_each_box_and_keeps_degenerate_boxes_inside_the_image() -> None:
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[10:20, 30:50] = (255, 0, 0)
    boxes = np.array([[30, 10, 50, 20, 0.9, 0], [60, 40, 60, 40, 0.5, 1]], dtype=np.float32)
    crops = cut_crops(image, boxes, 16)
    assert crops.shape == (2, 16, 16, 3) and crops.dtype == np.uint8
    assert (crops[0] == (255, 0, 0)).all()  # exactly the red rectangle
    assert (crops[1] == 0).all()  # the bottom-right corner pixel, not an error
    assert cut_crops(image, np.zeros((0, 6), dtype=np.float32), 16).shape == (0, 16, 16, 3)


@pytest.mark.parametrize(("image", "message"), [
    (np.zeros((8, 8), dtype=np.uint8), r"shape \(8, 8\) .* is not an RGB uint8 array"),
    (np.zeros((8, 8, 3), dtype=np.float32), r"dtype float32 is not an RGB uint8 array"),
    (np.zeros((0, 8, 3), dtype=np.uint8), r"image of shape \(0, 8, 3\) is empty"),
])
def test_letterbox_refuses_what_is_not_an_image(image: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        letterbox(image, 32)


@pytest.mark.parametrize("size", [(128, 96), (160, 120), (48, 48), (700, 525)])
def test_pillow_resize_stays_close_to_opencv(size: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # the serving image has no OpenCV: its Pillow path must give (nearly) the inputs we measured with
    import cv2

    from milestone_lib.data import geometry

    rng = np.random.default_rng(0)
    image = (90 + rng.integers(0, 20, (478, 638, 3))).astype(np.uint8)  # noisy background, odd size
    for _ in range(12):
        centre = (int(rng.integers(20, 600)), int(rng.integers(20, 440)))
        cv2.circle(image, centre, int(rng.integers(4, 30)), [int(c) for c in rng.integers(0, 255, 3)], -1)
    with_opencv = geometry.resize_image(image, *size)
    monkeypatch.setattr(geometry, "_opencv", lambda: None)
    with_pillow = geometry.resize_image(image, *size)
    assert with_pillow.shape == with_opencv.shape == (size[1], size[0], 3)
    difference = np.abs(with_pillow.astype(int) - with_opencv)
    assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 4  # edges differ most
