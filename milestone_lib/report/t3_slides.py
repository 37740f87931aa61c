"""The T3 slides: one per question notebook 05 answered, each with its table or plot and its answer as notes.

how_many -> 05_meeting_sla.csv, pareto and marginal -> 05_pareto.png, what_determines -> 05_what_determines.csv,
upstream -> 05_upstream.csv, baselines -> 05_baselines.csv, check and rule -> 05_prediction_check.png
(else 05_check.csv). A sentence of `05_t3_answers.json` no slide claims goes to the notes of the last one.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .claims import (
    baselines_claim,
    check_claim,
    configuration_label,
    how_many_claim,
    number,
    pareto_claim,
    upstream_claim,
    what_determines_claim,
)
from .inputs import NotebookOutputs
from .slide import MAX_ROWS, Slide, compact, missing_text

__all__ = ["T3_SENTENCES", "t3_slides"]

T3_SENTENCES = {"how_many": "how_many", "pareto": "pareto", "marginal": "pareto", "what_determines": "what_determines",
                "upstream": "upstream", "baselines": "baselines", "check": "check", "rule": "check",
                "recommendation": "answer"}
"""Which slide's notes carry each sentence of the T3 answers (`recommendation`: the answer slide's)."""


def t3_slides(found: NotebookOutputs, answers: dict[str, Any]) -> list[Slide]:
    """How many meet the SLA, the Pareto front, what decides, upstream, baselines, the deployed check."""
    if not answers:
        what = "the T3 answers (05_t3_answers.json and its tables)"
        return [Slide("T3, the optimal configuration: not produced yet", placeholder=missing_text(what, found.spec),
                      anchor="nb05")]
    sentences = answers.get("sentences") or {}
    figures = {**(found.figures or {}), **(answers.get("figures") or {})}
    sla, rate, chosen = answers.get("sla_ms"), answers.get("rate_rps"), answers.get("recommendation") or {}

    def table(name: str, key: str) -> pd.DataFrame | None:
        saved = found.table(name)
        rows = (answers.get("tables") or {}).get(key)
        return saved if saved is not None else pd.DataFrame(rows) if rows else None

    def notes(key: str) -> list[str]:
        return [sentences[k] for k, slide in T3_SENTENCES.items() if slide == key and sentences.get(k)]

    slides = []
    meeting = table("05_meeting_sla", "meeting")
    slides.append(_slide(how_many_claim(figures, sla, rate), "How many configurations meet the SLA",
                         table=None if meeting is None else compact(meeting).head(MAX_ROWS), notes=notes("how_many"),
                         missing=missing_text("the configurations that meet the SLA (05_meeting_sla.csv)", found.spec)))
    front = table("05_pareto_front", "pareto")
    pareto = next((p for p in found.plots if "pareto" in p.name), None)
    slides.append(_slide(pareto_claim(front, figures), "Cost against accuracy: the Pareto front", plot=pareto,
                         table=None if pareto or front is None else compact(front).head(MAX_ROWS), notes=notes("pareto"),
                         missing=missing_text("the Pareto front (05_pareto.png)", found.spec)))
    scenarios = table("05_what_determines", "sensitivity")
    slides.append(_slide(what_determines_claim(scenarios), "What determines the optimum", table=_scenarios(scenarios),
                         notes=notes("what_determines"),
                         missing=missing_text("the optimum per rate and SLA (05_what_determines.csv)", found.spec)))
    upstream = table("05_upstream", "upstream")
    slides.append(_slide(upstream_claim(upstream, figures.get("upstream_changes")),
                         "Does the upstream detector change the best classifier", table=_upstream(upstream),
                         notes=notes("upstream"),
                         missing=missing_text("the best classifier per detector (05_upstream.csv)", found.spec)))
    baselines = table("05_baselines", "baselines")
    slides.append(_slide(baselines_claim(baselines, chosen), "Against the baselines", table=_baselines(baselines),
                         notes=notes("baselines"), missing=missing_text("the baselines (05_baselines.csv)", found.spec)))
    check = table("05_check", "check")
    plot = next((p for p in found.plots if "prediction_check" in p.name), None)
    shown = None if plot or check is None else _check(check)
    slides.append(_slide(check_claim(check, sla), "Checked against reality: deployed and measured", plot=plot,
                         table=shown, notes=notes("check"), missing=missing_text(
                             "the deployed check (05_check.csv, 05_prediction_check.png)", found.spec)))
    left = [text for key, text in sentences.items() if key not in T3_SENTENCES and text]
    if left:
        last = slides[-1]
        slides[-1] = Slide(last.title, last.lines, last.plot, last.table, last.placeholder, last.notes + left,
                           last.data, last.anchor)
    return slides


def _slide(claim: str | None, topic: str, *, missing: str, notes: list[str], plot=None,
           table: pd.DataFrame | None = None) -> Slide:
    """The claim with its plot or table; without either, the topic and what is missing."""
    if plot is None and (table is None or table.empty):
        return Slide(f"{topic}: not produced yet", placeholder=missing, notes=notes, anchor="nb05")
    return Slide(claim or topic, plot=plot, table=None if plot is not None else table, notes=notes, anchor="nb05")


def _scenarios(scenarios: pd.DataFrame | None) -> pd.DataFrame | None:
    """The optimum per rate (rows) and SLA (columns): `cost CPUs · accuracy`, a 3 × 3 grid for 9 scenarios."""
    if scenarios is None or scenarios.empty:
        return None
    if not {"rate_rps", "sla_ms", "cost", "accuracy"} <= set(scenarios.columns):
        return compact(scenarios).head(MAX_ROWS)
    cells = scenarios.assign(
        cell=[f"{number(c)} CPU{'' if c == 1 else 's'} · {a:.3f}" if feasible and not pd.isna(c) else "none meets it"
              for c, a, feasible in zip(scenarios["cost"], scenarios["accuracy"],
                                        scenarios.get("feasible", pd.Series(True, scenarios.index)).astype(bool))],
        rate=[f"{number(r)} req/s" for r in scenarios["rate_rps"]], sla=[f"SLA {number(s)} ms" for s in scenarios["sla_ms"]])
    grid = cells.pivot_table(index="rate", columns="sla", values="cell", aggfunc="first", sort=False)
    grid = grid.reindex(columns=sorted(grid.columns, key=lambda c: float(c.split()[1].replace(",", ""))))
    return grid.rename_axis(None, axis=1).reset_index().rename(columns={"rate": "Rate"}).head(MAX_ROWS)


def _upstream(upstream: pd.DataFrame | None) -> pd.DataFrame | None:
    if upstream is None or upstream.empty or "classify_variant" not in upstream:
        return None
    return pd.DataFrame({"Detector": upstream.get("detector", upstream.get("detect_variant")),
                         "Crops / image": upstream.get("crops_per_image"),
                         "Best classifier": upstream.apply(lambda r: configuration_label(r, "classify"), axis=1),
                         "Accuracy": upstream.get("accuracy"), "Cost (CPUs)": upstream.get("cost")}).head(MAX_ROWS)


def _baselines(baselines: pd.DataFrame | None) -> pd.DataFrame | None:
    if baselines is None or baselines.empty or "name" not in baselines:
        return None
    table = pd.DataFrame({"Baseline": baselines["name"],
                          "Detect": baselines.apply(lambda r: configuration_label(r, "detect"), axis=1),
                          "Cost (CPUs)": baselines.get("cost"), "Accuracy": baselines.get("accuracy"),
                          "p99 (ms)": baselines.get("predicted_p99_ms")})
    if "meets_sla" in baselines:
        table["Meets SLA"] = ["yes" if bool(v) else "no" for v in baselines["meets_sla"]]
    return table.head(MAX_ROWS)


def _check(check: pd.DataFrame) -> pd.DataFrame | None:
    columns = {"configuration": "Configuration", "forecast_p99_ms": "Forecast p99 (ms)",
               "measured_p99_ms": "Measured p99 (ms)", "goodput_rps": "Goodput (req/s)", "sla_attainment": "Within SLA"}
    present = [c for c in columns if c in check]
    return check[present].rename(columns=columns).head(MAX_ROWS) if "measured_p99_ms" in present else None
