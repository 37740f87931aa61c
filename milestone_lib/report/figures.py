"""The headline figures each notebook records (`MilestoneRun.record`), computed from its tables.

Plain dicts of JSON values, so the recorded file, the notebook's last output and a test's
assertions read the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..contracts import STEPS

if TYPE_CHECKING:  # only a type here: importing the registry client would load the S3 SDK
    from ..registry import PulledVariant
    from .browser import PageCheck
    from .deck_check import DeckCheck
    from .inputs import NotebookOutputs

__all__ = ["build_figures", "registry_figures", "report_figures", "scaling_figures"]


def build_figures(variants: pd.DataFrame, stages: pd.DataFrame, pipeline: pd.DataFrame) -> dict[str, Any]:
    """Notebook 01: variants built / unavailable, build time, the best pipeline pair, each variant's accuracy."""
    built = variants["Status"] == "built"
    best = pipeline.iloc[0] if len(pipeline) else pd.Series(dtype=object)
    return {
        "variants_built": int(built.sum()),
        "variants_unavailable": int((~built).sum()),
        "build_seconds": round(float(stages.loc[stages["Stage"] == "total", "Seconds"].iloc[0]), 1),
        "best_pipeline": {key: _plain(best.get(key)) for key in ("detector", "classifier", "mAP50", "mAP50-95")},
        "accuracy": {str(k): round(float(v), 4)
                     for k, v in variants.set_index("Variant")["Accuracy"].dropna().items()},
    }


def registry_figures(pushed: pd.DataFrame, listing: pd.DataFrame, pulled: PulledVariant) -> dict[str, Any]:
    """Notebook 02: what was pushed (count, MB, seconds), what the registry holds, and the verified pull."""
    return {
        "variants_pushed": len(pushed),
        "versions_in_registry": len(listing),
        "variants_in_registry": int(listing["name"].nunique()) if len(listing) else 0,
        "pushed_mb": round(float(pushed["size_mb"].sum()), 3) if len(pushed) else 0.0,
        "push_seconds_total": round(float(pushed["seconds"].sum()), 3) if len(pushed) else 0.0,
        "pulled_variant": pulled.name,
        "pulled_version": pulled.version,
        "pulled_files_verified": pulled.files_verified,
        "pull_seconds": round(pulled.seconds, 3),
    }


def scaling_figures(before: Mapping[str, Any], after: Mapping[str, Any], before_breakdown: pd.DataFrame,
                    after_breakdown: pd.DataFrame, *, slowest: str, rate_rps: float, oversubscribed: bool,
                    replicas_after: Mapping[str, int]) -> dict[str, Any]:
    """Notebook 03: latency and goodput before / after scaling the slowest step, and every request accounted.

    `before` / `after` are `LoadResult.summary` dicts; the breakdowns come from `step_breakdown`.
    """
    runs = {"before": (before, before_breakdown), "after": (after, after_breakdown)}
    figures: dict[str, Any] = {
        "slowest_step": slowest,
        "rate_rps": rate_rps,
        "oversubscribed": bool(oversubscribed),
        "requests_sent": int(before["sent"] + after["sent"]),
        "requests_failed": int(sum(s["failed"] + s["timeouts"] for s in (before, after))),
    }
    for label, (summary, _) in runs.items():
        figures[f"{label}_p50_ms"] = round(float(summary["p50_ms"]), 2)
        figures[f"{label}_p95_ms"] = round(float(summary["p95_ms"]), 2)
    for label, (summary, _) in runs.items():
        figures[f"{label}_goodput_rps"] = round(float(summary["goodput_rps"]), 2)
    for label, (_, breakdown) in runs.items():
        figures[f"slowest_step_ms_{label}"] = round(float(breakdown.loc[slowest, "total_ms"]), 2)
    figures["replicas_after"] = {step: int(replicas_after.get(step, 0)) for step in STEPS}
    return figures


def report_figures(outputs: Sequence[NotebookOutputs], *, report: Path, slides: Path,
                   checks: Sequence[PageCheck] = (), deck: DeckCheck | None = None) -> dict[str, Any]:
    """Notebook 06: which notebooks' outputs went in, the two pages, what Chromium saw in them, and the deck check."""
    figures: dict[str, Any] = {
        "notebooks_included": [o.spec.notebook for o in outputs if o.started],
        "notebooks_missing": [o.spec.notebook for o in outputs if not o.started],
        "runs": sorted({o.run for o in outputs if o.run}),
        "tables": sum(len(o.tables) for o in outputs),
        "plots": sum(len(o.plots) for o in outputs),
        "report_mb": round(Path(report).stat().st_size / 1e6, 3),
        "slides_mb": round(Path(slides).stat().st_size / 1e6, 3),
        "browser_checked": bool(checks),
    }
    for check in checks:
        figures[check.path.stem] = check.summary()
    if deck is not None:
        figures["deck_check"] = {"slides": len(deck.slides), "fit": sum(s.fits for s in deck.slides),
                                 "most_words": max((s.words for s in deck.slides), default=0),
                                 "problems": list(deck.problems)}
    return figures


def _plain(value: Any) -> Any:
    """A JSON value from a pandas/numpy scalar (None for a missing one)."""
    value = value.item() if hasattr(value, "item") else value
    return None if value is None or pd.isna(value) else value
