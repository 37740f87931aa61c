"""The end-to-end rule (problem.py) against the pipeline rows notebook 04 measured through the gateway.

Notebook 04 writes `04_pipeline_table.csv`; its `measured` rows name their scale as
"detect RxC + classify RxC". Each is set beside the same configuration's step rows of the candidate
table: the steps' p99 added (the prediction), and with the gateway reserve (the SLA rule's bound).
The medians give the gateway's own overhead (its work and the two extra hops), which the check's
forecast adds to the steps' p99.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PIPELINE_TABLE", "gateway_overhead_ms", "rule_against_pipeline"]

PIPELINE_TABLE = "04_pipeline_table.csv"
_SCALE = re.compile(r"detect (\d+)x([\d.]+) \+ classify (\d+)x([\d.]+)")


def _row(candidates: pd.DataFrame, step: str, variant: str, replicas: int, cpu: float,
         detector: str | None = None) -> pd.Series | None:
    rows = candidates[(candidates["step"] == step) & (candidates["variant"] == variant)
                      & (candidates["replicas"] == replicas) & np.isclose(candidates["cpu"], cpu)]
    if detector is not None:
        rows = rows[rows["detector_variant"] == detector]
    return None if rows.empty else rows.sort_values("p99_ms").iloc[0]


def rule_against_pipeline(candidates: pd.DataFrame, reports_dir: Path, *, gateway_reserve_ms: float) -> pd.DataFrame:
    """Measured end-to-end p99 of each pipeline row notebook 04 measured, against the rule; empty if none."""
    path = Path(reports_dir) / PIPELINE_TABLE
    if not path.is_file():
        return pd.DataFrame()
    table = pd.read_csv(path)
    if "source" not in table or "scale" not in table:
        return pd.DataFrame()
    out = []
    for r in table[table["source"] == "measured"].to_dict("records"):
        match = _SCALE.search(str(r["scale"]))
        if not match:
            continue
        dr, dc, cr, cc = int(match[1]), float(match[2]), int(match[3]), float(match[4])
        d = _row(candidates, "detect", r["detector_variant"], dr, dc)
        c = _row(candidates, "classify", r["classifier_variant"], cr, cc, r["detector_variant"])
        steps = float(d["p99_ms"] + c["p99_ms"]) if d is not None and c is not None else math.nan
        medians = float(d.get("p50_ms", math.nan) + c.get("p50_ms", math.nan)) if d is not None and c is not None \
            else math.nan
        measured = float(r["p99_ms"])
        out.append({"detector_variant": r["detector_variant"], "classifier_variant": r["classifier_variant"],
                    "scale": r["scale"], "measured_p99_ms": measured, "steps_p99_sum_ms": steps,
                    "rule_p99_ms": steps + gateway_reserve_ms, "error": (measured - steps) / steps if steps else math.nan,
                    "bound_held": bool(measured <= steps + gateway_reserve_ms),
                    "gateway_overhead_ms": float(r.get("p50_ms", math.nan)) - medians})
    return pd.DataFrame(out)


def gateway_overhead_ms(rule_check: pd.DataFrame) -> float:
    """The gateway's overhead: the median over measured pipelines of their p50 minus the steps' p50; 0 if none."""
    if rule_check is None or rule_check.empty or "gateway_overhead_ms" not in rule_check:
        return 0.0
    values = pd.to_numeric(rule_check["gateway_overhead_ms"], errors="coerce").dropna()
    return max(0.0, float(values.median())) if len(values) else 0.0
