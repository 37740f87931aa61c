from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from milestone_lib.data.crops import collect_crops
from milestone_lib.data.synthetic import SyntheticSpec, generate_synthetic_dataset
from milestone_lib.data.yolo import load_dataset, read_image
from milestone_lib.errors import DatasetError

SMALL = SyntheticSpec(seed=3, train_images=6, val_images=4)
# easy to check by colour: two far-apart hues, no details, distractors, occlusion or blur
PLAIN = SyntheticSpec(seed=3, train_images=6, val_images=4, colours=("red", "blue"), details=("plain",),
                      min_objects=1, min_size=16, distractors=0, max_overlap=0.0, blur=0.0, lighting=0.0)


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
        assert 0 <= len(labels) <= SMALL.max_objects
        assert ((labels[:, 1:] > 0) & (labels[:, 1:] <= 1)).all()
        assert set(labels[:, 0].astype(int)) <= set(range(len(SMALL.class_names)))


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    a = load_dataset(generate_synthetic_dataset(tmp_path, SMALL))
    b = load_dataset(generate_synthetic_dataset(tmp_path, SyntheticSpec(seed=4, train_images=6, val_images=4)))
    assert not np.array_equal(read_image(a.val_images[0]), read_image(b.val_images[0]))


def test_boxes_cover_the_drawn_shapes(tmp_path: Path) -> None:
    dataset = load_dataset(generate_synthetic_dataset(tmp_path, PLAIN))
    crops, classes = collect_crops(dataset, "val", size=32, jitter=0.0)
    assert crops.shape[1:] == (32, 32, 3) and len(crops) == len(classes) > 0
    # a red object's crop is redder than it is blue, a blue one the other way round
    for crop, cls in zip(crops, classes):
        colour = PLAIN.class_names[cls].split("_")[0]
        centre = crop[12:20, 12:20].reshape(-1, 3).astype(float).mean(axis=0)
        assert (centre[0] > centre[2]) == (colour == "red"), (PLAIN.class_names[cls], centre)


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
    with pytest.raises(DatasetError, match=r"unknown colours/shapes/details \['hexagon'\]"):
        generate_synthetic_dataset(tmp_path, SyntheticSpec(shapes=("hexagon",)))


def test_difficulty_knobs_shape_the_data(tmp_path: Path) -> None:
    """Look-alike classes, sizes within the range (small ones included), empty and crowded images."""
    spec = SyntheticSpec(seed=5, train_images=40, val_images=4, min_size=6, max_size=40, max_objects=10)
    dataset = load_dataset(generate_synthetic_dataset(tmp_path, spec))
    assert len(dataset.class_names) == len(spec.colours) * len(spec.shapes) * len(spec.details) == 27
    assert {"red_circle", "red_circle_dot", "orange_circle"} <= set(dataset.class_names)
    counts = [len(dataset.labels(p)) for p in dataset.train_images]
    assert min(counts) == 0 and max(counts) >= 8  # none to many objects per image
    sides = np.concatenate([dataset.labels(p)[:, 3] * spec.width for p in dataset.train_images])
    assert sides.min() >= spec.min_size - 0.01 and sides.max() <= spec.max_size + 0.01
    assert (sides < 12).mean() > 0.2, "log-uniform sizes: many small objects"
    assert spec.name != spec.model_copy(update={"distractors": 0}).name  # knobs are part of the dataset's identity


def _edges_outside_boxes(dataset) -> list[bool]:
    """Per image: are there sharp edges (a drawn shape) outside every labelled box?"""
    found = []
    for path in dataset.train_images:
        image = read_image(path).astype(int)
        edges = np.zeros(image.shape[:2], dtype=bool)
        edges[:, 1:] = np.abs(np.diff(image, axis=1)).max(axis=2) > 25
        boxes, _ = dataset.boxes_xyxy(path, image.shape[1], image.shape[0])
        for x1, y1, x2, y2 in boxes.astype(int):
            edges[max(0, y1 - 1) : y2 + 2, max(0, x1 - 1) : x2 + 2] = False
        found.append(bool(edges.any()))
    return found


def test_distractors_are_drawn_but_never_labelled(tmp_path: Path) -> None:
    # no noise or lighting: the smooth background has no sharp edges, shapes do
    clean = PLAIN.model_copy(update={"noise": 0.0, "max_objects": 2, "train_images": 12})
    busy = clean.model_copy(update={"distractors": 4})
    assert not any(_edges_outside_boxes(load_dataset(generate_synthetic_dataset(tmp_path, clean))))
    assert sum(_edges_outside_boxes(load_dataset(generate_synthetic_dataset(tmp_path, busy)))) >= 6


def test_bad_ranges_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"objects 5\.\.2.*give 0 <= min_objects <= max_objects"):
        generate_synthetic_dataset(tmp_path, SyntheticSpec(min_objects=5, max_objects=2))
