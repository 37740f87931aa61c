from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from milestone_lib.accuracy import load_val_images
from milestone_lib.contracts import load_manifest
from milestone_lib.data.geometry import cut_crops
from milestone_lib.data.yolo import load_dataset
from milestone_lib.inference import Classifier, Detector, StageTimes

pytestmark = pytest.mark.slow
STAGES = {"preprocess_ms", "inference_ms", "postprocess_ms"}  # the names the step servers report


def test_stage_names_are_the_step_servers_parameters() -> None:
    assert {f.name for f in fields(StageTimes)} == STAGES == set(StageTimes(1.0, 2.0, 3.0).as_dict())


def test_timed_detection_returns_what_a_plain_call_returns_and_each_stage_time(
        smoke_variants: dict[str, Path], smoke_dataset: Path) -> None:
    folder = smoke_variants["yolov8n-onnx-fp32"]
    detector = Detector(load_manifest(folder), folder)
    images = load_val_images(load_dataset(smoke_dataset), limit=4).images
    detections, times = detector.timed(images)
    plain = detector(images)
    assert len(detections) == len(plain) == 4 and sum(len(d) for d in plain) > 0
    for timed_one, plain_one in zip(detections, plain):
        np.testing.assert_array_equal(timed_one, plain_one)
    assert times.inference_ms > 0 and times.preprocess_ms > 0 and times.postprocess_ms > 0
    assert detector.timed([]) == ([], StageTimes(0.0, 0.0, 0.0))


def test_timed_classification_returns_probabilities_and_each_stage_time(
        smoke_variants: dict[str, Path], smoke_dataset: Path) -> None:
    folder = smoke_variants["resnet-tiny-onnx-fp32"]
    classifier = Classifier(load_manifest(folder), folder)
    val = load_val_images(load_dataset(smoke_dataset), limit=2)
    crops = np.concatenate([cut_crops(i, b, classifier.manifest.imgsz) for i, b in zip(val.images, val.boxes)])
    probabilities, times = classifier.timed(crops)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(crops), 6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities, classifier(crops))
    assert times.inference_ms > 0 and times.preprocess_ms > 0 and times.postprocess_ms > 0
    empty, no_time = classifier.timed(np.zeros((0, 64, 64, 3), dtype=np.uint8))
    assert empty.shape == (0, 6) and no_time == StageTimes(0.0, 0.0, 0.0)
