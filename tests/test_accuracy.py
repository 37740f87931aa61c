from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from milestone_lib.accuracy import (
    EVAL_CONF_THRESHOLD,
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


def _ultralytics_map(gt_boxes, gt_classes, detections) -> dict[str, float]:
    """mAP of the same detections by ultralytics' own metric code (its validator's matching and AP)."""
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class, box_iou

    iouv = torch.linspace(0.5, 0.95, 10)
    correct, conf, pred_cls, target_cls = [], [], [], []
    for boxes, classes, dets in zip(gt_boxes, gt_classes, detections):
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        target_cls.append(classes)
        conf.append(dets[:, 4])
        pred_cls.append(dets[:, 5])
        if len(dets) and len(boxes):
            iou = box_iou(torch.from_numpy(boxes).float(), torch.from_numpy(dets[:, :4]).float())
            correct.append(DetectionValidator.match_predictions(
                SimpleNamespace(iouv=iouv), torch.from_numpy(dets[:, 5]), torch.from_numpy(classes), iou).numpy())
        else:
            correct.append(np.zeros((len(dets), len(iouv)), dtype=bool))
    ap = ap_per_class(np.concatenate(correct), np.concatenate(conf), np.concatenate(pred_cls),
                      np.concatenate(target_cls))[5]  # (classes, 10 IoU thresholds)
    return {"mAP50": float(ap[:, 0].mean()), "mAP50-95": float(ap.mean())}


def _interpolation_bound(gt_classes) -> float:
    """How far COCO's and ultralytics' AP of the same matched detections can lie apart.

    Both take the same precision envelope E(r) (the best precision at recall >= r) of the same
    ranked matches. COCO averages E at 101 recall points, stepping to the next point of the curve;
    ultralytics integrates (trapezoid, 101 points) the straight line between neighbouring points,
    starting from precision 1 at recall 0. Between two neighbouring recalls (1/n apart for a class of
    n objects) the two differ by at most the envelope's drop there; a span of 1/n holds at most
    100/n + 2 grid points, and the drops add up to at most 1. The two averaging rules (mean of 101 vs
    trapezoid) add at most 0.015. Per class: 0.015 + (100/n + 2) / 100; the mean over classes bounds mAP.
    """
    counts = np.bincount(np.concatenate(gt_classes).astype(int))
    counts = counts[counts > 0]
    return float(np.mean(0.015 + (100.0 / counts + 2) / 100.0))


def _noisy_detections(boxes, classes, num_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A detector's output, drawn: most objects found with jittered boxes, some twice, some missed, false alarms."""
    out = []
    for b, c in zip(boxes, classes):
        rows = []
        for box, cls in zip(b, c):
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                jitter = rng.normal(0, 0.08 * (box[2] - box[0]), 4)
                label = cls if rng.random() < 0.85 else rng.integers(num_classes)
                rows.append([*(box + jitter), rng.random(), label])
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 100, 2)
            rows.append([x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30), rng.random() * 0.5,
                         rng.integers(num_classes)])
        out.append(np.array(rows, dtype=np.float32).reshape(-1, 6))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_coco_map_agrees_with_ultralytics_metrics_on_the_same_detections(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, classes = [], []
    for _ in range(40):
        n = rng.integers(0, 6)
        xy = rng.uniform(0, 90, (n, 2))
        boxes.append(np.hstack([xy, xy + rng.uniform(8, 40, (n, 2))]).astype(np.float32))
        classes.append(rng.integers(0, 3, n))
    detections = _noisy_detections(boxes, classes, 3, rng)
    ours = coco_map(boxes, classes, detections, [(128, 128)] * len(boxes), 3)
    theirs = _ultralytics_map(boxes, classes, detections)
    bound = _interpolation_bound(classes)
    assert 0.2 < ours["mAP50"] < 0.95  # a curve with misses and false alarms, not a trivial one
    for metric in ("mAP50", "mAP50-95"):
        assert abs(ours[metric] - theirs[metric]) <= bound, (metric, ours, theirs, bound)
    shuffled = [c[rng.permutation(len(c))] for c in classes]  # a class mix-up moves ours far beyond the bound
    assert abs(coco_map(boxes, shuffled, detections, [(128, 128)] * len(boxes), 3)["mAP50"] - ours["mAP50"]) > bound


@pytest.mark.slow
def test_detector_map_matches_ultralytics_metrics_and_predictions(smoke_variants: dict[str, Path],
                                                                  smoke_dataset: Path) -> None:
    """Our detector mAP, checked on the same inputs: our detections scored by pycocotools and by
    ultralytics' metric code (within the bound their interpolation rules allow), and our inference path
    against ultralytics' own `predict` of the same weights on the same images."""
    folder = smoke_variants["yolov8n-pytorch-fp32"]
    manifest = load_manifest(folder)
    val = load_val_images(load_dataset(smoke_dataset))
    detector = Detector(manifest, folder, threads=2)
    detector.conf_threshold = EVAL_CONF_THRESHOLD
    detections = [d[np.argsort(-d[:, 4], kind="stable")][:100] for d in detect_all(detector, val.images)]
    for det in detections:
        det[:, 5] = 0  # one generic class, as detector_map scores it
    agnostic = [np.zeros_like(c) for c in val.classes]
    ours = detector_map(Detector(manifest, folder, threads=2), val)
    assert ours == coco_map(val.boxes, agnostic, detections, [i.shape[:2] for i in val.images], 1)
    theirs = _ultralytics_map(val.boxes, agnostic, detections)
    bound = _interpolation_bound(agnostic)
    for metric in ("mAP50", "mAP50-95"):
        assert abs(ours[metric] - theirs[metric]) <= bound, (metric, ours, theirs, bound)

    configure_offline_environment()
    from ultralytics import YOLO

    model = YOLO(str(folder / manifest.artifact))
    detector.conf_threshold = SERVING_CONF_THRESHOLD
    confident = 0
    for image, mine in zip(val.images, detect_all(detector, val.images)):
        # ultralytics takes BGR like OpenCV; our images are RGB
        result = model.predict(image[..., ::-1], imgsz=manifest.imgsz, conf=0.5, iou=0.7, device="cpu",
                               verbose=False)[0]
        for box in result.boxes.xyxy.numpy():  # every confident box of theirs is one of ours
            confident += 1
            assert len(mine) and _iou(box, mine[:, :4]).max() >= 0.9, (box, mine)
    assert confident > 0


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area(box) + area(others) - inter)


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
