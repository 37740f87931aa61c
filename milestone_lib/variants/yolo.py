"""Detector variants: train YOLO (from its model yaml, or from pretrained weights) and export ONNX.

The detector finds one generic "object" class (single_cls); the classifier step names the
objects. Training from scratch is the offline default; `weights` (a file or an ultralytics name
such as 'yolov8n.pt', downloaded by ultralytics on a machine with internet) fine-tunes instead.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data.yolo import YoloDataset, write_resolved_yaml
from ..errors import VariantError
from ..settings import configure_offline_environment

__all__ = ["DETECTOR_SIZES", "DetectorTraining", "count_parameters", "export_detector_onnx", "train_detector"]

DETECTOR_SIZES = ("n", "s", "m", "l", "x")
DETECTOR_CLASS_NAMES = ["object"]


@dataclass(frozen=True)
class DetectorTraining:
    """Training settings, recorded in the manifest."""

    family: str = "yolov8"
    size: str = "n"
    epochs: int = 5
    imgsz: int = 128
    batch: int = 16
    warmup_epochs: float = 1.0
    optimizer: str = "AdamW"
    lr0: float = 0.002
    mosaic: float = 0.0
    seed: int = 0
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.size not in DETECTOR_SIZES:
            raise VariantError("detector size", self.size, choices=list(DETECTOR_SIZES))
        if self.family not in ("yolov8", "yolo11", "yolov5"):
            raise VariantError("detector family", self.family, choices=["yolov8", "yolo11", "yolov5"])
        if self.epochs < 1:
            raise VariantError("epoch count", self.epochs, hint="train for at least 1 epoch")

    @property
    def model_name(self) -> str:
        suffix = "u" if self.family == "yolov5" else ""
        return f"{self.family}{self.size}{suffix}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _load_model(training: DetectorTraining):  # -> ultralytics.YOLO
    configure_offline_environment()
    from ultralytics import YOLO

    if training.weights is None:
        return YOLO(f"{training.model_name}.yaml")
    weights = Path(training.weights)
    if weights.exists() or "/" not in training.weights:
        # A local file, or a released name that ultralytics downloads when online.
        try:
            return YOLO(str(training.weights))
        except Exception as exc:  # ultralytics raises bare errors when it cannot download
            raise VariantError(
                "detector weights", training.weights,
                hint=f"the weights could not be loaded ({exc}); give a local .pt file, or run online "
                "to let ultralytics download a released name",
            ) from exc
    raise VariantError("detector weights", training.weights, hint="the file does not exist")


def train_detector(dataset: YoloDataset, training: DetectorTraining, out_dir: Path) -> Path:
    """Train the detector and return the path of its PyTorch weights (`out_dir/model.pt`)."""
    configure_offline_environment()
    out_dir = Path(out_dir)
    run_dir = out_dir.parent / f".{out_dir.name}.train"
    shutil.rmtree(run_dir, ignore_errors=True)
    model = _load_model(training)
    data_yaml = write_resolved_yaml(dataset, out_dir.parent / f".{out_dir.name}.data.yaml")
    model.train(
        data=str(data_yaml),
        epochs=training.epochs,
        imgsz=training.imgsz,
        batch=training.batch,
        optimizer=training.optimizer,
        lr0=training.lr0,
        mosaic=training.mosaic,
        warmup_epochs=training.warmup_epochs,
        nbs=training.batch,  # step the optimizer every batch: short runs need the updates
        cache="ram",
        single_cls=True,
        seed=training.seed,
        deterministic=True,
        device="cpu",
        workers=0,
        amp=False,
        val=False,
        plots=False,
        verbose=False,
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
    )
    best = run_dir / "weights" / "last.pt"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.pt"
    shutil.copy2(best, target)
    shutil.rmtree(run_dir, ignore_errors=True)
    data_yaml.unlink(missing_ok=True)
    return target


def export_detector_onnx(weights: Path, out_dir: Path, *, imgsz: int) -> Path:
    """Export fp32 ONNX with a dynamic batch dimension; returns `out_dir/model.onnx`."""
    configure_offline_environment()
    from ultralytics import YOLO

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "export.pt"
    shutil.copy2(weights, work)
    exported = YOLO(str(work)).export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17,
                                      batch=1, device="cpu", verbose=False)
    target = out_dir / "model.onnx"
    Path(exported).replace(target)
    work.unlink()
    return target


def count_parameters(weights: Path) -> int:
    configure_offline_environment()
    from ultralytics import YOLO

    return sum(p.numel() for p in YOLO(str(weights)).model.parameters())
