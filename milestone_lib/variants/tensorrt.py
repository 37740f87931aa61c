"""TensorRT FP16/INT8 engines, built where `tensorrt` and a CUDA GPU are importable.

Elsewhere `tensorrt_unavailable_reason()` says plainly why, and the variant table shows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UnsupportedFormatError

__all__ = ["build_tensorrt_engine", "load_engine_runtime", "tensorrt_unavailable_reason"]


def tensorrt_unavailable_reason() -> str | None:
    """None when engines can be built here, else the reason they cannot."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` Python package is not installed (it needs NVIDIA's index and a CUDA GPU)"
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch"
    except ImportError:
        return "PyTorch is not installed, so no CUDA context can be made"
    return None


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


def load_engine_runtime(engine_path: Path):  # pragma: no cover - needs a GPU
    """A ModelRuntime over a serialized engine (torch tensors as CUDA buffers)."""
    reason = tensorrt_unavailable_reason()
    if reason:
        raise UnsupportedFormatError("tensorrt", reason)
    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    context = engine.create_execution_context()
    input_name, output_name = engine.get_tensor_name(0), engine.get_tensor_name(1)

    class _EngineRuntime:
        def run(self, batch: np.ndarray) -> np.ndarray:
            source = torch.from_numpy(batch).cuda()
            context.set_input_shape(input_name, tuple(source.shape))
            out = torch.empty(tuple(context.get_tensor_shape(output_name)), device="cuda")
            context.set_tensor_address(input_name, source.data_ptr())
            context.set_tensor_address(output_name, out.data_ptr())
            context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
            torch.cuda.current_stream().synchronize()
            return out.cpu().numpy()

    return _EngineRuntime()
