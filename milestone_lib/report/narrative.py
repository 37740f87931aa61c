"""The report's words, written from the recorded numbers: one list of sentences per notebook.

Nothing here is typed by hand: every number in a sentence is read from a notebook's tables or
recorded figures, so a rerun on other profiles changes the words. A figure a notebook did not
record gives no sentence (never a made-up one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from ..contracts import STEPS
from .inputs import NotebookOutputs

__all__ = ["find_configuration", "findings", "headline_items", "recommendation", "t3_answers"]


def findings(outputs: NotebookOutputs) -> list[str]:
    """What the notebook found, in sentences (empty when it has not run)."""
    writers = {"01": _variant_findings, "02": _registry_findings, "03": _latency_findings, "04": _sweep_findings,
               "05": _optimum_findings}
    if not outputs.started:
        return []
    return [s for s in writers[outputs.spec.number](outputs) if s]


def headline_items(figures: Mapping[str, Any], *, limit: int = 40) -> list[tuple[str, str]]:
    """(name, value) pairs of the recorded figures, nested dicts flattened to `a.b`, for a table."""
    items: list[tuple[str, str]] = []
    for key, value in _flatten(figures):
        items.append((key, _format(value)))
        if len(items) >= limit:
            break
    return items


def recommendation(outputs: list[NotebookOutputs]) -> list[str]:
    """Which version of each step, at how many replicas and CPUs, and why; from notebook 05, else 04."""
    by_number = {o.spec.number: o for o in outputs}
    optimum = by_number.get("05")
    if optimum is not None and optimum.started:
        answers = t3_answers(optimum)
        words = answers.get("sentences", {}).get("recommendation")
        if answers.get("feasible") is False:
            nothing = (f"Nothing meets the SLA of {_format(answers.get('sla_ms'))} ms at "
                       f"{_format(answers.get('rate_rps'))} requests/s.")
            return [nothing, *([words] if words else [])]
        chosen = find_configuration(answers) or find_configuration(optimum.figures or {})
        if chosen is not None:
            return _configuration_sentences(chosen, answers, {**(optimum.figures or {}), **answers.get("figures", {})})
    sweep = by_number.get("04")
    if sweep is not None and sweep.present:
        best = _best_per_step(sweep.figures or {})
        if best:
            return ["Each step on its own, from notebook 04 (the pipeline optimum of notebook 05 is not produced yet):",
                    *(f"{_step_text(step, row)}." for step, row in best.items())]
    return []


def t3_answers(outputs: NotebookOutputs) -> dict[str, Any]:
    """Notebook 05's `05_t3_answers.json` (sentences, figures, recommendation), or {} before it ran."""
    return next((v for name, v in outputs.json_texts().items() if name.endswith("t3_answers.json")), {})


def find_configuration(document: Any) -> dict[str, Any] | None:
    """The first choice of both steps in `document`: nested (`detect: {variant...}`) or flat (`detect_variant`)."""
    for mapping in _mappings(document):
        if "detect_variant" in mapping and "classify_variant" in mapping:
            nested: dict[str, Any] = {step: {} for step in STEPS}
            for key, value in mapping.items():
                step, _, name = str(key).partition("_")
                if step in STEPS:
                    nested[step][name] = value
                else:
                    nested[key] = value
            return nested
        detect, classify = mapping.get("detect"), mapping.get("classify")
        if isinstance(detect, Mapping) and isinstance(classify, Mapping) and "variant" in detect and "variant" in classify:
            return dict(mapping)
    return None


