"""PyTorch eager: an ultralytics detector (`model.pt`) or a Hugging Face classifier folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import Step

__all__ = ["TorchRuntime", "load_torch_runtime"]


class TorchRuntime:
    """A module in eval mode; `hf` marks a Hugging Face model, whose output holds `.logits`."""

    def __init__(self, module: Any, *, threads: int, hf: bool) -> None:
        self.module = module
        self.threads = threads
        self.hf = hf

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        # Set on every call: the thread count is process-wide and another runtime may have changed it.
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch))
        if self.hf:
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().numpy()


def load_torch_runtime(artifact: Path, *, step: Step, threads: int = 1) -> TorchRuntime:
    """Load a detector's ultralytics weights or a classifier's Hugging Face folder."""
    import torch

    torch.set_num_threads(threads)
    if step == "detect":
        from ..settings import configure_offline_environment

        configure_offline_environment()
        from ultralytics import YOLO

        return TorchRuntime(YOLO(str(artifact)).model.float().eval(), threads=threads, hf=False)
    from transformers import AutoModelForImageClassification

    return TorchRuntime(AutoModelForImageClassification.from_pretrained(str(artifact)).eval(), threads=threads,
                        hf=True)
