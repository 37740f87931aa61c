"""The optimizer's two plots: cost against end-to-end accuracy (Pareto front, chosen point, baselines),
and predicted against measured p99 with 95% confidence intervals."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .answers import T3Answers

__all__ = ["plot_pareto", "plot_prediction_check"]

_MARKERS = ["s", "^", "v", "D", "P", "X"]


def plot_pareto(answers: T3Answers, *, title: str | None = None) -> Any:
    """Every (cost, accuracy) meeting the SLA, the Pareto front as a step line, the chosen point and baselines."""
    fig, ax = plt.subplots(figsize=(9, 6))
    cloud = answers.tables.get("cloud", pd.DataFrame())
    if len(cloud):
        for detector, part in cloud.groupby("detect_variant"):
            ax.scatter(part["cost"], part["accuracy"], s=12 + 3 * np.sqrt(part["configurations"]), alpha=0.35,
                       label=f"meets SLA, detector {detector}")
    front = answers.tables.get("pareto", pd.DataFrame())
    if len(front):
        ax.step(front["cost"], front["accuracy"], where="post", color="black", linewidth=2, label="Pareto front")
        ax.scatter(front["cost"], front["accuracy"], color="black", s=40, zorder=3)
    baselines = answers.tables.get("baselines", pd.DataFrame())
    for marker, (_, row) in zip(_MARKERS, baselines.iterrows(), strict=False):
        if pd.notna(row.get("cost")):
            verdict = "meets" if row.get("meets_sla") else "misses"
            ax.scatter([row["cost"]], [row["accuracy"]], marker=marker, s=110, facecolors="none", edgecolors="tab:red",
                       linewidths=1.8, zorder=4, label=f"{row['name']} ({verdict} SLA)")
    rec = answers.recommendation
    if rec:
        ax.scatter([rec["cost"]], [rec["accuracy"]], marker="*", s=420, color="gold", edgecolors="black", zorder=5,
                   label=f"chosen: {rec['cost']:g} CPUs, accuracy {rec['accuracy']:.3f}")
    ax.set_xlabel("cost (CPUs = replicas x CPU per replica, both steps)")
    ax.set_ylabel(f"end-to-end accuracy (pipeline {answers.metric})")
    ax.set_title(title or f"Cost vs accuracy at {answers.rate_rps:g} req/s within {answers.sla_ms:g} ms p99")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_prediction_check(summary: pd.DataFrame, *, sla_ms: float, runs: pd.DataFrame | None = None,
                          title: str | None = None) -> Any:
    """Per configuration (`check.check_summary`'s rows): the forecast p99 and the SLA rule's bound, the measured p99
    of every request and the repeats' p99 with its 95% CI, and
    (given `runs`, `check.measure_configurations`'s rows) each repeat's p99."""
    fig, ax = plt.subplots(figsize=(9, 5))
    y = np.arange(len(summary))
    if len(summary):
        ax.scatter(summary["measured_p99_ms"], y, marker="o", s=60, color="tab:blue",
                   label="measured p99 (every request of the repeats)")
        ax.errorbar(summary["repeat_p99_mean_ms"], y - 0.15, xerr=summary["p99_ci95_ms"].fillna(0.0).to_numpy(),
                    fmt="none", ecolor="tab:blue", capsize=4, alpha=0.6, label="repeats' p99: mean, 95% CI")
        ax.scatter(summary["forecast_p99_ms"], y, marker="x", s=90, color="tab:orange",
                   label="forecast p99 (steps as independent parts + gateway)")
        ax.scatter(summary["predicted_p99_ms"], y, marker="|", s=300, color="tab:gray",
                   label="SLA rule (+ gateway reserve)")
        if runs is not None and len(runs):
            where = {name: k for k, name in enumerate(summary["configuration"])}
            ax.scatter(runs["p99_ms"], runs["configuration"].map(where) + 0.15, s=14, color="tab:blue", alpha=0.5,
                       label="measured p99, each repeat")
    ax.axvline(sla_ms, color="tab:red", linestyle="--", label=f"SLA {sla_ms:g} ms")
    ax.set_xlim(left=0)
    ax.set_yticks(y, [str(c) for c in summary.get("configuration", [])])
    ax.invert_yaxis()
    ax.set_xlabel("end-to-end p99 latency at the SLA rate (ms)")
    ax.set_title(title or "Predicted vs measured p99")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