def _variant_findings(outputs: NotebookOutputs) -> list[str]:
    figures = outputs.figures or {}
    sentences = []
    if "variants_built" in figures:
        sentences.append(f"{figures['variants_built']} variants built, {figures.get('variants_unavailable', 0)} not "
                         f"available on this machine.")
    variants = outputs.table("variants")
    if variants is not None and {"Step", "Accuracy", "Latency ms"} <= set(variants.columns):
        built = variants.dropna(subset=["Accuracy", "Latency ms"])
        for step in STEPS:
            rows = built[built["Step"] == step]
            if rows.empty:
                continue
            best, fastest = rows.loc[rows["Accuracy"].idxmax()], rows.loc[rows["Latency ms"].idxmin()]
            metric = best.get("Metric", "accuracy")
            sentences.append(f"{step}: most accurate {best['Variant']} ({metric} {best['Accuracy']:.3f}, "
                             f"{best['Latency ms']:.1f} ms per image); fastest {fastest['Variant']} "
                             f"({fastest['Latency ms']:.1f} ms, {metric} {fastest['Accuracy']:.3f}).")
    pair = figures.get("best_pipeline") or {}
    if pair.get("detector"):
        sentences.append(f"Best end-to-end pair: {pair['detector']} then {pair['classifier']} "
                         f"(mAP50 {_format(pair.get('mAP50'))}, mAP50-95 {_format(pair.get('mAP50-95'))}).")
    return sentences


def _registry_findings(outputs: NotebookOutputs) -> list[str]:
    f = outputs.figures or {}
    if "versions_in_registry" not in f:
        return []
    stored = (f"{f['versions_in_registry']} versions of {f.get('variants_in_registry')} variants in the registry "
              f"({_format(f.get('pushed_mb'))} MB pushed in {_format(f.get('push_seconds_total'))} s).")
    pulled = (f"Pulled back {f.get('pulled_variant')} (version {f.get('pulled_version')}): "
              f"{f.get('pulled_files_verified')} files verified against their sha256.")
    return [stored, pulled]


def _latency_findings(outputs: NotebookOutputs) -> list[str]:
    f = outputs.figures or {}
    if "slowest_step" not in f:
        return []
    step = f["slowest_step"]
    replicas = (f.get("replicas_after") or {}).get(step)
    slowest = (f"Most time-consuming step: {step} ({_format(f.get('slowest_step_ms_before'))} ms mean per request "
               f"at {_format(f.get('rate_rps'))} requests/s).")
    scaled = (f"Scaling {step} out to {replicas} replicas: p95 {_format(f.get('before_p95_ms'))} -> "
              f"{_format(f.get('after_p95_ms'))} ms, goodput {_format(f.get('before_goodput_rps'))} -> "
              f"{_format(f.get('after_goodput_rps'))} requests/s; {step} itself "
              f"{_format(f.get('slowest_step_ms_before'))} -> {_format(f.get('slowest_step_ms_after'))} ms.")
    sentences = [slowest, scaled]
    if f.get("oversubscribed"):
        sentences.append("The replicas shared CPU cores on this machine (oversubscribed), so the gain is bounded.")
    return sentences


def _sweep_findings(outputs: NotebookOutputs) -> list[str]:
    f = outputs.figures or {}
    sentences = []
    sla, rate = _first(f, "sla_ms", "latency_ms", "sla_latency_ms"), _first(f, "rate_rps", "sla_rate_rps")
    if sla is not None:
        sentences.append(f"SLA: p99 at most {_format(sla)} ms" + (f" at {_format(rate)} requests/s." if rate else "."))
    # The sweep's own sentences (profiling.describe_best: the budget, the source) when it recorded them.
    said = [s for s in f.get("best") or [] if isinstance(s, str)] if isinstance(f.get("best"), list) else []
    sentences += said or [f"Best configuration under the step SLA: {_step_text(step, row)}."
                          for step, row in _best_per_step(f).items()]
    return sentences + _error_sentences(f)


def _optimum_findings(outputs: NotebookOutputs) -> list[str]:
    answers = t3_answers(outputs)
    f = {**(outputs.figures or {}), **answers.get("figures", {})}
    sentences = []
    meeting = _first(f, "meeting_count", "feasible_count", "configurations_meeting_sla")
    if meeting is not None:
        total = f" of {_format(f['configurations'])}" if f.get("configurations") is not None else ""
        sla = (f" (p99 at most {_format(answers['sla_ms'])} ms at {_format(answers.get('rate_rps'))} requests/s)"
               if answers.get("sla_ms") is not None else "")
        sentences.append(f"{_format(meeting)}{total} configurations meet the SLA{sla}.")
    if f.get("hypervolume") is not None:
        sentences.append(f"Pareto front of cost against end-to-end accuracy: {_format(f.get('pareto_points'))} point(s), "
                         f"hypervolume {_format(f['hypervolume'])}.")
    if f.get("upstream_changes") is not None:
        sentences.append("The detector chosen upstream " + ("changes" if f["upstream_changes"] else "does not change")
                         + " the best classifier configuration downstream.")
    if f.get("milp_equals_enumeration") is not None:
        sentences.append(f"The MILP's optimum {'equals' if f['milp_equals_enumeration'] else 'differs from'} "
                         f"exhaustive enumeration ({_format(f.get('milp_seconds'))} s against "
                         f"{_format(f.get('enumeration_seconds'))} s).")
    return sentences + _error_sentences(f)


