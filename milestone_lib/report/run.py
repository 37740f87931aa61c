"""A milestone run, full or smoke: where it writes, how its titles read, and how much load it sends.

Every notebook opens one (`open_run("01_build_variants", smoke=smoke)`) and saves through it:
tables, figures, and last the headline figures (`run.record(...)`, one JSON file per notebook).
A smoke run writes to its own folders (`settings.run_settings`: `reports/smoke/`,
`artifacts/smoke/`) and says "smoke" in every table and plot title, so it never overwrites a
full run nor passes for one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MilestoneError
from ..files import atomic_write_text
from ..profiling.machine import describe_machine
from ..settings import ProjectSettings, run_settings
from .plots import mark_smoke
from .writers import save_figure, write_table

__all__ = ["SMOKE_LOAD", "LoadPlan", "MilestoneRun", "load_figures", "open_run", "scaled_replicas"]


@dataclass(frozen=True)
class LoadPlan:
    """The open-loop load of a notebook: requests per second, measured seconds, warm-up seconds."""

    rate: float
    duration_s: float
    warmup_s: float


SMOKE_LOAD = LoadPlan(rate=5.0, duration_s=3.0, warmup_s=1.0)
"""The most a smoke run sends: enough requests to fill every window, over in seconds."""


@dataclass(frozen=True)
class MilestoneRun:
    """One notebook's run: its settings (full or smoke folders) and the writers it saves through."""

    notebook: str
    smoke: bool
    settings: ProjectSettings

    @property
    def reports_dir(self) -> Path:
        return self.settings.reports_dir

    @property
    def artifacts_dir(self) -> Path:
        return self.settings.artifacts_dir

    @property
    def variants_dir(self) -> Path:
        return self.settings.variants_dir

    @property
    def figures_path(self) -> Path:
        return _figures_path(self.notebook, self.reports_dir)

    def title(self, text: str) -> str:
        """`text`, marked "(smoke run)" on a smoke run."""
        return f"{text} (smoke run)" if self.smoke else text

    def write_table(self, table: pd.DataFrame, name: str, *, title: str | None = None, index: bool = True,
                    floatfmt: str = ".2f") -> dict[str, Path]:
        """`<reports>/<name>.{csv,md}`; the Markdown is headed by the title (default: the name)."""
        return write_table(table, name, reports_dir=self.reports_dir, index=index, floatfmt=floatfmt,
                           title=self.title(title or name))

    def save_figure(self, figure: Any, name: str) -> Path:
        """`<reports>/<name>.png`; a smoke run's figure says so in its title."""
        if self.smoke:
            mark_smoke(figure)
        return save_figure(figure, name, reports_dir=self.reports_dir)

    def record(self, figures: Mapping[str, Any], *, backend: str | None = None) -> dict[str, Any]:
        """Write the headline figures to `<reports>/<notebook>.figures.json`, with the machine they were measured
        on and the deployment backend (`backend`, else the figures' own, else none); returns the figures."""
        plain = json.loads(json.dumps(dict(figures), default=_plain))
        document = {"notebook": self.notebook, "run": "smoke" if self.smoke else "full", "machine": describe_machine(),
                    "backend": backend or plain.get("backend") or "none (nothing deployed)", "figures": plain}
        atomic_write_text(self.figures_path, json.dumps(document, indent=2) + "\n")
        return plain

    def load_plan(self, *, rate: float, duration_s: float, warmup_s: float) -> LoadPlan:
        """The notebook's load parameters; on a smoke run capped at `SMOKE_LOAD`."""
        if not self.smoke:
            return LoadPlan(rate=rate, duration_s=duration_s, warmup_s=warmup_s)
        return LoadPlan(rate=min(rate, SMOKE_LOAD.rate), duration_s=min(duration_s, SMOKE_LOAD.duration_s),
                        warmup_s=min(warmup_s, SMOKE_LOAD.warmup_s))


def open_run(notebook: str, *, smoke: bool = False, settings: ProjectSettings | None = None) -> MilestoneRun:
    """The run of `notebook` (e.g. "01_build_variants"): a smoke run gets the smoke folders."""
    return MilestoneRun(notebook=notebook, smoke=smoke, settings=run_settings(smoke=smoke, settings=settings))


def _figures_path(notebook: str, reports_dir: Path) -> Path:
    return Path(reports_dir) / f"{notebook}.figures.json"


def load_figures(notebook: str, *, reports_dir: Path) -> dict[str, Any]:
    """The figures a notebook's run recorded in `reports_dir`."""
    path = _figures_path(notebook, reports_dir)
    if not path.is_file():
        raise MilestoneError(f"no figures recorded at '{path}'; run notebook {notebook} first "
                             "(`make milestone`, or `make milestone SMOKE=1` for reports/smoke/)")
    return json.loads(path.read_text())["figures"]


def scaled_replicas(current: int, requested: int) -> int:
    """Replicas to scale a step to: `requested`, but at least one more than it has (a scale-out)."""
    return max(requested, current + 1)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"figure value {value!r} of type {type(value).__name__} is not JSON; record numbers and text")
