"""Training is a function of its seed on one machine: the same settings train the same weights.

This is what lets the tests that read a trained model's accuracy (the smoke build's mAP and top-1,
the INT8 variants against fp32) hold a threshold without depending on a run's luck: on this
machine the smoke build reaches the same numbers every time, so a threshold that passes once
passes always. If a change makes training nondeterministic (a data loader worker, an unseeded
augmentation), this test fails first, naming the tensors that moved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from milestone_lib.data.yolo import load_dataset
from milestone_lib.variants.hf import ClassifierTraining, train_classifier
from milestone_lib.variants.yolo import DetectorTraining, train_detector

pytestmark = pytest.mark.slow


def _differing(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [name for name in a if not torch.equal(a[name], b[name])]


def _detector_state(weights: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
    return {k: v.float() for k, v in checkpoint["model"].state_dict().items()}


def test_the_same_seed_trains_the_same_detector_and_another_seed_does_not(smoke_dataset: Path,
                                                                          tmp_path: Path) -> None:
    dataset = load_dataset(smoke_dataset)
    states = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        training = DetectorTraining(size="n", epochs=1, imgsz=64, batch=8, seed=seed)
        states[run] = _detector_state(train_detector(dataset, training, tmp_path / run))
    assert _differing(states["a"], states["b"]) == []
    assert _differing(states["a"], states["c"]), "a different seed should train different weights"


def test_the_same_seed_trains_the_same_classifier_and_another_seed_does_not(smoke_dataset: Path,
                                                                            tmp_path: Path) -> None:
    from transformers import ResNetForImageClassification

    dataset = load_dataset(smoke_dataset)
    states = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        training = ClassifierTraining(size="tiny", epochs=1, imgsz=32, crop_passes=1, seed=seed)
        folder, _ = train_classifier(dataset, training, tmp_path / run)
        states[run] = ResNetForImageClassification.from_pretrained(folder).state_dict()
    assert _differing(states["a"], states["b"]) == []
    assert _differing(states["a"], states["c"]), "a different seed should train different weights"
