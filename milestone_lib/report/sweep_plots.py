"""The scaling sweep's plots (notebook 04): model version vs accuracy and latency / throughput,
throughput vs replicas with the ideal line, cost vs p99 with the SLA, and the best configurations'
latency distributions. Each takes the candidate table (`profiling.CANDIDATE_COLUMNS`)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import atomic_write_bytes
from .plots import PANEL_SIZE, mark_smoke, set_log_ms_axis, slide_style

__all__ = ["plot_cost_vs_p99", "plot_latency_distribution", "plot_throughput_vs_replicas",
           "plot_version_accuracy", "save_png_svg"]

_STEPS = ("detect", "classify")
_METRIC = {"detect": "mAP50-95 (detector)", "classify": "top-1 (classifier)"}


def _one_replica(candidates: pd.DataFrame, step: str, cpu: float | None) -> pd.DataFrame:
    rows = candidates[(candidates["step"] == step) & (candidates["replicas"] == 1)]
    if step == "classify" and rows["detector_variant"].notna().any():
        rows = rows[rows["detector_variant"] == rows["detector_variant"].dropna().iloc[0]]
    cpu = cpu if cpu is not None else (rows["cpu"].max() if len(rows) else None)
    return rows[np.isclose(rows["cpu"], cpu)] if cpu is not None else rows


def plot_version_accuracy(candidates: pd.DataFrame, *, y: str = "p50_ms", cpu: float | None = None,
                          title: str = "") -> Any:
    """Per step, accuracy against `y` (`p50_ms` latency, or `max_throughput_rps`) of each model version
    at one replica of `cpu` CPUs (default: the largest allocation), a marker per version."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    latency = y.endswith("_ms")
    with slide_style():
        figure, axes = plt.subplots(1, 2, figsize=(PANEL_SIZE[0] * 2, PANEL_SIZE[1]), squeeze=False)
        for axis, step in zip(axes[0], _STEPS, strict=True):
            data = _one_replica(candidates, step, cpu)
            data = data[np.isfinite(data[y].astype(float))]
            if len(data):
                sns.scatterplot(data=data, x=y, y="accuracy", hue="variant", style="format", s=110, ax=axis)
                axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
            if latency:
                set_log_ms_axis(axis, data[y].astype(float))
            where = f"1 replica x {data['cpu'].iloc[0]:g} CPU" if len(data) else "no data"
            axis.set_xlabel(f"{y.replace('_ms', '').upper()} latency at the SLA rate, ms (log)" if latency
                            else "max throughput, requests/s")
            axis.set_ylabel(_METRIC[step])
            axis.set_title(f"{step}: accuracy vs {'latency' if latency else 'throughput'} ({where})")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def plot_throughput_vs_replicas(candidates: pd.DataFrame, variants: Mapping[str, str], *, title: str = "") -> Any:
    """Per step (its variant in `variants`), max throughput against replicas, a line per CPU allocation,
    and the ideal r x throughput(1) dashed; filled markers are measured, hollow ones predicted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with slide_style():
        figure, axes = plt.subplots(1, 2, figsize=(PANEL_SIZE[0] * 2, PANEL_SIZE[1]), squeeze=False)
        for axis, step in zip(axes[0], _STEPS, strict=True):
            data = candidates[(candidates["step"] == step) & (candidates["variant"] == variants.get(step))]
            if step == "classify" and data["detector_variant"].notna().any():
                data = data[data["detector_variant"] == data["detector_variant"].dropna().iloc[0]]
            palette = dict(zip(sorted(data["cpu"].unique()), sns.color_palette("viridis", data["cpu"].nunique()),
                               strict=True))
            for cpu, group in data.groupby("cpu"):
                group = group.sort_values("replicas")
                colour = palette[cpu]
                axis.plot(group["replicas"], group["max_throughput_rps"], color=colour, label=f"{cpu:g} CPU")
                one = group.loc[group["replicas"] == 1, "max_throughput_rps"]
                if len(one):
                    axis.plot(group["replicas"], group["replicas"] * float(one.iloc[0]), color=colour, ls="--",
                              lw=1, alpha=0.6)
                for source, fill in (("measured", colour), ("predicted", "none")):
                    part = group[group["source"] == source]
                    axis.scatter(part["replicas"], part["max_throughput_rps"], s=45, facecolors=fill,
                                 edgecolors=colour, zorder=3)
            axis.set_xlabel("replicas (filled: measured, hollow: predicted; dashed: ideal)")
            axis.set_ylabel("max throughput, requests/s")
            axis.set_title(f"{step}: {variants.get(step, '?')}")
            if len(data):
                axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title="per replica")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def plot_cost_vs_p99(candidates: pd.DataFrame, budgets: Mapping[str, float], *, title: str = "") -> Any:
    """Per step, every configuration's p99 at the SLA rate against its cost, with the step's budget line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with slide_style():
        figure, axes = plt.subplots(1, 2, figsize=(PANEL_SIZE[0] * 2, PANEL_SIZE[1]), squeeze=False)
        for axis, step in zip(axes[0], _STEPS, strict=True):
            data = candidates[(candidates["step"] == step) & np.isfinite(candidates["p99_ms"].astype(float))]
            if len(data):
                sns.scatterplot(data=data, x="cost", y="p99_ms", hue="variant", style="source", s=50, alpha=0.8,
                                ax=axis)
                axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
            axis.axhline(budgets[step], color="crimson", ls="--", label="step budget")
            axis.text(axis.get_xlim()[0] if len(data) else 0, budgets[step], f" budget {budgets[step]:.0f} ms",
                      color="crimson", va="bottom")
            set_log_ms_axis(axis, [*data["p99_ms"].astype(float), budgets[step]], which="y")
            axis.set_xlabel("cost = replicas x CPU per replica")
            axis.set_ylabel("p99 latency at the SLA rate, ms (log)")
            axis.set_title(f"{step}: cost vs p99")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def plot_latency_distribution(samples: Mapping[str, np.ndarray], best: Mapping[str, Mapping[str, Any]], *,
                              title: str = "") -> Any:
    """Per step, the measured latencies (`samples`) behind its best configuration, with its p50/p99."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    with slide_style():
        figure, axes = plt.subplots(1, 2, figsize=(PANEL_SIZE[0] * 2, PANEL_SIZE[1]), squeeze=False)
        for axis, step in zip(axes[0], _STEPS, strict=True):
            values = np.asarray(samples.get(step, []), dtype=float)
            row = best.get(step) or {}
            if len(values):
                sns.histplot(values, bins=30, ax=axis, color="#3d7dca")
                set_log_ms_axis(axis, values)
            for key, colour in (("p50_ms", "#f2a541"), ("p99_ms", "crimson")):
                if key in row and np.isfinite(row[key]):
                    axis.axvline(row[key], color=colour, ls="--", label=f"{key[:3]} {row[key]:.1f} ms")
            axis.set_xlabel("latency at the SLA rate, ms (log)")
            axis.set_title(f"{step}: {row.get('label', 'no configuration meets the budget')}", fontsize=10)
            if row:
                axis.legend(loc="upper right")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    return figure


def save_png_svg(figure: Any, name: str, *, reports_dir: Path, smoke: bool = False) -> dict[str, Path]:
    """`<reports>/<name>.png` and `.svg` (a smoke run's title says so)."""
    if smoke:
        mark_smoke(figure)
    paths = {}
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight")
        paths[fmt] = atomic_write_bytes(Path(reports_dir) / f"{name}.{fmt}", buffer.getvalue())
    return paths
