from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from milestone_lib.data.crops import collect_crops
from milestone_lib.data.synthetic import SyntheticSpec, generate_synthetic_dataset
from milestone_lib.data.yolo import load_dataset, read_image
from milestone_lib.errors import DatasetError

SMALL = SyntheticSpec(seed=3, train_images=6, val_images=4)


def test_generator_is_deterministic_and_yolo_formatted(tmp_path: Path) -> None:
    first = generate_synthetic_dataset(tmp_path / "a", SMALL)
    second = generate_synthetic_dataset(tmp_path / "b", SMALL)
    dataset = load_dataset(first)
    assert dataset.class_names == SMALL.class_names
    assert len(dataset.train_images) == 6 and len(dataset.val_images) == 4
    for image_path in dataset.train_images:
        twin = second.parent / image_path.relative_to(first.parent)
        assert np.array_equal(read_image(image_path), read_image(twin))
        labels = dataset.labels(image_path)
        assert 1 <= len(labels) <= SMALL.max_objects
        assert ((labels[:, 1:] > 0) & (labels[:, 1:] <= 1)).all()
        assert set(labels[:, 0].astype(int)) <= set(range(len(SMALL.class_names)))


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    a = load_dataset(generate_synthetic_dataset(tmp_path, SMALL))
    b = load_dataset(generate_synthetic_dataset(tmp_path, SyntheticSpec(seed=4, train_images=6, val_images=4)))
    assert not np.array_equal(read_image(a.val_images[0]), read_image(b.val_images[0]))


def test_boxes_cover_the_drawn_shapes(tmp_path: Path) -> None:
    dataset = load_dataset(generate_synthetic_dataset(tmp_path, SMALL))
    crops, classes = collect_crops(dataset, "val", size=32, jitter=0.0)
    assert crops.shape[1:] == (32, 32, 3) and len(crops) == len(classes) > 0
    # a red object's crop is redder than it is blue, a blue one the other way round
    for crop, cls in zip(crops, classes):
        colour = SMALL.class_names[cls].split("_")[0]
        centre = crop[12:20, 12:20].reshape(-1, 3).astype(float).mean(axis=0)
        assert (centre[0] > centre[2]) == (colour == "red"), (SMALL.class_names[cls], centre)


def test_missing_yaml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist; pass the path of a YOLO-format dataset yaml"):
        load_dataset(tmp_path / "nope.yaml")


def test_dataset_without_labels_is_refused(tmp_path: Path) -> None:
    yaml_path = generate_synthetic_dataset(tmp_path, SMALL)
    for label in (yaml_path.parent / "labels" / "val").glob("*.txt"):
        label.unlink()
    with pytest.raises(DatasetError, match=r"'val' images have no labels"):
        load_dataset(yaml_path)


def test_dataset_with_missing_folder_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("path: .\ntrain: images/train\nval: images/val\nnames: {0: a}\n")
    with pytest.raises(DatasetError, match=r"'train' folder .* does not exist"):
        load_dataset(bad)


def test_unknown_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown colours/shapes \['hexagon'\]"):
        generate_synthetic_dataset(tmp_path, SyntheticSpec(shapes=("hexagon",)))
