"""Candidates at other rates and without fan-out, from the sweep's profiles (profiling.candidate_table)."""

from __future__ import annotations

from pathlib import Path

from opt_helpers import synthetic_sweep

from milestone_lib.optimize import SweepSource
from milestone_lib.profiling import SlaSpec, load_sweep


def test_sweep_source_rates_and_the_no_fan_out_view(tmp_path: Path) -> None:
    synthetic_sweep(tmp_path, detect_ms={"det-a": 8.0, "det-b": 20.0}, classify_ms={"cls": 1.0},
                    fanout={"det-a": 2.0, "det-b": 4.0}, sla=SlaSpec(rate_rps=20), replicas=range(1, 3),
                    cpus=(0.5, 1.0), batches=(1, 4))
    sweep = load_sweep(tmp_path)
    source = SweepSource(sweep)
    assert source(20) is sweep.candidates  # the sweep's own table (measured rows included) at its rate
    faster = source(40)
    assert set(faster["rate_rps"]) == {40.0}
    classify = faster[faster["step"] == "classify"].set_index("detector_variant")["items_per_request"]
    assert classify.loc["det-b"].max() == 4.0
    blind = source(20, ignore_fanout=True)
    rows = blind[blind["step"] == "classify"]
    assert set(rows["items_per_request"]) == {1.0} and set(rows["detector_variant"]) == {"det-a", "det-b"}
    assert len(blind[blind["step"] == "detect"]) == len(sweep.candidates[sweep.candidates["step"] == "detect"])
    assert source(40) is faster  # cached
