"""Input resolution as a variant dimension: one training, a family of formats per resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from milestone_lib.contracts import load_manifest, sha256_file
from milestone_lib.report import fanout_table, variant_table
from milestone_lib.settings import ProjectSettings
from milestone_lib.variants.build import BuildConfig, build_variants, variant_name

pytestmark = pytest.mark.slow


def test_variant_names_carry_a_resolution_other_than_the_training_one() -> None:
    assert variant_name("yolov8", "n", "onnx-fp32") == "yolov8n-onnx-fp32"
    assert variant_name("yolov8", "n", "onnx-int8-static", 96) == "yolov8n-96-onnx-int8-static"
    assert BuildConfig(detector_resolutions=[160, 96, 128, 96]).input_resolutions == [96, 128, 160]
    assert BuildConfig.smoke().input_resolutions == [BuildConfig.smoke().imgsz]


def test_one_training_gives_a_family_per_input_resolution(tmp_path: Path) -> None:
    config = BuildConfig.smoke(synthetic_train_images=32, synthetic_val_images=8, detector_epochs={"n": 1},
                               imgsz=96, detector_resolutions=[64, 96], classifier_sizes=[],
                               formats=["onnx-fp32", "onnx-int8-static"], latency_batches=[1], calibration_images=8)
    settings = ProjectSettings(artifacts_dir=tmp_path)
    result = build_variants(config, settings=settings)
    assert set(result.variants) == {"yolov8n-64-onnx-fp32", "yolov8n-64-onnx-int8-static",
                                    "yolov8n-onnx-fp32", "yolov8n-onnx-int8-static"}
    trained = [stage for stage in result.stage_seconds if stage.startswith("train ")]
    assert trained == ["train detect n"]
    # both resolutions derive from the same weights: the 64 px family's source is a copy
    assert sha256_file(settings.variants_dir / "yolov8n-64-pytorch-fp32" / "model.pt") == \
        sha256_file(settings.variants_dir / "yolov8n-pytorch-fp32" / "model.pt")
    manifests = {m.name: m for m in result.manifests()}
    assert {m.imgsz for m in manifests.values()} == {64, 96}
    low, native = manifests["yolov8n-64-onnx-fp32"], manifests["yolov8n-onnx-fp32"]
    assert low.imgsz == 64 and native.imgsz == 96
    assert {k: v for k, v in low.training.items() if k != "fingerprint"} == \
        {k: v for k, v in native.training.items() if k != "fingerprint"}
    assert low.training["fingerprint"] != native.training["fingerprint"]
    for manifest in manifests.values():
        assert manifest.accuracy["crops_per_image_mean"] >= 0 and manifest.accuracy["crops_per_image_std"] >= 0
    table = variant_table(result)
    built = table[table["Status"] == "built"]
    assert sorted(built["Input px"].unique()) == [64, 96]
    assert (built.loc[built["Precision"] == "fp32", "Speedup vs fp32"] == 1.0).all()  # each against its own resolution
    fanout = fanout_table(table)
    assert list(fanout.columns) == ["detector_variant", "input_px", "crops_per_image_mean", "crops_per_image_std"]
    assert set(fanout["detector_variant"]) == set(result.variants)

    again = build_variants(config, settings=settings)  # everything matches its fingerprint: nothing is remade
    assert not [stage for stage in again.stage_seconds if stage.startswith(("train ", "export", "quantize"))]
    assert load_manifest(Path(again.variants["yolov8n-64-onnx-fp32"])).training == low.training


def test_unknown_knob_and_odd_resolution_are_clear_errors() -> None:
    from milestone_lib.errors import VariantError

    with pytest.raises(VariantError, match=r"unknown synthetic dataset knob 'fog'; choose one of .*distractors"):
        BuildConfig(synthetic={"fog": 1})
    with pytest.raises(VariantError, match=r"unknown detector input resolution '100'; use a multiple of 32"):
        BuildConfig(detector_resolutions=[100])
