"""Classifier variants: Hugging Face `transformers` image classifiers trained on detection crops.

Offline (the default), a model is built from a `transformers` config of the chosen size and
trained from scratch on crops of the dataset. Online, `checkpoint` names a hub checkpoint
(e.g. 'microsoft/resnet-18') that is fine-tuned instead; its head is resized to the classes.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.crops import collect_crops
from ..data.yolo import YoloDataset
from ..errors import VariantError
from ..inference import preprocess_classifier
from ..settings import configure_offline_environment

__all__ = ["CLASSIFIER_SIZES", "ClassifierTraining", "export_classifier_onnx", "train_classifier"]

# ResNet configs by size: (embedding size, hidden sizes, depths). Small enough to train on a CPU.
CLASSIFIER_SIZES: dict[str, tuple[int, list[int], list[int]]] = {
    # Three stages of at least 32 channels: with 16-channel stages INT8 lost to fp32 on AVX2 CPUs
    # (0.87x at batch 1, 64x64); this one gains about 1.25x and has 0.61 M parameters.
    "tiny": (32, [32, 64, 128], [1, 1, 2]),
    "small": (32, [32, 64, 128, 256], [1, 1, 2, 1]),
    "base": (64, [64, 128, 256, 512], [2, 2, 2, 2]),  # the ResNet-18 layout
}


@dataclass(frozen=True)
class ClassifierTraining:
    """Training settings, recorded in the manifest."""

    family: str = "resnet"
    size: str = "tiny"
    epochs: int = 6
    imgsz: int = 64
    batch: int = 64
    lr: float = 3e-3
    jitter: float = 0.1
    crop_passes: int = 2
    seed: int = 0
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.family != "resnet" and self.checkpoint is None:
            raise VariantError("classifier family", self.family, choices=["resnet"],
                               hint="or give a Hugging Face `checkpoint` id")
        if self.size not in CLASSIFIER_SIZES and self.checkpoint is None:
            raise VariantError("classifier size", self.size, choices=list(CLASSIFIER_SIZES))
        if self.epochs < 1:
            raise VariantError("epoch count", self.epochs, hint="train for at least 1 epoch")

    def as_dict(self) -> dict[str, object]:
        architecture = None if self.checkpoint else dict(zip(("embedding_size", "hidden_sizes", "depths"),
                                                              CLASSIFIER_SIZES[self.size]))
        return {**asdict(self), "architecture": architecture}


def _build_model(training: ClassifierTraining, class_names: list[str]):  # -> PreTrainedModel
    configure_offline_environment()
    from transformers import (
        AutoModelForImageClassification,
        ResNetConfig,
        ResNetForImageClassification,
    )

    labels = {"id2label": dict(enumerate(class_names)), "label2id": {n: i for i, n in enumerate(class_names)}}
    if training.checkpoint:
        try:
            return AutoModelForImageClassification.from_pretrained(
                training.checkpoint, num_labels=len(class_names), ignore_mismatched_sizes=True, **labels
            )
        except OSError as exc:
            raise VariantError(
                "classifier checkpoint", training.checkpoint,
                hint=f"it could not be loaded ({exc}); give a local folder, or run online to download it",
            ) from exc
    embedding, hidden, depths = CLASSIFIER_SIZES[training.size]
    config = ResNetConfig(num_channels=3, embedding_size=embedding, hidden_sizes=hidden, depths=depths,
                          layer_type="basic", num_labels=len(class_names), **labels)
    return ResNetForImageClassification(config)


def train_classifier(dataset: YoloDataset, training: ClassifierTraining, out_dir: Path) -> tuple[Path, dict[str, float]]:
    """Train on jittered crops; save a Hugging Face folder `out_dir/hf`; return it and training stats."""
    import torch

    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    crops, labels = [], []
    for index in range(training.crop_passes):
        x, y = collect_crops(dataset, "train", size=training.imgsz, jitter=training.jitter,
                             seed=training.seed + index)
        crops.append(x)
        labels.append(y)
    x_train = torch.from_numpy(preprocess_classifier(np.concatenate(crops), training.imgsz))
    y_train = torch.from_numpy(np.concatenate(labels))
    model = _build_model(training, dataset.class_names)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=1e-4)
    steps = training.epochs * ((len(x_train) + training.batch - 1) // training.batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training.lr, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    started = time.perf_counter()
    model.train()
    for _ in range(training.epochs):
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for start in range(0, len(order), training.batch):
            index = order[start : start + training.batch]
            batch = x_train[index]
            flip = torch.rand(len(batch)) < 0.5
            batch[flip] = batch[flip].flip(-1)  # shapes and colours are mirror-invariant
            loss = loss_fn(model(pixel_values=batch).logits, y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    target = Path(out_dir) / "hf"
    model.save_pretrained(target)
    return target, {"train_crops": float(len(x_train)), "train_seconds": time.perf_counter() - started,
                    "final_loss": float(loss.detach())}


class _LogitsOnly:
    """Wraps a transformers model so ONNX export sees one tensor out."""

    def __new__(cls, model):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values):
                return self.inner(pixel_values=pixel_values).logits

        return Wrapper(model)


def export_classifier_onnx(hf_dir: Path, out_dir: Path, *, imgsz: int) -> Path:
    """Export fp32 ONNX (input `pixel_values` NCHW, output `logits`) with a dynamic batch."""
    import torch
    from transformers import AutoModelForImageClassification

    configure_offline_environment()
    model = AutoModelForImageClassification.from_pretrained(str(hf_dir)).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.onnx"
    torch.onnx.export(
        _LogitsOnly(model), (torch.zeros(1, 3, imgsz, imgsz),), str(target),
        input_names=["pixel_values"], output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    return target
