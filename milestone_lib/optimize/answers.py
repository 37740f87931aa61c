"""The T3 answers as plain data and sentences: what notebook 05 saves and report 06 assembles.

`T3Answers.save(reports_dir)` writes `05_t3_answers.json` and `05_t3_answers.md`;
`load_t3_answers(reports_dir)` reads the JSON back (tables as lists of records).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MilestoneError
from ..files import atomic_write_text

__all__ = ["ANSWER_FILES", "FORECAST_TOLERANCE", "T3Answers", "load_t3_answers"]

FORECAST_TOLERANCE = 0.25
"""How far from the measured p99 a forecast may be, as a fraction of the forecast, to count as holding."""

ANSWER_FILES = {"json": "05_t3_answers.json", "md": "05_t3_answers.md"}

_TABLES = ("meeting", "pareto", "sensitivity", "objectives", "upstream", "baselines", "closest")
_TITLES = {
    "recommendation": "Recommendation",
    "how_many": "How many configurations meet the SLA?",
    "pareto": "Cost against end-to-end accuracy: the Pareto front",
    "what_determines": "What determines the optimum?",
    "upstream": "Does the detector chosen upstream change the best classifier downstream?",
    "baselines": "Against the baselines",
    "check": "Checked against reality",
    "rule": "How the end-to-end p99 is predicted",
}


def _step_label(row: dict[str, Any], step: str) -> str:
    if pd.isna(row.get(f"{step}_variant")):
        return ""
    return (f"{row[f'{step}_variant']} {int(row[f'{step}_replicas'])}x{row[f'{step}_cpu']:g} CPU "
            f"b{int(row[f'{step}_batch'])}")


def _compact(table: pd.DataFrame) -> pd.DataFrame:
    """A table for reading: each step's variant / replicas / CPU / batch in one column, the rest as is."""
    if "detect_variant" not in table:
        return table
    rows = table.to_dict("records")
    out = table[[c for c in table.columns if not c.startswith(("detect_", "classify_"))]].copy()
    out.insert(min(1, len(out.columns)), "detect", [_step_label(r, "detect") for r in rows])
    out.insert(min(2, len(out.columns)), "classify", [_step_label(r, "classify") for r in rows])
    return out


