"""Tiny ONNX variants that the serving tests build in seconds (YOLOv8-shaped head, small CNN classifier).

The lead's `smoke_variants` fixture gives trained variants; these stand in where a test needs
a model of a known speed or shape, and keep the serving tests independent of training.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from milestone_lib.contracts import TensorSpec, VariantManifest


class TinyYolo(nn.Module):
    """Output (B, 4 + classes, anchors) like YOLOv8: xywh in input pixels, class scores in [0, 1]."""

    def __init__(self, imgsz: int, classes: int = 1, width: int = 8) -> None:
        super().__init__()
        self.imgsz = imgsz
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, 4 + classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)  # (B, 4 + C, S/8, S/8)
        b, c, h, w = out.shape
        stride = self.imgsz / h
        ys = torch.arange(h, dtype=x.dtype).view(1, h, 1).expand(1, h, w)
        xs = torch.arange(w, dtype=x.dtype).view(1, 1, w).expand(1, h, w)
        cx = (xs + torch.sigmoid(out[:, 0])) * stride
        cy = (ys + torch.sigmoid(out[:, 1])) * stride
        bw = torch.sigmoid(out[:, 2]) * self.imgsz / 2
        bh = torch.sigmoid(out[:, 3]) * self.imgsz / 2
        # Scores scale with the image's brightness: a black image has no detections.
        brightness = torch.clamp(x.mean(dim=(1, 2, 3)) * 4, max=1.0).view(b, 1, 1, 1)
        logits = out[:, 4:] - out[:, 4:].mean(dim=(2, 3), keepdim=True)
        scores = torch.sigmoid(logits * 20 - 1) * brightness
        return torch.cat([cx[:, None], cy[:, None], bw[:, None], bh[:, None], scores], 1).reshape(b, c, h * w)


class TinyClassifier(nn.Module):
    def __init__(self, classes: int, width: int = 8, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 2, 1), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, 1, 1), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _export(module: nn.Module, folder: Path, imgsz: int, *, dynamic_hw: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    torch.onnx.export(module.eval(), torch.zeros(1, 3, imgsz, imgsz), str(folder / "model.onnx"),
                      input_names=["images"], output_names=["output0"],
                      dynamic_axes={"images": axes, "output0": {0: "batch"}}, dynamo=False)


def build_tiny_variant(step: str, folder: Path, *, imgsz: int, classes: int = 3, seed: int = 0,
                       width: int = 8, depth: int = 2, dynamic_hw: bool = False, name: str | None = None) -> Path:
    """Write a random-weight ONNX variant (model.onnx + manifest.json) into `folder`; returns it."""
    folder = Path(folder)
    if (folder / "manifest.json").exists():
        return folder
    torch.manual_seed(seed)
    if step == "detect":
        module: nn.Module = TinyYolo(imgsz)
        class_names = ["object"]
        inputs = [TensorSpec(name="images", shape=[-1, 3, imgsz, imgsz])]
        outputs = [TensorSpec(name="output0", shape=[-1, 5, -1])]
    else:
        module = TinyClassifier(classes, width=width, depth=depth)
        class_names = [f"class{i}" for i in range(classes)]
        inputs = [TensorSpec(name="images", shape=[-1, 3, imgsz, imgsz])]
        outputs = [TensorSpec(name="output0", shape=[-1, classes])]
    _export(module, folder, imgsz, dynamic_hw=dynamic_hw)
    manifest = VariantManifest(
        name=name or f"tiny-{step}-onnx-fp32", step=step, family="tiny", size="t", format="onnx",  # type: ignore[arg-type]
        precision="fp32", parameters=sum(p.numel() for p in module.parameters()), artifact="model.onnx",
        files=VariantManifest.describe_files(folder, "model.onnx"), inputs=inputs, outputs=outputs,
        class_names=class_names, imgsz=imgsz,
    )
    manifest.write(folder)
    return folder
