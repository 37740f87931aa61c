"""Building TensorRT FP16/INT8 engines, where `tensorrt` and a CUDA GPU are importable.

Elsewhere `runtimes.tensorrt.tensorrt_unavailable_reason()` says plainly why, and the variant
table shows it. Running an engine is `runtimes.tensorrt.EngineRuntime`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UnsupportedFormatError
from ..runtimes.tensorrt import tensorrt_unavailable_reason

__all__ = ["build_tensorrt_engine"]


def build_tensorrt_engine(onnx_path: Path, target: Path, *, precision: str, imgsz: int,
                          max_batch: int = 16, calibration: list[np.ndarray] | None = None) -> Path:
    """Build a serialized engine from ONNX with a dynamic batch profile 1..max_batch."""
    reason = tensorrt_unavailable_reason()
    if reason:
        raise UnsupportedFormatError(f"tensorrt-{precision}", reason)
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UnsupportedFormatError(f"tensorrt-{precision}", f"the ONNX parser refused the model: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    profile.set_shape(name, (1, 3, imgsz, imgsz), (max_batch // 2 or 1, 3, imgsz, imgsz), (max_batch, 3, imgsz, imgsz))
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        if not calibration:
            raise UnsupportedFormatError("tensorrt-int8", "INT8 needs calibration batches")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        config.int8_calibrator = _entropy_calibrator(trt, calibration, Path(target).with_suffix(".cache"))
        config.set_calibration_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise UnsupportedFormatError(f"tensorrt-{precision}", "the builder returned no engine (see its log)")
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(bytes(engine))
    return Path(target)


def _entropy_calibrator(trt, batches: list[np.ndarray], cache: Path):  # pragma: no cover - needs a GPU
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches)
            self._device = None

        def get_batch_size(self) -> int:
            return int(batches[0].shape[0])

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._device = torch.from_numpy(batch).cuda()
            return [int(self._device.data_ptr())]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()