def _clean(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass
class T3Answers:
    """Numbers, tables and sentences answering T3, plus the recommendation (report 06 reads these)."""

    sla_ms: float
    rate_rps: float
    gateway_reserve_ms: float
    objective: str
    metric: str
    feasible: bool
    recommendation: dict[str, Any]
    """The chosen configuration as a flat row (detect_*, classify_*, cost, accuracy, predicted_p99_ms); {} if none."""
    figures: dict[str, Any]
    """Headline numbers: meeting_count, configurations, hypervolume, cross-check, upstream_changes, ..."""
    sentences: dict[str, str]
    """One paragraph per question (keys of `_TITLES`), written from the numbers."""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    configurations: dict[str, Any] = field(default_factory=dict)
    """name -> `Configuration` (the optimum and each baseline that has one), to deploy; not saved."""

    def attach_check(self, summary: pd.DataFrame) -> None:
        """Add the deployed measurements (`check.check_summary`) to the figures, tables and sentences."""
        from .words import check_words

        self.tables["check"] = summary
        self.sentences["check"] = check_words(summary, self.sla_ms, self.rate_rps)
        errors = summary["prediction_error"].abs()
        self.figures.update(
            check_configurations=len(summary),
            check_rule_bound_held=bool(summary["rule_bound_held"].all()) if "rule_bound_held" in summary else None,
            check_max_abs_prediction_error=None if errors.isna().all() else round(float(errors.max()), 4),
            check_forecasts_within_25pct=bool((errors <= FORECAST_TOLERANCE).all()),
            check_min_requests=int(summary["requests"].min()) if "requests" in summary and len(summary) else 0)
        chosen = summary[summary["configuration"] == "optimum"]
        if len(chosen):
            row = chosen.iloc[0]
            self.figures.update(
                measured_p99_ms=round(float(row["measured_p99_ms"]), 2),
                measured_p99_ci95_ms=None if pd.isna(row["p99_ci95_ms"]) else round(float(row["p99_ci95_ms"]), 2),
                predicted_p99_ms=round(float(row["forecast_p99_ms"]), 2),
                sla_rule_p99_ms=round(float(row["predicted_p99_ms"]), 2),
                prediction_error=round(float(row["prediction_error"]), 4),
                meets_sla_every_repeat=bool(row["meets_sla_every_repeat"]),
                goodput_rps=round(float(row["goodput_rps"]), 2), sla_attainment=round(float(row["sla_attainment"]), 4),
                repeats=int(row["repeats"]))

    def headline(self) -> dict[str, Any]:
        """The figures notebook 05 records: chosen configuration, p99 predicted and measured, counts, answers."""
        rec = self.recommendation
        chosen = {k: _clean(rec.get(k)) for k in ("detect_variant", "detect_replicas", "detect_cpu", "detect_batch",
                                                  "classify_variant", "classify_replicas", "classify_cpu",
                                                  "classify_batch", "cost", "accuracy")} if rec else None
        return {"sla_ms": self.sla_ms, "rate_rps": self.rate_rps, "objective": self.objective, "chosen": chosen,
                **json.loads(json.dumps(self.figures, default=_clean)),
                "recommendation": self.sentences.get("recommendation", ""),
                "upstream_answer": self.sentences.get("upstream", "")}

    def to_dict(self) -> dict[str, Any]:
        tables = {name: [{k: _clean(v) for k, v in row.items()} for row in table.to_dict("records")]
                  for name, table in self.tables.items()}
        return {"sla_ms": self.sla_ms, "rate_rps": self.rate_rps, "gateway_reserve_ms": self.gateway_reserve_ms,
                "objective": self.objective, "metric": self.metric, "feasible": self.feasible,
                "recommendation": {k: _clean(v) for k, v in self.recommendation.items()},
                "figures": json.loads(json.dumps(self.figures, default=_clean)), "sentences": dict(self.sentences),
                "tables": tables}

    def to_markdown(self) -> str:
        lines = [f"# T3: the optimal pipeline configuration ({self.sla_ms:g} ms p99 at {self.rate_rps:g} requests/s)",
                 "", f"Objective: {self.objective}; end-to-end accuracy is the measured pipeline {self.metric}.", ""]
        for key, title in _TITLES.items():
            if key in self.sentences:
                lines += [f"## {title}", "", self.sentences[key], ""]
                table = self.tables.get({"how_many": "meeting", "what_determines": "sensitivity"}.get(key, key))
                if table is not None and not table.empty:
                    lines += [_compact(table).head(15).to_markdown(index=False, floatfmt=".3g"), ""]
        if "closest" in self.tables and not self.tables["closest"].empty:
            lines += ["## Closest configurations", "",
                      _compact(self.tables["closest"]).to_markdown(index=False, floatfmt=".3g"), ""]
        return "\n".join(lines)

    def save(self, reports_dir: Path) -> dict[str, Path]:
        folder = Path(reports_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return {"json": atomic_write_text(folder / ANSWER_FILES["json"], json.dumps(self.to_dict(), indent=2) + "\n"),
                "md": atomic_write_text(folder / ANSWER_FILES["md"], self.to_markdown() + "\n")}


def load_t3_answers(reports_dir: Path) -> dict[str, Any]:
    """The answers notebook 05 saved in `reports_dir`, as plain data (tables as lists of records)."""
    path = Path(reports_dir) / ANSWER_FILES["json"]
    if not path.is_file():
        raise MilestoneError(f"no T3 answers at '{path}'; run notebooks/05_optimize_t3.ipynb first "
                             "(smoke=True writes reports/smoke/)")
    return json.loads(path.read_text())
