"""Time the default variant build and print every "Done when" figure of issue 15, met or not.

    python benchmarks/bench_build.py [--smoke] [--notebook] [--artifacts DIR]

Builds into a fresh artifacts folder (rebuild) so nothing is reused. Default: `build_variants`
with `BuildConfig()` (the notebook's defaults). `--notebook` runs notebook 01 itself with its
defaults under papermill instead (artifacts and reports in temporary folders) and reads its
tables back, so the time printed is the notebook's. Then prints, from the variant table:
yolov8s vs yolov8n mAP50-95 per input resolution, the detector span, classifier top-1 of both
sizes, the end-to-end pipeline mAP50 span, crops per image of the lowest vs highest resolution,
INT8 static vs fp32 per detector, and the wall time against 540 s (90 s with --smoke).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

TARGET_S, SMOKE_TARGET_S = 540.0, 90.0


def _build(artifacts: Path, smoke: bool) -> tuple[float, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from milestone_lib.report import (
        fanout_table,
        pipeline_accuracy_table,
        stage_table,
        variant_table,
    )
    from milestone_lib.settings import ProjectSettings
    from milestone_lib.variants.build import BuildConfig, build_variants

    config = BuildConfig.smoke(rebuild=True) if smoke else BuildConfig(rebuild=True)
    started = time.perf_counter()
    result = build_variants(config, settings=ProjectSettings(artifacts_dir=artifacts))
    wall = time.perf_counter() - started
    print(stage_table(result).to_string(index=False))
    variants = variant_table(result)
    return wall, variants, fanout_table(variants), pipeline_accuracy_table(result)


def _notebook(artifacts: Path, smoke: bool) -> tuple[float, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    os.environ["MILESTONE_ARTIFACTS_DIR"] = str(artifacts)
    os.environ["MILESTONE_REPORTS_DIR"] = str(artifacts / "reports")
    from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook

    started = time.perf_counter()
    run_notebook(NOTEBOOKS_DIR / "01_build_variants.ipynb", parameters={"smoke": smoke}, output_dir=artifacts)
    wall = time.perf_counter() - started
    reports = artifacts / "reports" / ("smoke" if smoke else "")
    print(pd.read_csv(reports / "build_stages.csv").to_string(index=False))
    return (wall, pd.read_csv(reports / "variants.csv"), pd.read_csv(reports / "fanout.csv"),
            pd.read_csv(reports / "pipeline_accuracy.csv"))


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _fp32(variants: pd.DataFrame, step: str) -> pd.DataFrame:
    rows = variants[(variants["Step"] == step) & (variants["Status"] == "built") & (variants["Format"] == "onnx")
                    & (variants["Precision"] == "fp32")]
    return rows.set_index(["Model", "Input px"])


def report(wall: float, variants: pd.DataFrame, fanout: pd.DataFrame, pipeline: pd.DataFrame, *, smoke: bool) -> list[bool]:
    """Print each target's figures and verdict; return the verdicts."""
    verdicts: list[bool] = []
    detectors = _fp32(variants, "detect")
    models = sorted({model for model, _ in detectors.index})
    resolutions = sorted({px for _, px in detectors.index})
    print("\n1. detector mAP50-95 (ONNX fp32) per input resolution; target: largest - smallest model >= 0.03")
    for px in resolutions:
        scores = {m: detectors.loc[(m, px), "mAP50-95"] for m in models if (m, px) in detectors.index}
        gap = scores[models[-1]] - scores[models[0]] if len(scores) > 1 else float("nan")
        ok = len(scores) > 1 and gap >= 0.03
        verdicts.append(ok)
        print(f"   {int(px):4d} px: " + "  ".join(f"{m} {v:.3f}" for m, v in scores.items()) + f"   gap {gap:+.3f}  {_verdict(ok)}")
    built = variants[(variants["Step"] == "detect") & (variants["Status"] == "built")]
    span = built["mAP50-95"].max() - built["mAP50-95"].min()
    verdicts.append(span >= 0.15)
    print(f"   span over {len(built)} detector variants: {built['mAP50-95'].min():.3f} .. {built['mAP50-95'].max():.3f}"
          f" = {span:.3f} (target >= 0.15)  {_verdict(span >= 0.15)}")

    classifiers = _fp32(variants, "classify")["Accuracy"].droplevel("Input px")
    print("\n2. classifier top-1 (ONNX fp32); target: small - tiny >= 0.02, both in [0.75, 0.97]")
    print("   " + "  ".join(f"{m} {v:.3f}" for m, v in classifiers.items()))
    if {"resnet-tiny", "resnet-small"} <= set(classifiers.index):
        gap = classifiers["resnet-small"] - classifiers["resnet-tiny"]
        ok = gap >= 0.02 and all(0.75 <= v <= 0.97 for v in classifiers[["resnet-tiny", "resnet-small"]])
        print(f"   gap {gap:+.3f}  {_verdict(ok)}")
        verdicts.append(bool(ok))

    span = pipeline["mAP50"].max() - pipeline["mAP50"].min() if len(pipeline) else float("nan")
    verdicts.append(bool(span >= 0.10))
    print(f"\n3. pipeline mAP50 over {len(pipeline)} pairs: {pipeline['mAP50'].min():.3f} .. {pipeline['mAP50'].max():.3f}"
          f" = {span:.3f} (target >= 0.10)  {_verdict(span >= 0.10)}")

    print("\n4. crops per val image (serving threshold), lowest vs highest input resolution, ONNX fp32")
    fp32_fanout = fanout[fanout["detector_variant"].str.endswith("-onnx-fp32")]
    for model in models:
        size = model.split("-")[-1]
        rows = fp32_fanout[fp32_fanout["detector_variant"].str.startswith(f"yolov8{size}-")].sort_values("input_px")
        low, high = rows.iloc[0], rows.iloc[-1]
        delta = high["crops_per_image_mean"] - low["crops_per_image_mean"]
        ok = len(rows) > 1 and abs(delta) >= 0.1
        verdicts.append(ok)
        print(f"   {model}: {int(low['input_px'])} px {low['crops_per_image_mean']:.2f} ± {low['crops_per_image_std']:.2f}"
              f"   {int(high['input_px'])} px {high['crops_per_image_mean']:.2f} ± {high['crops_per_image_std']:.2f}"
              f"   difference {delta:+.2f}  {_verdict(ok)}")

    print("\n5. detector INT8 static vs ONNX fp32 (batch 1, 1 thread); target: >= 1.6x faster, <= 0.01 mAP50 lost")
    table = variants.set_index("Variant")
    for name in table.index[(table["Precision"] == "int8-static") & (table["Step"] == "detect")]:
        twin = name.replace("int8-static", "fp32")
        q, f = table.loc[name], table.loc[twin]
        speedup, lost = f["Latency ms"] / q["Latency ms"], f["Accuracy"] - q["Accuracy"]
        ok = speedup >= 1.6 and lost <= 0.01
        verdicts.append(bool(ok))
        print(f"   {name:32s} {q['Latency ms']:7.3f} vs {f['Latency ms']:7.3f} ms  {speedup:.2f}x   mAP50 {q['Accuracy']:.3f}"
              f" vs {f['Accuracy']:.3f} (lost {lost:+.3f})  {_verdict(ok)}")

    target = SMOKE_TARGET_S if smoke else TARGET_S
    verdicts.append(wall <= target)
    print(f"\n6. wall time {wall:.1f} s   target {target:.0f} s   ratio {wall / target:.2f}  {_verdict(wall <= target)}")
    if smoke:  # one size per step and one resolution: the accuracy targets are the full build's
        print("\nsmoke build: only the time target applies (" + _verdict(verdicts[-1]) + ")")
        return verdicts[-1:]
    print(f"\n{sum(verdicts)} of {len(verdicts)} targets met")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--notebook", action="store_true", help="run notebook 01 with its defaults and time that")
    parser.add_argument("--artifacts", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="bench-build-"))
    print(f"cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.2f}  artifacts: {artifacts}", flush=True)
    pd.set_option("display.width", 200)
    wall, variants, fanout, pipeline = (_notebook if args.notebook else _build)(artifacts, args.smoke)
    report(wall, variants, fanout, pipeline, smoke=args.smoke)


if __name__ == "__main__":
    main()
