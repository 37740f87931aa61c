"""Which variants a sweep measures: each step's accuracy-vs-latency front, and what dominates the rest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.profiling import load_manifests, swept_variants, variant_selection
from milestone_lib.profiling.selection import LATENCY_KEY


@pytest.fixture(scope="module")
def template(smoke_variants: dict[str, Path]):
    manifests = load_manifests(next(iter(smoke_variants.values())).parent)
    return {step: next(m for m in manifests.values() if m.step == step) for step in ("detect", "classify")}


def _variant(template, step: str, name: str, accuracy: float, ms: float, fmt: str = "onnx"):
    metric = "mAP50-95" if step == "detect" else "top1"
    return template[step].model_copy(update={"name": name, "format": fmt, "accuracy": {metric: accuracy},
                                             "latency_ms": {LATENCY_KEY: ms}})


def _manifests(template, rows):
    return {name: _variant(template, step, name, acc, ms, *rest) for step, name, acc, ms, *rest in rows}


def test_the_front_is_swept_and_each_left_out_variant_names_a_faster_one_at_least_as_accurate(template) -> None:
    manifests = _manifests(template, [
        ("detect", "n-int8", 0.30, 1.0), ("detect", "n-fp32", 0.302, 2.5),   # same accuracy within 0.005
        ("detect", "s-int8", 0.60, 4.0), ("detect", "s-fp32", 0.60, 9.0), ("detect", "s-dyn", 0.59, 12.0),
        ("detect", "m-int8", 0.70, 8.0), ("detect", "trt", 0.71, 0.5, "tensorrt"),
        ("classify", "ct-int8", 0.76, 0.1), ("classify", "ct-fp32", 0.77, 0.2), ("classify", "cs-int8", 0.85, 0.3),
        ("classify", "cs-fp32", 0.85, 0.4), ("classify", "cs-dyn", 0.84, 1.2)])
    table = variant_selection(manifests, min_count=4)
    detect = table[table.step == "detect"].set_index("variant")
    assert set(detect.index[detect.swept]) == {"n-int8", "s-int8", "m-int8", "n-fp32"}  # 3 on the front + 1 to fill
    assert set(detect.index[detect.front == 1]) == {"n-int8", "s-int8", "m-int8"}
    assert detect.loc["s-fp32", "dominated_by"] == "s-int8"
    assert detect.loc["s-dyn", "dominated_by"] == "s-int8"
    assert "2.25x faster" in detect.loc["s-fp32", "reason"]
    assert not detect.loc["trt", "swept"] and "not servable" in detect.loc["trt", "reason"]
    classify = table[table.step == "classify"].set_index("variant")
    assert set(classify.index[classify.front == 1]) == {"ct-int8", "ct-fp32", "cs-int8"}
    assert classify.swept.sum() == 4 and not classify.loc["cs-dyn", "swept"]
    # Every variant left out either names a dominating variant that really dominates it, or says why not.
    for step, rows in table.groupby("step"):
        rows = rows.set_index("variant")
        for name, row in rows[~rows.swept].iterrows():
            assert row.reason
            if row.dominated_by:
                top = rows.loc[row.dominated_by]
                assert top.latency_ms < row.latency_ms and top.accuracy >= row.accuracy - 0.005


def test_a_front_of_one_is_filled_up_and_a_tiny_build_sweeps_all_it_has(template) -> None:
    manifests = _manifests(template, [("detect", f"d{i}", 0.9 - 0.1 * i, 1.0 + i) for i in range(6)]
                           + [("classify", "c0", 0.8, 0.1)])
    table = variant_selection(manifests, min_count=4).set_index("variant")
    assert list(table.index[table.swept & (table.step == "detect")]) == ["d0", "d1", "d2", "d3"]
    assert table.loc["d4", "dominated_by"] == "d0" and table.loc["c0", "swept"]


def test_swept_variants_follows_the_sweep_and_adds_the_variants_not_built(template, tmp_path: Path) -> None:
    manifests = _manifests(template, [("detect", "a", 0.3, 1.0), ("detect", "b", 0.2, 2.0),
                                      ("classify", "c", 0.8, 0.1)])
    pd.DataFrame([{"Variant": "a", "Step": "detect", "Status": "built"},
                  {"Variant": "a-trt", "Step": "detect", "Format": "tensorrt", "Status": "unavailable: no GPU"}]
                 ).to_csv(tmp_path / "variants.csv", index=False)
    table = swept_variants(manifests, {"detect": ["b"], "classify": ["c"]}, reports_dir=tmp_path, min_count=1)
    table = table.set_index("variant")
    assert table.loc["b", "swept"] and table.loc["b", "reason"] == ""
    assert not table.loc["a", "swept"] and "not in this sweep" in table.loc["a", "reason"]
    assert table.loc["a-trt", "reason"] == "unavailable: no GPU" and not table.loc["a-trt", "swept"]
