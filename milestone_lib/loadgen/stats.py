"""What a load run measured: per-request rows -> windows, stability, summary, send-lag check.

Every request sent is one row (`request_frame`): `status` is `ok`, `failed` (with the gRPC `code`)
or `timeout`, so `sent == ok + failed + timeouts` always holds; `retried` counts the measured
requests sent more than once (UNAVAILABLE, then retried within the deadline). The first `warmup_s` seconds are
window -1; the rest is cut into measurement windows, and a result is *stable* when the last three
windows agree within `tolerance` (perf_analyzer's default: 10%) in throughput and mean latency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LoadResult",
    "is_stable",
    "request_frame",
    "schedule_check",
    "summarize",
    "window_metrics",
    "windows_stable",
]

_FIRST_COLUMNS = ["request", "phase", "window", "scheduled_s", "send_s", "send_lag_ms", "latency_ms", "status",
                  "code"]


@dataclass
class LoadResult:
    """One run: a row per request, per-window metrics, and the summary."""

    requests: pd.DataFrame
    windows: pd.DataFrame
    summary: dict[str, Any]

    @property
    def stable(self) -> bool:
        return bool(self.summary.get("stable", False))


def request_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a frame whose first columns are always there, in a fixed order."""
    frame = pd.DataFrame(rows)
    for column in _FIRST_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=float)
    return frame[_FIRST_COLUMNS + [c for c in frame.columns if c not in _FIRST_COLUMNS]]


def is_stable(values: Sequence[float], *, tolerance: float = 0.1, count: int = 3) -> bool:
    """True when the last `count` values each lie within `tolerance` of their mean."""
    if len(values) < count:
        return False
    last = np.asarray(values[-count:], dtype=float)
    if np.isnan(last).any():
        return False
    mean = last.mean()
    if mean == 0:
        return bool(np.all(last == 0))
    return bool(np.all(np.abs(last - mean) <= tolerance * abs(mean)))


def window_metrics(requests: pd.DataFrame, *, window_s: float) -> pd.DataFrame:
    """Per measurement window: sent, ok, throughput (ok per s), mean, p50 and p99 latency of its ok requests."""
    measured = requests[requests["window"] >= 0]
    rows = []
    for window, group in measured.groupby("window"):
        ok = group[group["status"] == "ok"]["latency_ms"]
        rows.append({"window": int(window), "sent": len(group), "ok": len(ok), "throughput_rps": len(ok) / window_s,
                     "mean_ms": float(ok.mean()) if len(ok) else math.nan,
                     "p50_ms": float(ok.quantile(0.5)) if len(ok) else math.nan,
                     "p99_ms": float(ok.quantile(0.99)) if len(ok) else math.nan})
    return pd.DataFrame(rows, columns=["window", "sent", "ok", "throughput_rps", "mean_ms", "p50_ms", "p99_ms"])


def windows_stable(windows: pd.DataFrame, tolerance: float) -> bool:
    """perf_analyzer's rule: throughput and mean latency (a window's p99 rests on too few samples)."""
    return is_stable(windows["throughput_rps"].tolist(), tolerance=tolerance) and is_stable(
        windows["mean_ms"].tolist(), tolerance=tolerance)


def summarize(requests: pd.DataFrame, *, duration_s: float, sla_ms: float | None = None,
              windows: pd.DataFrame | None = None, tolerance: float = 0.1) -> dict[str, Any]:
    """Latency percentiles, throughput, goodput within the SLA and errors by code of the measured requests."""
    measured = requests[requests["window"] >= 0]
    ok = measured[measured["status"] == "ok"]
    latency = ok["latency_ms"]
    within = int((latency <= sla_ms).sum()) if sla_ms is not None else len(ok)
    errors = measured[measured["status"] != "ok"]["code"].value_counts().to_dict()
    per_s = 1.0 / duration_s if duration_s else math.nan
    summary: dict[str, Any] = {
        "sent": len(requests),
        "measured": len(measured),
        "ok": len(ok),
        "failed": int((measured["status"] == "failed").sum()),
        "timeouts": int((measured["status"] == "timeout").sum()),
        "errors_by_code": {str(k): int(v) for k, v in errors.items()},
        "retried": int((measured["attempts"] > 1).sum()) if "attempts" in measured else 0,
        "duration_s": float(duration_s),
        "offered_rps": len(measured) * per_s,
        "throughput_rps": len(ok) * per_s,
        "goodput_rps": within * per_s,
        "sla_ms": sla_ms,
        "sla_attainment": within / len(measured) if len(measured) else math.nan,
        "mean_ms": float(latency.mean()) if len(ok) else math.nan,
    }
    for q in (50, 90, 95, 99):
        summary[f"p{q}_ms"] = float(latency.quantile(q / 100)) if len(ok) else math.nan
    summary["max_send_lag_ms"] = float(measured["send_lag_ms"].max()) if len(measured) else math.nan
    if windows is not None:
        summary["windows"] = len(windows)
        summary["stable"] = windows_stable(windows, tolerance)
    return summary


def schedule_check(requests: pd.DataFrame, *, duration_s: float, warmup_s: float, max_lag_p99_ms: float,
                   max_rate_shortfall: float) -> dict[str, Any]:
    """Whether an open loop kept its schedule: send-lag percentiles and the achieved vs the asked rate.

    The schedule is *not* kept when the measured requests' send lag p99 exceeds `max_lag_p99_ms`, or
    when they left at a rate below the asked one by more than `max_rate_shortfall` (a fraction): the
    load the server saw was then the generator's, not the profile's.
    """
    measured = requests[requests["window"] >= 0]
    lag = measured["send_lag_ms"]
    asked = len(measured) / duration_s
    # A generator that falls behind stretches its sends past the end of the measured span.
    span = max(duration_s, float(measured["send_s"].max()) - warmup_s) if len(measured) else duration_s
    achieved = len(measured) / span
    figures = {"send_lag_p50_ms": float(lag.quantile(0.5)) if len(lag) else math.nan,
               "send_lag_p99_ms": float(lag.quantile(0.99)) if len(lag) else math.nan,
               "asked_rps": asked, "achieved_rps": achieved,
               "max_lag_p99_ms": max_lag_p99_ms, "max_rate_shortfall": max_rate_shortfall}
    problems = []
    if figures["send_lag_p99_ms"] > max_lag_p99_ms:
        problems.append(f"send lag p99 {figures['send_lag_p99_ms']:.1f} ms is above the bound of "
                        f"{max_lag_p99_ms:g} ms")
    if achieved < (1.0 - max_rate_shortfall) * asked:
        problems.append(f"achieved {achieved:.1f} requests/s of the {asked:.1f} asked (more than "
                        f"{max_rate_shortfall:.0%} short)")
    figures["schedule_kept"] = not problems
    figures["schedule_warning"] = (
        "; ".join(problems) + ": the generator could not keep its schedule; use more client cores "
        "(fewer processes beside it) or a lower rate") if problems else None
    return figures
