from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from milestone_lib.contracts import VariantManifest, load_manifest, sha256_file
from milestone_lib.errors import UnsupportedFormatError, VariantError
from milestone_lib.runtimes import load_runtime
from milestone_lib.runtimes.tensorrt import tensorrt_unavailable_reason
from milestone_lib.variants.build import BuildConfig, BuildResult, build_variants
from milestone_lib.variants.quantize import static_quantized_ops
from milestone_lib.variants.table import pipeline_accuracy_table, variant_table

pytestmark = pytest.mark.slow
FORMATS = ["pytorch-fp32", "onnx-fp32", "onnx-int8-static", "onnx-int8-dynamic"]


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("model", ["yolov8n", "resnet-tiny"])
def test_every_format_is_built_with_a_verifiable_manifest(smoke_variants: dict[str, Path], model: str) -> None:
    for fmt in FORMATS:
        folder = smoke_variants[f"{model}-{fmt}"]
        manifest = load_manifest(folder)
        assert manifest.name == f"{model}-{fmt}"
        assert manifest.step == ("detect" if model.startswith("yolo") else "classify")
        assert manifest.files and manifest.parameters > 10_000
        for entry in manifest.files:
            assert sha256_file(folder / entry.path) == entry.sha256
            assert (folder / entry.path).stat().st_size == entry.size_bytes
        assert set(manifest.latency_ms) == {"b1_t1", "b4_t1"} and all(v > 0 for v in manifest.latency_ms.values())
        metric = "mAP50" if manifest.step == "detect" else "top1"
        assert 0.0 <= manifest.accuracy[metric] <= 1.0
        assert manifest.inputs[0].shape[1:] in ([3, manifest.imgsz, manifest.imgsz], [3, -1, -1])
        assert manifest.dataset["classes"] == 6 and manifest.training["fingerprint"]


def test_manifest_round_trips(smoke_variants: dict[str, Path], tmp_path: Path) -> None:
    manifest = load_manifest(smoke_variants["yolov8n-onnx-fp32"])
    manifest.write(tmp_path)
    assert load_manifest(tmp_path) == manifest
    assert VariantManifest.model_validate_json((tmp_path / "manifest.json").read_text()).sha256 == manifest.sha256


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


@pytest.mark.parametrize("model", ["yolov8n", "resnet-tiny"])
def test_int8_variants_are_quantized_and_keep_accuracy(smoke_variants: dict[str, Path], model: str) -> None:
    fp32 = load_manifest(smoke_variants[f"{model}-onnx-fp32"])
    static = load_manifest(smoke_variants[f"{model}-onnx-int8-static"])
    dynamic = load_manifest(smoke_variants[f"{model}-onnx-int8-dynamic"])
    assert "QuantizeLinear" in _ops(smoke_variants[static.name] / static.artifact)
    assert _ops(smoke_variants[dynamic.name] / dynamic.artifact) & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
    for quantized in (static, dynamic):
        assert quantized.size_bytes < fp32.size_bytes / 2.5
        for metric, value in fp32.accuracy.items():
            if metric in ("mAP50", "top1"):
                # the smoke val split is tiny (a crop is 1.5 points); the full build is held to 0.02
                assert quantized.accuracy[metric] >= value - 0.05, (quantized.name, metric)


def test_static_int8_keeps_resnet_residuals_in_int8(smoke_variants: dict[str, Path]) -> None:
    resnet = load_manifest(smoke_variants["resnet-tiny-onnx-int8-static"])
    graph = onnx.load(str(smoke_variants[resnet.name] / resnet.artifact)).graph
    producer = {output: node.op_type for node in graph.node for output in node.output}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    adds = [node for node in graph.node if node.op_type == "Add"]
    assert adds, "a ResNet has residual Adds"
    for node in adds:  # int8 in, int8 out: the QDQ form of an integer Add
        assert {producer.get(name) for name in node.input} == {"DequantizeLinear"}, node.name
        assert consumers.get(node.output[0]) == {"QuantizeLinear"}, node.name
    assert "Add" in static_quantized_ops("classify", "resnet")


