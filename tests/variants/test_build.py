from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from milestone_lib.contracts import load_manifest, sha256_file
from milestone_lib.errors import UnsupportedFormatError, VariantError
from milestone_lib.report import fanout_table, pipeline_accuracy_table, variant_table
from milestone_lib.runtimes.tensorrt import tensorrt_unavailable_reason
from milestone_lib.variants.build import BuildConfig, BuildResult, build_variants
from milestone_lib.variants.quantize import static_int8_plan
from milestone_lib.variants.speed import latency_key, measure_latency_side_by_side

pytestmark = pytest.mark.slow
SMOKE = BuildConfig.smoke()  # what the `smoke_build` fixture builds
FORMATS = SMOKE.buildable_formats()  # TensorRT ones only where this machine can build them
LATENCY_KEYS = {latency_key(b, t) for b in SMOKE.latency_batches for t in SMOKE.latency_threads}
VARIANTS_PER_MODEL = len(FORMATS)
DETECTORS = len(SMOKE.detector_sizes) * VARIANTS_PER_MODEL
CLASSIFIERS = len(SMOKE.classifier_sizes) * VARIANTS_PER_MODEL


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def _val_boxes(dataset_yaml: Path) -> int:
    """Ground-truth boxes of the val split, counted from the label files themselves."""
    labels = (dataset_yaml.parent / "labels" / "val").glob("*.txt")
    return sum(1 for path in labels for line in path.read_text().splitlines() if line.strip())


@pytest.mark.parametrize("model", ["yolov8n", "resnet-tiny"])
def test_every_format_is_built_with_a_verifiable_manifest(smoke_variants: dict[str, Path], smoke_dataset: Path,
                                                          model: str) -> None:
    reference = load_manifest(smoke_variants[f"{model}-pytorch-fp32"])
    metric = "mAP50" if reference.step == "detect" else "top1"
    assert reference.accuracy[metric] > 0.5, "the smoke model should have learned something"
    for fmt in FORMATS:
        folder = smoke_variants[f"{model}-{fmt}"]
        manifest = load_manifest(folder)
        assert manifest.name == f"{model}-{fmt}"
        assert manifest.step == ("detect" if model.startswith("yolo") else "classify")
        assert manifest.files and manifest.parameters == reference.parameters > 10_000
        for entry in manifest.files:
            assert sha256_file(folder / entry.path) == entry.sha256
            assert (folder / entry.path).stat().st_size == entry.size_bytes
        assert set(manifest.latency_ms) == LATENCY_KEYS and all(v > 0 for v in manifest.latency_ms.values())
        if manifest.precision == "fp32":  # the exported network computes what PyTorch computes, so it scores the same
            # up to float rounding: a crop whose top two scores tie may flip (one crop of the val split)
            one = 1.0 / manifest.accuracy["val_crops"] if manifest.step == "classify" else 0.01
            assert manifest.accuracy[metric] == pytest.approx(reference.accuracy[metric], abs=one), manifest.name
        if manifest.step == "classify":  # top-1 is over one jittered crop per ground-truth box of the val split
            assert manifest.accuracy["val_crops"] == _val_boxes(smoke_dataset)
        assert manifest.inputs[0].shape[1:] in ([3, manifest.imgsz, manifest.imgsz], [3, -1, -1])
        assert manifest.dataset["classes"] == 6 and manifest.training["fingerprint"]


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
    assert "Add" in static_int8_plan("classify", "resnet").op_types


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
    # QOperator form: the SiLUs run as int8 ops; the only float Sigmoid left is the decode's class score.
    assert static_int8_plan("detect", "yolov8").form == "QOperator"
    assert {"QLinearConv", "QLinearSigmoid", "QLinearMul"} <= ops
    float_sigmoids = [node.name for node in graph.node if node.op_type == "Sigmoid"]
    assert float_sigmoids and all(name.startswith("/model.22/") and "/cv" not in name for name in float_sigmoids)


def test_variant_table_and_pipeline_accuracy(smoke_build: BuildResult) -> None:
    table = variant_table(smoke_build)
    built = table[table["Status"] == "built"]
    assert len(built) == DETECTORS + CLASSIFIERS == len(smoke_build.variants)
    assert {"Variant", "Input px", "Format", "Precision", "Size MB", "Params M", "Accuracy", "Latency ms",
            "crops_per_image_mean", "crops_per_image_std"} <= set(table.columns)
    fp32 = built[(built["Format"] == "onnx") & (built["Precision"] == "fp32")]
    assert (fp32["Speedup vs fp32"] == 1.0).all() and (fp32["ΔAccuracy vs fp32"] == 0.0).all()
    fanout = fanout_table(table)
    assert len(fanout) == DETECTORS and (fanout["crops_per_image_std"] >= 0).all()
    assert (fanout["crops_per_image_mean"] > 0).all(), "the smoke detector finds objects at the serving threshold"
    pipeline = pipeline_accuracy_table(smoke_build)
    served = [fmt for fmt in SMOKE.pipeline_formats if fmt in FORMATS]
    # every served detector variant with every served classifier variant
    assert len(pipeline) == len(SMOKE.detector_sizes) * len(served) * len(SMOKE.classifier_sizes) * len(served)
    assert all(name.endswith(tuple(served)) for name in [*pipeline["detector"], *pipeline["classifier"]])
    assert pipeline["mAP50"].is_monotonic_decreasing or pipeline["mAP50-95"].is_monotonic_decreasing
    assert pipeline["mAP50"].max() > 0.2


def test_tensorrt_is_reported_not_skipped(smoke_build: BuildResult) -> None:
    reason = tensorrt_unavailable_reason()
    if reason is None:
        assert any("tensorrt" in name for name in smoke_build.variants)
    else:
        rows = [u for u in smoke_build.unavailable if u["format"].startswith("tensorrt")]
        models = len(SMOKE.detector_sizes) + len(SMOKE.classifier_sizes)
        expected = models * sum(fmt.startswith("tensorrt") for fmt in SMOKE.format_list)
        assert expected > 0 and len(rows) == expected and all(r["reason"] == reason for r in rows)
        table = variant_table(smoke_build)
        assert table["Status"].str.startswith("unavailable: ").sum() == expected


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
    names = ["yolov8n-pytorch-fp32", "yolov8n-onnx-fp32", "yolov8n-onnx-int8-static"]
    variants = [(load_manifest(smoke_variants[name]), smoke_variants[name]) for name in names]
    figures = measure_latency_side_by_side(variants, batches=[1, 2], threads=[1], seconds_per_variant=0.2, rounds=3)
    assert [set(f) for f in figures] == [{"b1_t1", "b2_t1"}] * 3
    assert all(value > 0 for f in figures for value in f.values())
    for manifest, _ in variants:  # the build stored the side-by-side figures in every manifest
        assert set(manifest.latency_ms) == LATENCY_KEYS
