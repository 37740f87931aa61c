"""Reports: the last stage. Tables, plots and recorded figures of the milestone notebooks.

    writers.py         write_table / save_figure: CSV + Markdown tables and PNGs, written atomically
    run.py             MilestoneRun (open_run): a notebook's run, full or smoke, and the files it saves
    variant_table.py   the variant table, pipeline accuracy and build stages of a build
    breakdown.py       per-step queue / compute / network time of pipeline requests, run comparisons
    figures.py         the headline figures each notebook records
    plots.py           slide style, plain-millisecond log axes, the plots

It may import from every earlier stage; nothing in the package but cli/notebooks imports it.
"""

from __future__ import annotations

from .breakdown import (
    PARTS,
    compare_runs,
    slowest_step,
    step_breakdown,
    step_columns,
    timing_residuals,
)
from .figures import build_figures, registry_figures, scaling_figures
from .plots import (
    PANEL_SIZE,
    SLIDE_STYLE,
    log_ms_ticks,
    mark_smoke,
    plot_accuracy_vs_latency,
    plot_step_breakdown,
    set_log_ms_axis,
    slide_style,
)
from .run import (
    SMOKE_LOAD,
    LoadPlan,
    MilestoneRun,
    load_figures,
    open_run,
    scaled_replicas,
)
from .variant_table import pipeline_accuracy_table, stage_table, variant_table
from .writers import reports_path, save_figure, write_table

__all__ = [
    "PANEL_SIZE",
    "PARTS",
    "SLIDE_STYLE",
    "SMOKE_LOAD",
    "LoadPlan",
    "MilestoneRun",
    "build_figures",
    "compare_runs",
    "load_figures",
    "log_ms_ticks",
    "mark_smoke",
    "open_run",
    "pipeline_accuracy_table",
    "plot_accuracy_vs_latency",
    "plot_step_breakdown",
    "registry_figures",
    "reports_path",
    "save_figure",
    "scaled_replicas",
    "scaling_figures",
    "set_log_ms_axis",
    "slide_style",
    "slowest_step",
    "stage_table",
    "step_breakdown",
    "step_columns",
    "timing_residuals",
    "variant_table",
    "write_table",
]
