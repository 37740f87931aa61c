"""What the serving benchmarks share: random-weight variants of the project's models, server processes.

Throughput and transport cost depend on the architecture and input size, not on what the weights
learned, so a benchmark need not wait for training; a built variant folder is used instead when
given (`variant_folder`). Built folders are cached under `.cache/bench-models/`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from milestone_lib.contracts import TensorSpec, VariantManifest
from milestone_lib.net import parse_ready_line
from milestone_lib.settings import PROJECT_ROOT, ProjectSettings

__all__ = ["build_classifier", "build_detector", "serving_process", "stop_process", "variant_folder"]

CACHE = ProjectSettings().cache_dir / "bench-models"


def variant_folder(step: str, *, imgsz: int | None = None, prefer: Path | None = None) -> Path:
    """A detect or classify variant: the built one at `prefer` if it holds a manifest, else a random-weight one."""
    if prefer is not None and (prefer / "manifest.json").exists():
        return prefer
    if step == "detect":
        return build_detector(CACHE, imgsz=imgsz or 128)
    return build_classifier(CACHE, "resnet-tiny", imgsz=imgsz or 64)


def build_detector(root: Path, *, imgsz: int = 128, model: str = "yolov8n") -> Path:
    """YOLOv8 (the project's detector, one class) from its yaml, exported as ONNX with a dynamic batch."""
    folder = root / f"{model}-{imgsz}"
    if (folder / "manifest.json").exists():
        return folder
    import torch

    from milestone_lib.settings import configure_offline_environment

    configure_offline_environment()
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    network = DetectionModel(f"{model}.yaml", nc=1, verbose=False).eval()
    weights = folder / "random.pt"
    torch.save({"model": network, "train_args": {}}, weights)
    exported = YOLO(str(weights)).export(format="onnx", imgsz=imgsz, dynamic=True, simplify=True, opset=17,
                                         batch=1, device="cpu", verbose=False)
    Path(exported).replace(folder / "model.onnx")
    weights.unlink()
    _write_manifest(folder, name=f"{model}-onnx-fp32", step="detect", family=model[:-1], size=model[-1],
                    parameters=sum(p.numel() for p in network.parameters()), imgsz=imgsz, class_names=["object"],
                    inputs=[TensorSpec(name="images", shape=[-1, 3, imgsz, imgsz])],
                    outputs=[TensorSpec(name="output0", shape=[-1, 5, -1])])
    return folder


def build_classifier(root: Path, architecture: str = "resnet-tiny", *, imgsz: int = 224,
                     classes: int = 10, dynamic_hw: bool = False) -> Path:
    """The project's ResNet "tiny" (`variants.hf`) or torchvision's MobileNetV3-small, as an ONNX classify variant.

    `dynamic_hw` also makes height and width dynamic (a benchmark sending smaller tensors).
    """
    from milestone_lib.variants.hf import CLASSIFIER_SIZES

    # The folder names the architecture's settings, so a changed "tiny" is rebuilt rather than read stale.
    tag = hashlib.sha256(repr((CLASSIFIER_SIZES["tiny"], imgsz, classes, dynamic_hw)).encode()).hexdigest()[:8]
    folder = root / f"{architecture}-{tag}"
    if (folder / "manifest.json").exists():
        return folder
    import torch

    torch.manual_seed(0)
    if architecture == "resnet-tiny":
        from transformers import ResNetConfig, ResNetForImageClassification

        embedding, hidden, depths = CLASSIFIER_SIZES["tiny"]
        inner = ResNetForImageClassification(ResNetConfig(num_channels=3, embedding_size=embedding,
                                                          hidden_sizes=hidden, depths=depths, layer_type="basic",
                                                          num_labels=classes)).eval()

        class LogitsOnly(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                return self.inner(pixel_values=pixel_values).logits

        network: torch.nn.Module = LogitsOnly().eval()
        family, size = "resnet", "tiny"
    else:
        import torchvision

        network = torchvision.models.mobilenet_v3_small(weights=None, num_classes=classes).eval()
        family, size = "mobilenetv3", "small"
    folder.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    torch.onnx.export(network, (torch.zeros(1, 3, imgsz, imgsz),), str(folder / "model.onnx"),
                      input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    side = -1 if dynamic_hw else imgsz
    _write_manifest(folder, name=f"{family}{size}-onnx-fp32", step="classify", family=family, size=size,
                    parameters=sum(p.numel() for p in network.parameters()), imgsz=imgsz,
                    class_names=[str(i) for i in range(classes)],
                    inputs=[TensorSpec(name="pixel_values", shape=[-1, 3, side, side])],
                    outputs=[TensorSpec(name="logits", shape=[-1, classes])])
    return folder


def _write_manifest(folder: Path, *, name: str, step: str, family: str, size: str, parameters: int, imgsz: int,
                    class_names: list[str], inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    VariantManifest(
        name=name, step=step, family=family, size=size, format="onnx", precision="fp32",  # type: ignore[arg-type]
        parameters=parameters, artifact="model.onnx", files=VariantManifest.describe_files(folder, "model.onnx"),
        inputs=inputs, outputs=outputs, class_names=class_names, imgsz=imgsz,
    ).write(folder)


@contextmanager
def serving_process(cmd: list[str], *, cores: list[int] | None = None, timeout_s: float = 120) -> Iterator[str]:
    """Run a server command that prints a READY line (pinned to `cores` if given); yields its `host:port`."""
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            preexec_fn=pin)  # noqa: PLW1509 - pinning only, no locks taken
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline().decode()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout_s)
        ready = parse_ready_line(line[0]) if line else None
        if ready is None:
            raise RuntimeError(f"no READY line within {timeout_s} s from: {' '.join(map(str, cmd))}")
        yield f"{ready[0]}:{ready[1]}"
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
