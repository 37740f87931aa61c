from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from milestone_lib.contracts import TensorSpec, VariantManifest, load_manifest
from milestone_lib.errors import UnsupportedFormatError
from milestone_lib.runtimes import load_runtime
from milestone_lib.runtimes.onnx import OnnxRuntime
from milestone_lib.runtimes.tensorrt import tensorrt_unavailable_reason


def _channel_sum_model(path: Path) -> Path:
    """y[n, 0, h, w] = 2 * sum over channels of x[n, :, h, w]: a model whose output we can compute by hand."""
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1), helper.make_node("Mul", ["s", "two"], ["y"])],
        "channel_sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _manifest(fmt: str, artifact: str) -> VariantManifest:
    return VariantManifest(
        name=f"toy-{fmt}", step="detect", family="toy", size="n", format=fmt, precision="fp32", parameters=2,
        artifact=artifact, files=[], inputs=[TensorSpec(name="x", shape=[-1, 3, -1, -1])],
        outputs=[TensorSpec(name="y", shape=[-1, 1, -1, -1])], class_names=["object"], imgsz=8,
    )


def test_onnx_runtime_computes_the_model_on_the_threads_asked_for(tmp_path: Path) -> None:
    _channel_sum_model(tmp_path / "model.onnx")
    runtime = load_runtime(_manifest("onnx", "model.onnx"), tmp_path, threads=2)
    assert isinstance(runtime, OnnxRuntime)
    assert runtime.session.get_session_options().intra_op_num_threads == 2
    batch = np.random.default_rng(0).random((4, 3, 5, 7), dtype=np.float32)
    np.testing.assert_allclose(runtime.run(batch), 2 * batch.sum(axis=1, keepdims=True), rtol=1e-6)


def test_tensorrt_runtime_where_tensorrt_is_missing_says_why(tmp_path: Path) -> None:
    reason = tensorrt_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT is available on this machine")
    with pytest.raises(UnsupportedFormatError, match=r"format 'tensorrt' cannot be built on this machine"):
        load_runtime(_manifest("tensorrt", "model.engine"), tmp_path)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    manifest = _manifest("onnx", "model.onnx").model_copy(update={"format": "openvino"})
    with pytest.raises(UnsupportedFormatError, match=r"'openvino'.*no runtime is known for it"):
        load_runtime(manifest, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["yolov8n", "resnet-tiny"])
def test_onnx_export_computes_what_pytorch_computes(smoke_variants: dict[str, Path], model: str) -> None:
    rng = np.random.default_rng(0)
    torch_folder, onnx_folder = smoke_variants[f"{model}-pytorch-fp32"], smoke_variants[f"{model}-onnx-fp32"]
    manifest = load_manifest(onnx_folder)
    batch = rng.random((2, 3, manifest.imgsz, manifest.imgsz), dtype=np.float32)
    ours = load_runtime(manifest, onnx_folder).run(batch)
    reference = load_runtime(load_manifest(torch_folder), torch_folder).run(batch)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=2e-3)
