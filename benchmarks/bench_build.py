"""Time the default variant build stage by stage (issue target: under 8 minutes on 2 cores).

    python benchmarks/bench_build.py [--smoke] [--artifacts DIR]

Builds into a fresh artifacts folder (rebuild) so nothing is reused, then prints each stage's
seconds, the total, its ratio to the 480 s target, and the INT8-static vs fp32 comparison.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from milestone_lib.report import stage_table, variant_table
from milestone_lib.settings import ProjectSettings
from milestone_lib.variants.build import BuildConfig, build_variants

TARGET_S = 480.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--artifacts", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="bench-build-"))
    config = BuildConfig.smoke(rebuild=True) if args.smoke else BuildConfig(rebuild=True)
    print(f"cores: {os.cpu_count()}  artifacts: {artifacts}", flush=True)
    started = time.perf_counter()
    result = build_variants(config, settings=ProjectSettings(artifacts_dir=artifacts))
    wall = time.perf_counter() - started
    print(stage_table(result).to_string(index=False))
    print(f"\nwall time: {wall:.1f} s   target: {TARGET_S:.0f} s   ratio: {wall / TARGET_S:.2f}")
    table = variant_table(result).set_index("Variant")
    print("\nINT8 static vs ONNX fp32 (batch 1, 1 thread):")
    for name in table.index[table["Precision"] == "int8-static"]:
        twin = name.replace("int8-static", "fp32")
        if twin in table.index:
            q, f = table.loc[name], table.loc[twin]
            print(f"  {name:32s} {q['Latency ms']:7.3f} ms vs {f['Latency ms']:7.3f} ms  speedup {f['Latency ms'] / q['Latency ms']:.2f}x"
                  f"   {q['Metric']} {q['Accuracy']:.3f} vs {f['Accuracy']:.3f}  delta {q['Accuracy'] - f['Accuracy']:+.3f}")


if __name__ == "__main__":
    main()
