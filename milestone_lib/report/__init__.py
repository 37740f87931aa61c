"""Reports: the last stage. Tables, plots and recorded figures of the milestone notebooks.

    writers.py         write_table / save_figure: CSV + Markdown tables and PNGs, written atomically
    run.py             MilestoneRun (open_run): a notebook's run, full or smoke, and the files it saves
    variant_table.py   the variant table, pipeline accuracy and build stages of a build; deliverable 4's best rows
    breakdown.py       per-step queue / compute / network time of pipeline requests, run comparisons
    figures.py         the headline figures each notebook records
    scaling.py         notebook 03: the overload, the scale target, and whether scaling out raised goodput and cut p95
    plots.py           slide style, plain-millisecond log axes, the plots
    inputs.py          read back what the notebooks saved in a reports folder (NOTEBOOKS, read_reports)
    narrative.py       the report's sentences and the recommendation, from the recorded numbers
    deliverables.py    each assignment task / deliverable and the files that answer it
    claims.py          slide titles that are claims, built from the recorded numbers
    slide.py           Slide: one claim, one figure or small table, speaker notes; the deck's limits
    deck.py            deck_slides: the deck's story, slide by slide (title, the answer, 01-04, deliverable 4)
    t3_slides.py       the T3 slides of the deck, each with its table or plot and its answer in the notes
    html.py            build_report: reports/report.html, self-contained (plots as data URIs), the deck's order
    slides.py          build_slides: reports/slides.html, a reveal.js deck by nbconvert, reveal.js inlined
    browser.py         check_page / check_deck: open a page or a deck in headless Chromium offline
    deck_check.py      SlideCheck / DeckCheck: what each slide showed (fit, figure or table, words), problems

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
from .browser import PageCheck, check_deck, check_page, find_chromium
from .deck import deck_slides
from .deck_check import DeckCheck, SlideCheck
from .deliverables import DELIVERABLES
from .figures import build_figures, registry_figures, report_figures, scaling_figures
from .html import build_report
from .inputs import NOTEBOOKS, read_reports
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
from .scaling import (
    SCALING_VARIANTS,
    ScalingVerdict,
    capacity_rps,
    overload_rate,
    scale_target,
    scaling_variants,
    scaling_verdict,
)
from .slide import Slide
from .slides import build_slides
from .variant_table import (
    best_rows_table,
    fanout_table,
    pipeline_accuracy_table,
    stage_table,
    variant_table,
)
from .writers import reports_path, save_figure, write_table

__all__ = [
    "DELIVERABLES",
    "NOTEBOOKS",
    "PANEL_SIZE",
    "PARTS",
    "SCALING_VARIANTS",
    "SLIDE_STYLE",
    "SMOKE_LOAD",
    "DeckCheck",
    "LoadPlan",
    "MilestoneRun",
    "PageCheck",
    "ScalingVerdict",
    "Slide",
    "SlideCheck",
    "best_rows_table",
    "build_figures",
    "build_report",
    "build_slides",
    "capacity_rps",
    "check_deck",
    "check_page",
    "compare_runs",
    "deck_slides",
    "fanout_table",
    "find_chromium",
    "load_figures",
    "log_ms_ticks",
    "mark_smoke",
    "open_run",
    "overload_rate",
    "pipeline_accuracy_table",
    "plot_accuracy_vs_latency",
    "plot_step_breakdown",
    "read_reports",
    "registry_figures",
    "report_figures",
    "reports_path",
    "save_figure",
    "scale_target",
    "scaled_replicas",
    "scaling_figures",
    "scaling_variants",
    "scaling_verdict",
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
