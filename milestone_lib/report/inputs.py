"""What the notebooks left in a reports folder, read back for the report and the slides.

Each notebook saves through `MilestoneRun`: tables as `<name>.csv` + `<name>.md` (the Markdown
headed by the table's title), plots as `<name>.png`, and last its headline figures in
`<notebook>.figures.json`. `NOTEBOOKS` says which files belong to which notebook (by name
prefix, so a table a notebook adds later is picked up without a change here) and which
assignment question it answers; `read_reports` reads all of it, and marks a notebook whose
figures file is missing as not produced yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["NOTEBOOKS", "NotebookOutputs", "NotebookSpec", "PlotFile", "TableFile", "find_plot", "read_reports"]


@dataclass(frozen=True)
class NotebookSpec:
    """A milestone notebook: its name, what it answers, and the name prefixes of the files it writes."""

    notebook: str
    title: str
    answers: str
    prefixes: tuple[str, ...]
    expected: tuple[str, ...] = ()
    """Files a complete run writes (shown in the placeholder while it has not run)."""

    @property
    def number(self) -> str:
        return self.notebook[:2]


NOTEBOOKS: tuple[NotebookSpec, ...] = (
    NotebookSpec("01_build_variants", "Model variants: accuracy and latency", "T1 (variants), deliverables 1, 3",
                 ("variants", "pipeline_accuracy", "build_stages", "01_"),
                 ("variants.csv", "pipeline_accuracy.csv", "variants_accuracy_latency.png")),
    NotebookSpec("02_model_registry", "The model registry", "T1 (registry), deliverable 1",
                 ("registry_", "02_"), ("registry_variants.csv",)),
    NotebookSpec("03_per_step_latency", "Per-step latency and horizontal scaling",
                 "T1 of part 2 (per-step latency, most time-consuming step), deliverable 1 (scaling in the notebook)",
                 ("03_step_breakdown_before", "03_step_breakdown_after", "03_scaling", "03_"),
                 ("03_step_breakdown_before.csv", "03_step_breakdown.png")),
    NotebookSpec("04_scaling_sweep", "Scaling sweep: Variant / Scale / Latency / Cost / Accuracy per step",
                 "T2, deliverables 3 and 4", ("04_detect", "04_classify", "04_pipeline", "04_"),
                 ("04_candidates.csv", "per-step tables", "accuracy vs latency and vs throughput plots")),
    NotebookSpec("05_optimize_t3", "The optimal configuration (T3), checked against reality",
                 "T3, deliverable 5", ("05_",), ("05_t3_answers.md", "05_t3_answers.json", "Pareto plot")),
)
"""The notebooks whose outputs the report assembles, in order (06 is the report itself)."""


_RAW_TABLES = {"04_service_profiles", "04_fanout", "04_candidates"}


@dataclass(frozen=True)
class TableFile:
    name: str
    title: str
    frame: pd.DataFrame
    path: Path


@dataclass(frozen=True)
class PlotFile:
    name: str
    path: Path

    @property
    def caption(self) -> str:
        return self.name.replace("_", " ")


@dataclass
class NotebookOutputs:
    """One notebook's files in a reports folder; `present` is False until its figures are recorded."""

    spec: NotebookSpec
    figures: dict[str, Any] | None = None
    run: str | None = None
    recorded_at: str | None = None
    document: dict[str, Any] = field(default_factory=dict)
    tables: list[TableFile] = field(default_factory=list)
    plots: list[PlotFile] = field(default_factory=list)
    texts: dict[str, Path] = field(default_factory=dict)
    """Other Markdown / JSON files of the notebook (e.g. `05_t3_answers.md`), by file name."""

    @property
    def present(self) -> bool:
        """The notebook ran to its end (its figures are recorded)."""
        return self.figures is not None

    @property
    def started(self) -> bool:
        """Some of its files exist (a run that stopped half-way leaves tables but no figures)."""
        return self.present or bool(self.tables or self.plots or self.texts)

    def table(self, name: str) -> pd.DataFrame | None:
        return next((t.frame for t in self.tables if t.name == name), None)

    def json_texts(self) -> dict[str, dict[str, Any]]:
        """The notebook's other JSON files (e.g. `04_sweep.json`, `05_t3_answers.json`), parsed, by file name."""
        found = {}
        for name, path in self.texts.items():
            if name.endswith(".json"):
                value = json.loads(path.read_text())
                found[name] = value if isinstance(value, dict) else {"value": value}
        return found

    def provenance(self) -> dict[str, str]:
        """Which run (full / smoke), machine and backend the files came from, and when they were recorded."""
        sources = [self.document, self.figures or {}, *self.json_texts().values()]
        sources += [s["spec"] for s in list(sources) if isinstance(s.get("spec"), dict)]  # e.g. 04_sweep.json

        def pick(*keys: str) -> str:
            for source in sources:
                for key in keys:
                    if source.get(key) not in (None, "", {}):
                        return _describe(source[key])
            return "not recorded"

        return {"run": self.run or "not recorded", "machine": pick("machine", "machine_description"),
                "backend": pick("backend", "backend_kind"), "recorded": self.recorded_at or "not recorded"}