def test_static_int8_keeps_yolo_box_decoding_in_fp32(smoke_variants: dict[str, Path]) -> None:
    yolo = load_manifest(smoke_variants["yolov8n-onnx-int8-static"])
    graph = onnx.load(str(smoke_variants[yolo.name] / yolo.artifact)).graph
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    ops = {node.op_type for node in graph.node}
    decode = [node for node in graph.node if node.name.startswith("/model.22/") and node.op_type != "Conv"
              and "/cv2." not in node.name and "/cv3." not in node.name and node.op_type not in ("QuantizeLinear",
                                                                                               "DequantizeLinear")]
    assert decode and "Softmax" in {node.op_type for node in decode}
    for node in decode:  # nothing of the box arithmetic hands its result to a quantizer
        assert "QuantizeLinear" not in consumers.get(node.output[0], set()), node.name
    silu = [node for node in graph.node if node.op_type == "Sigmoid" and "/model.22/" not in node.name]
    assert silu and "QuantizeLinear" in ops
    assert all("DequantizeLinear" in {p.op_type for p in graph.node if set(p.output) & set(node.input)} for node in silu), \
        "the backbone's SiLU runs in int8 (its input comes from a DequantizeLinear)"


def test_variant_table_and_pipeline_accuracy(smoke_build: BuildResult) -> None:
    table = variant_table(smoke_build)
    built = table[table["Status"] == "built"]
    assert len(built) == 8
    assert {"Variant", "Format", "Precision", "Size MB", "Params M", "Accuracy", "Latency ms"} <= set(table.columns)
    fp32 = built[(built["Format"] == "onnx") & (built["Precision"] == "fp32")]
    assert (fp32["Speedup vs fp32"] == 1.0).all() and (fp32["ΔAccuracy vs fp32"] == 0.0).all()
    pipeline = pipeline_accuracy_table(smoke_build)
    assert len(pipeline) == 16  # 4 detector variants x 4 classifier variants
    assert pipeline["mAP50"].is_monotonic_decreasing or pipeline["mAP50-95"].is_monotonic_decreasing
    assert pipeline["mAP50"].max() > 0.2


def test_tensorrt_is_reported_not_skipped(smoke_build: BuildResult) -> None:
    reason = tensorrt_unavailable_reason()
    if reason is None:
        assert any("tensorrt" in name for name in smoke_build.variants)
    else:
        rows = [u for u in smoke_build.unavailable if u["format"].startswith("tensorrt")]
        assert len(rows) == 4 and all(r["reason"] == reason for r in rows)
        table = variant_table(smoke_build)
        assert table["Status"].str.startswith("unavailable: ").sum() == 4


def test_asking_for_tensorrt_where_it_cannot_be_built_is_an_error(tmp_path: Path) -> None:
    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT is available on this machine")
    with pytest.raises(UnsupportedFormatError, match=r"format 'tensorrt-fp16' cannot be built on this machine"):
        build_variants(BuildConfig.smoke(formats=["onnx-fp32", "tensorrt-fp16"]))


def test_unknown_size_and_format_are_clear_errors() -> None:
    with pytest.raises(VariantError, match=r"unknown detector size 'q'; choose one of n, s, m, l, x"):
        BuildConfig(detector_sizes=["q"])
    with pytest.raises(VariantError, match=r"unknown format 'onnx-int4'; choose one of"):
        BuildConfig(formats=["onnx-int4"])
    with pytest.raises(VariantError, match=r"unknown classifier size 'huge'"):
        BuildConfig.smoke(classifier_sizes=["huge"])


def test_side_by_side_latency_times_every_variant_of_a_model_in_rounds(smoke_variants: dict[str, Path]) -> None:
    from milestone_lib.variants.speed import measure_latency_side_by_side

    names = ["yolov8n-pytorch-fp32", "yolov8n-onnx-fp32", "yolov8n-onnx-int8-static"]
    variants = [(load_manifest(smoke_variants[name]), smoke_variants[name]) for name in names]
    figures = measure_latency_side_by_side(variants, batches=[1, 2], threads=[1], seconds_per_variant=0.2, rounds=3)
    assert [set(f) for f in figures] == [{"b1_t1", "b2_t1"}] * 3
    assert all(value > 0 for f in figures for value in f.values())
    # PyTorch eager runs the same network about 3x slower than ONNX Runtime on this CPU path.
    assert figures[0]["b1_t1"] > figures[1]["b1_t1"]
    for manifest, _ in variants:  # the build stored the side-by-side figures in every manifest
        assert set(manifest.latency_ms) == {"b1_t1", "b4_t1"}
