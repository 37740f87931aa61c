"""Calibration sweep of the synthetic dataset's difficulty and the training budgets (accuracy side only).

    python benchmarks/calibrate_dataset.py [--device 0] [--budget-s 200] [--out DIR]

Trains yolov8n / yolov8s with the build's settings on a few dataset specs and epoch counts and
evaluates each at input 96 / 128 / 160 (ultralytics val, single class); trains resnet tiny /
small on the crops in a second process. Prints one line per result and writes them as JSON
lines; stops starting new runs after --budget-s. Timings here say nothing about 2-core time:
use it for which knobs and epochs give the accuracy gaps (results in data/CALIBRATION.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

SPECS = {
    "default": {},
    "harder": {"distractors": 4, "min_size": 6, "max_objects": 10, "colour_jitter": 40},
    "default-300": {"train_images": 300},
    "cls27": {"details": ("plain", "dot", "hatched"), "colour_jitter": 40},
}
# (spec, size, epochs, train imgsz)
DETECTOR_RUNS = [("default", "n", 5, 160), ("default", "s", 8, 160), ("default-300", "n", 5, 160),
                 ("default-300", "s", 8, 160), ("default", "s", 8, 128), ("default", "n", 4, 128)]
# (spec, size, epochs, crop size, crop passes); "micro" is a ResNet smaller than tiny, tried here only
CLASSIFIER_RUNS = [("default", "micro", 4, 48, 1), ("default", "tiny", 4, 48, 1), ("default", "small", 4, 48, 1),
                   ("cls27", "micro", 4, 48, 1), ("cls27", "tiny", 4, 48, 1), ("cls27", "small", 4, 48, 1),
                   ("cls27", "tiny", 6, 48, 2), ("cls27", "small", 6, 48, 2)]
EXTRA_SIZES = {"micro": (16, [16, 32, 64], [1, 1, 1])}


def _emit(out: Path, row: dict) -> None:
    print(json.dumps(row), flush=True)
    with open(out / "calibration.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")


def _datasets(root: Path) -> dict[str, Path]:
    from milestone_lib.data.synthetic import SyntheticSpec, generate_synthetic_dataset

    return {key: generate_synthetic_dataset(root, SyntheticSpec(**knobs)) for key, knobs in SPECS.items()}


def _detectors(out: Path, device: str, deadline: float) -> None:
    from milestone_lib.settings import configure_offline_environment

    configure_offline_environment()
    from ultralytics import YOLO

    datasets = _datasets(out / "datasets")
    for spec, size, epochs, train_imgsz in DETECTOR_RUNS:
        if time.time() > deadline:
            _emit(out, {"skipped": [spec, size, epochs, train_imgsz]})
            continue
        started = time.time()
        model = YOLO(f"yolov8{size}.yaml")
        model.train(data=str(datasets[spec]), epochs=epochs, imgsz=train_imgsz, batch=16, optimizer="AdamW", lr0=0.002,
                    mosaic=0.0, warmup_epochs=1.0, nbs=16, single_cls=True, seed=0, deterministic=True,
                    device=device, workers=4, amp=False, val=False, plots=False, verbose=False,
                    project=str(out / "runs"), name=f"{spec}-{size}-{epochs}-{train_imgsz}", exist_ok=True)
        trained = time.time() - started
        weights = out / "runs" / f"{spec}-{size}-{epochs}-{train_imgsz}" / "weights" / "last.pt"
        for imgsz in (96, 128, 160):
            metrics = YOLO(str(weights)).val(data=str(datasets[spec]), imgsz=imgsz, single_cls=True, conf=0.001,
                                             iou=0.7, device=device, batch=32, plots=False, verbose=False, rect=False)
            _emit(out, {"step": "detect", "spec": spec, "size": size, "epochs": epochs, "train_imgsz": train_imgsz,
                        "imgsz": imgsz, "mAP50": round(float(metrics.box.map50), 4), "mAP50-95": round(float(metrics.box.map), 4),
                        "train_s": round(trained, 1)})


def _classifiers(out: Path, deadline: float) -> None:
    import numpy as np
    import torch

    from milestone_lib.data.crops import collect_crops
    from milestone_lib.data.yolo import load_dataset
    from milestone_lib.inference import preprocess_classifier
    from milestone_lib.variants.hf import (
        CLASSIFIER_SIZES,
        ClassifierTraining,
        train_classifier,
    )

    torch.set_num_threads(8)
    CLASSIFIER_SIZES.update(EXTRA_SIZES)
    datasets = {key: load_dataset(path) for key, path in _datasets(out / "datasets-c").items()}
    for spec, size, epochs, imgsz, passes in CLASSIFIER_RUNS:
        if time.time() > deadline:
            _emit(out, {"skipped": [spec, size, epochs, imgsz, passes]})
            continue
        dataset = datasets[spec]
        folder, stats = train_classifier(dataset, ClassifierTraining(size=size, epochs=epochs, imgsz=imgsz,
                                                                            crop_passes=passes),
                                         out / "cls" / f"{spec}-{size}-{epochs}-{imgsz}-{passes}")
        from transformers import AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
        crops, labels = collect_crops(dataset, "val", size=imgsz, jitter=0.1, seed=1234)
        with torch.inference_mode():
            logits = model(pixel_values=torch.from_numpy(preprocess_classifier(crops, imgsz))).logits
        top1 = float((logits.argmax(1).numpy() == labels).mean())
        _emit(out, {"step": "classify", "spec": spec, "size": size, "epochs": epochs, "imgsz": imgsz,
                    "passes": passes, "top1": round(top1, 4), "val_crops": len(labels), "train_s": round(stats["train_seconds"], 1),
                    "classes": len(dataset.class_names), "train_crops": int(stats["train_crops"]),
                    "mean_per_image": round(float(np.mean([len(dataset.labels(p)) for p in dataset.val_images])), 2)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="0")
    parser.add_argument("--budget-s", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "calibration")))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget_s
    worker = multiprocessing.get_context("spawn").Process(target=_classifiers, args=(args.out, deadline))
    worker.start()
    _detectors(args.out, args.device, deadline)
    worker.join()


if __name__ == "__main__":
    main()