def read_reports(reports_dir: Path) -> list[NotebookOutputs]:
    """The outputs of every notebook in `NOTEBOOKS`, read from `reports_dir` (missing ones empty)."""
    folder = Path(reports_dir)
    claimed: set[str] = set()
    outputs = []
    for spec in NOTEBOOKS:
        found = NotebookOutputs(spec=spec)
        # By number: a notebook may be renamed (04_scaling_sla / 04_scaling_sweep) without breaking the report.
        recorded = sorted(folder.glob(f"{spec.number}_*.figures.json")) if folder.is_dir() else []
        figures_path = recorded[0] if recorded else folder / f"{spec.notebook}.figures.json"
        claimed.add(figures_path.name)
        if figures_path.is_file():
            document = json.loads(figures_path.read_text())
            found.document = {k: v for k, v in document.items() if k != "figures"}
            found.figures = document.get("figures", {})
            found.run = document.get("run")
            found.recorded_at = datetime.fromtimestamp(figures_path.stat().st_mtime, tz=UTC).strftime(
                "%Y-%m-%d %H:%M UTC")
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.name in claimed or not path.is_file() or not path.name.startswith(spec.prefixes):
                continue
            if path.suffix == ".csv":
                claimed.update({path.name, path.with_suffix(".md").name})
                found.tables.append(TableFile(path.stem, _title(path.with_suffix(".md"), path.stem),
                                              pd.read_csv(path), path))
            elif path.suffix == ".png":
                claimed.add(path.name)
                found.plots.append(PlotFile(path.stem, path))
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.name not in claimed and path.suffix in (".md", ".json") and path.name.startswith(spec.prefixes):
                claimed.add(path.name)
                found.texts[path.name] = path
        found.tables.sort(key=lambda table: _table_rank(spec, table.name))
        outputs.append(found)
    return outputs


def _table_rank(spec: NotebookSpec, name: str) -> tuple[int, bool, str]:
    """The notebook's own order (its prefixes), the sweep's raw data files (the contract's) last."""
    prefix = next(i for i, p in enumerate(spec.prefixes) if name.startswith(p))
    return prefix, name in _RAW_TABLES, name


def find_plot(outputs: list[NotebookOutputs], *words: str, notebook: str | None = None) -> PlotFile | None:
    """The first plot whose name holds every word (e.g. "accuracy", "throughput"), in notebook order."""
    for found in outputs:
        if notebook and found.spec.notebook != notebook:
            continue
        for plot in found.plots:
            if all(word in plot.name.lower() for word in words):
                return plot
    return None


def _title(markdown: Path, fallback: str) -> str:
    """The `# title` line `write_table` put on the Markdown table, without the smoke mark."""
    title = fallback
    if markdown.is_file():
        first = markdown.read_text().split("\n", 1)[0]
        if first.startswith("# "):
            title = first[2:].replace(" (smoke run)", "").strip()
    if title == fallback:  # no title given: "04_detect_table" reads "Detect table"
        words = fallback.split("_")
        text = " ".join(words[1:] if words[0].isdigit() and len(words) > 1 else words)
        title = text[:1].upper() + text[1:]
    return title


def _describe(value: Any) -> str:
    """A short one-line text of a recorded value (a machine description is a dict)."""
    if isinstance(value, dict) and "cpu_model" in value:  # profiling.describe_machine()
        return (f"{value.get('cores')} cores ({value.get('cpu_model')}), {value.get('memory_gib')} GiB, "
                f"CPU quota: {value.get('cpu_quota')}")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_describe(v)}" for k, v in list(value.items())[:5])
    return str(value)