def _error_sentences(figures: Mapping[str, Any]) -> list[str]:
    """Prediction against measurement, e.g. `prediction_error_p99_median` (a fraction, as recorded)."""
    return [f"Prediction against measurement, {key.replace('_', ' ')}: {_format(value)}."
            for key, value in _flatten(figures)
            if "error" in key and isinstance(value, (int, float)) and not isinstance(value, bool)]


def _configuration_sentences(chosen: Mapping[str, Any], context: Mapping[str, Any],
                             figures: Mapping[str, Any]) -> list[str]:
    sentences = [f"{_step_text(step, chosen[step])}." for step in STEPS]
    known = {**chosen, **figures}  # the deployed check's numbers (its forecast too) are figures of notebook 05
    totals = [f"{label} {_format(known[key]) if not isinstance(known[key], bool) else ('yes' if known[key] else 'no')}"
              for key, label in
              (("cost", "cost (CPUs)"), ("accuracy", "end-to-end accuracy"), ("predicted_p99_ms", "predicted p99 ms"),
               ("sla_rule_p99_ms", "SLA rule bound ms"), ("measured_p99_ms", "measured p99 ms (deployed)"), ("meets_sla_every_repeat", "meets the SLA in every repeat:"))
              if known.get(key) is not None]
    if totals:
        sentences.append("Whole pipeline: " + ", ".join(totals) + ".")
    why = _first(chosen, "why", "reason") or (context.get("sentences") or {}).get("recommendation")
    if isinstance(why, str):
        sentences.append(why)
    return sentences


def _step_text(step: str, row: Mapping[str, Any]) -> str:
    parts = [f"{row.get('variant')}"]
    if row.get("replicas") is not None:
        parts.append(f"on {_format(row['replicas'])} replica(s) x {_format(row.get('cpu'))} CPU")
    if row.get("batch") is not None:
        parts.append(f"batch {_format(row['batch'])}")
    extra = [f"{label} {_format(row[key])}" for key, label in
             (("cost", "cost"), ("p99_ms", "p99 ms"), ("accuracy", "accuracy"), ("source", "source"))
             if row.get(key) is not None]
    return f"{step} {' '.join(parts)}" + (f" ({', '.join(extra)})" if extra else "")


def _best_per_step(figures: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Per step, a recorded best configuration: `best[step]`, `best_<step>` or `<step>_best` with a variant."""
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("best", "best_per_step", "best_configuration", "best_configurations"):
        value = figures.get(key)
        if isinstance(value, Mapping):
            found.update({s: v for s, v in value.items() if s in STEPS and isinstance(v, Mapping)})
    for step in STEPS:
        for key in (f"best_{step}", f"{step}_best"):
            if isinstance(figures.get(key), Mapping):
                found.setdefault(step, figures[key])
    return {s: found[s] for s in STEPS if s in found and "variant" in found[s]}


def _mappings(document: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping in a JSON document, depth first, the keys that name a choice first."""
    if isinstance(document, Mapping):
        yield document
        keys = sorted(document, key=lambda k: 0 if str(k) in ("recommendation", "chosen", "optimum") else 1)
        for key in keys:
            yield from _mappings(document[key])
    elif isinstance(document, list):
        for item in document:
            yield from _mappings(item)


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    return next((mapping[k] for k in keys if mapping.get(k) is not None), None)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value.is_integer():
            return f"{int(value):,}"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value[:8]) + (" ..." if len(value) > 8 else "")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
