"""A YOLO dataset written by another tool: `path:` relative, absolute or missing, from another working directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from milestone_lib.data.yolo import load_dataset, write_resolved_yaml
from milestone_lib.settings import configure_offline_environment
from milestone_lib.variants.yolo import DetectorTraining, train_detector


def _foreign_dataset(root: Path, path_entry: str | None) -> Path:
    """Three classes as a `names:` list, 200x150 JPEGs, background images without label files."""
    import cv2

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = np.full((150, 200, 3), 90, dtype=np.uint8)
            stem = f"{split}{index}"
            if index % 4 != 3:  # every fourth image is background: no label file at all
                x, y = int(rng.integers(10, 140)), int(rng.integers(10, 90))
                cv2.rectangle(image, (x, y), (x + 40, y + 40), (40, 40, 220), -1)
                (root / "labels" / split / f"{stem}.txt").write_text(
                    f"{index % 3} {(x + 20) / 200:.4f} {(y + 20) / 150:.4f} {40 / 200:.4f} {40 / 150:.4f}\n")
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), image)
    config = {"train": "images/train", "val": "images/val", "names": ["car", "bus", "truck"]}
    if path_entry is not None:
        config = {"path": path_entry, **config}
    (root / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / "data.yaml"


@pytest.fixture(params=["relative", "absolute", "missing"])
def foreign_yaml(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "downloaded"
    entry = {"relative": ".", "absolute": str(root.resolve()), "missing": None}[request.param]
    yaml_path = _foreign_dataset(root, entry)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the yaml's folder is not the working directory, as for a new user
    return yaml_path


def test_loader_reads_the_folders_against_the_yaml(foreign_yaml: Path) -> None:
    dataset = load_dataset(foreign_yaml)
    assert dataset.class_names == ["car", "bus", "truck"]
    assert len(dataset.train_images) == 8 and len(dataset.val_images) == 4
    assert dataset.root == foreign_yaml.parent.resolve()
    assert sum(len(dataset.labels(p)) for p in dataset.train_images) == 6  # background images have none


def test_resolved_copy_has_absolute_folders_ultralytics_finds(foreign_yaml: Path, tmp_path: Path) -> None:
    dataset = load_dataset(foreign_yaml)
    copy = yaml.safe_load(write_resolved_yaml(dataset, tmp_path / "resolved.yaml").read_text())
    assert Path(copy["path"]).is_absolute() and copy["names"] == {0: "car", 1: "bus", 2: "truck"}
    for split in ("train", "val"):
        assert Path(copy[split]) == (foreign_yaml.parent / "images" / split).resolve()
    configure_offline_environment()
    from ultralytics.data.utils import check_det_dataset

    if yaml.safe_load(foreign_yaml.read_text()).get("path") == ".":  # the bug the copy exists for
        with pytest.raises(FileNotFoundError, match=r"images not found, missing path .*elsewhere"):
            check_det_dataset(str(foreign_yaml))
    checked = check_det_dataset(str(tmp_path / "resolved.yaml"))
    assert Path(checked["val"]) == (foreign_yaml.parent / "images" / "val").resolve()


@pytest.mark.slow
def test_detector_trains_on_it_from_another_working_directory(foreign_yaml: Path, tmp_path: Path) -> None:
    weights = train_detector(load_dataset(foreign_yaml), DetectorTraining(epochs=1, imgsz=64, batch=4),
                             tmp_path / "out")
    assert weights.is_file() and weights.stat().st_size > 100_000
    assert not list(tmp_path.glob("*.data.yaml"))  # the resolved copy is removed after training
