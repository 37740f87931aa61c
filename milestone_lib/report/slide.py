"""One slide of the deck as data, and the limits every slide keeps (the deck's modules and its check share them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..contracts import STEPS
from .claims import configuration_label
from .inputs import NotebookSpec, PlotFile

__all__ = ["MAX_ROWS", "MAX_WORDS", "Slide", "compact", "missing_text"]

MAX_WORDS = 60
"""Words of running text a slide may carry outside its table or figure (title included, notes not)."""
MAX_ROWS = 8
"""Rows of a table on a slide (the CSV has all of them)."""


@dataclass(frozen=True)
class Slide:
    """One claim (the title), a line or two, at most one plot or one small table, and speaker notes."""

    title: str
    lines: list[str] = field(default_factory=list)
    plot: PlotFile | None = None
    table: pd.DataFrame | None = None
    placeholder: str = ""
    """What is missing and which notebook writes it ("Not produced yet: run notebook 05 ...")."""
    notes: list[str] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)
    """`data-*` attributes of the slide's section (e.g. `deliverable: vslca`)."""
    anchor: str = ""
    """The section of report.html that tells the same part of the story."""


def missing_text(what: str, spec: NotebookSpec) -> str:
    """`Not produced yet: run notebook 05 (05_optimize_t3) to get <what>.`"""
    return f"Not produced yet: run notebook {spec.number} ({spec.notebook}) to get {what}."


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """A configurations table for a slide: each step in one column (`variant r×cpu bN`), cost, accuracy, p99."""
    if table.empty or "detect_variant" not in table:
        return table
    out = pd.DataFrame({step.capitalize(): table.apply(lambda r, s=step: configuration_label(r, s), axis=1)
                        for step in STEPS})
    for column, name in (("cost", "Cost (CPUs)"), ("accuracy", "Accuracy"), ("predicted_p99_ms", "p99 (ms)")):
        if column in table:
            out[name] = table[column].to_numpy()
    return out
