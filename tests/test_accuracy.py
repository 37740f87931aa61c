from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from milestone_lib.accuracy import (
    SERVING_CONF_THRESHOLD,
    classifier_top1,
    coco_map,
    detect_all,
    detection_fanout,
    detector_map,
    load_val_images,
)
from milestone_lib.contracts import load_manifest
from milestone_lib.data.crops import collect_crops
from milestone_lib.data.yolo import load_dataset
from milestone_lib.inference import Classifier, Detector
from milestone_lib.settings import configure_offline_environment


def test_coco_map_of_perfect_and_shifted_predictions() -> None:
    boxes = [np.array([[10, 10, 50, 50], [60, 60, 90, 100]], dtype=np.float32)]
    classes = [np.array([0, 1])]
    perfect = [np.array([[10, 10, 50, 50, 0.9, 0], [60, 60, 90, 100, 0.8, 1]], dtype=np.float32)]
    assert coco_map(boxes, classes, perfect, [(128, 128)], 2) == pytest.approx({"mAP50": 1.0, "mAP50-95": 1.0})
    wrong_class = [perfect[0].copy()]
    wrong_class[0][:, 5] = [1, 0]
    assert coco_map(boxes, classes, wrong_class, [(128, 128)], 2)["mAP50"] == 0.0
    shifted = [perfect[0].copy()]
    shifted[0][:, :4] += 6  # IoU ~0.6-0.7: counted at 0.5, not at 0.75+
    result = coco_map(boxes, classes, shifted, [(128, 128)], 2)
    assert result["mAP50"] == pytest.approx(1.0) and 0.1 < result["mAP50-95"] < 0.6


@pytest.mark.slow
def test_detector_map_matches_ultralytics_val(smoke_variants: dict[str, Path], smoke_dataset: Path) -> None:
    folder = smoke_variants["yolov8n-pytorch-fp32"]
    manifest = load_manifest(folder)
    ours = detector_map(Detector(manifest, folder, threads=2), load_val_images(load_dataset(smoke_dataset)))
    configure_offline_environment()
    from ultralytics import YOLO

    theirs = YOLO(str(folder / manifest.artifact)).val(
        data=str(smoke_dataset), imgsz=manifest.imgsz, single_cls=True, conf=0.001, iou=0.7, device="cpu",
        workers=0, plots=False, verbose=False, batch=8)
    assert ours["mAP50"] > 0.3, "the smoke detector should have learned something"
    assert abs(ours["mAP50"] - theirs.box.map50) <= 0.02, (ours, theirs.box.map50)
    assert abs(ours["mAP50-95"] - theirs.box.map) <= 0.02, (ours, theirs.box.map)


@pytest.mark.slow
def test_classifier_top1_matches_a_plain_hugging_face_forward(smoke_variants: dict[str, Path],
                                                              smoke_dataset: Path) -> None:
    """The recorded top-1, recomputed without our Classifier: transformers + torch on the same val crops."""
    import torch
    from transformers import AutoModelForImageClassification

    folder = smoke_variants["resnet-tiny-pytorch-fp32"]
    manifest = load_manifest(folder)
    crops, labels = collect_crops(load_dataset(smoke_dataset), "val", size=manifest.imgsz, jitter=0.1, seed=1234)
    model = AutoModelForImageClassification.from_pretrained(str(folder / manifest.artifact)).eval()
    pixels = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5  # the training normalisation
    with torch.inference_mode():
        predicted = model(pixel_values=pixels).logits.argmax(dim=1).numpy()
    expected = float((predicted == labels).mean())
    assert manifest.accuracy["val_crops"] == len(labels)
    assert manifest.accuracy["top1"] == pytest.approx(expected, abs=1.5 / len(labels))  # at most one crop apart
    ours = classifier_top1(Classifier(manifest, folder, threads=2), load_dataset(smoke_dataset))
    assert ours["top1"] == pytest.approx(expected, abs=1.5 / len(labels))


@pytest.mark.slow
def test_fanout_counts_the_detections_the_classifier_receives(smoke_variants: dict[str, Path],
                                                              smoke_dataset: Path) -> None:
    folder = smoke_variants["yolov8n-onnx-fp32"]
    val = load_val_images(load_dataset(smoke_dataset))
    fanout = detection_fanout(Detector(load_manifest(folder), folder, threads=1), val)
    detector = Detector(load_manifest(folder), folder, threads=1)
    detector.conf_threshold = 0.001
    counts = np.array([(d[:, 4] >= SERVING_CONF_THRESHOLD).sum() for d in detect_all(detector, val.images)])
    # the same count from the low-threshold run, cut at the serving threshold ourselves (NMS may differ by a box)
    assert fanout["crops_per_image_mean"] == pytest.approx(counts.mean(), abs=0.15)
    assert fanout["crops_per_image_std"] == pytest.approx(counts.std(), abs=0.3)
    truth = np.mean([len(b) for b in val.boxes])
    assert fanout["objects_per_image_mean"] == pytest.approx(truth)
    assert 0.5 * truth < fanout["crops_per_image_mean"] < 1.5 * truth, "a trained detector finds about the true count"
