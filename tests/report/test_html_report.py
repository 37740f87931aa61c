"""report.html and slides.html from a reports folder filled through the real writers, opened in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.notebooks import NOTEBOOKS_DIR, run_notebook
from milestone_lib.report import (
    load_figures,
    open_run,
    plot_accuracy_vs_latency,
    plot_step_breakdown,
)
from milestone_lib.report.browser import check_page, find_chromium
from milestone_lib.report.html import build_report
from milestone_lib.report.inputs import read_reports
from milestone_lib.report.narrative import recommendation
from milestone_lib.report.slides import build_slides
from milestone_lib.settings import ProjectSettings

# Any attribute or CSS url that would make the browser fetch from another host.
_REMOTE = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)|(?:url\(\s*["']?\s*(?:https?:)?//)|(?:@import)""",
                     re.IGNORECASE)


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4, 3))
    axis.plot([1, 2, 4], [0.5, 0.7, 0.8], marker="o")
    axis.set_title(title)
    return figure


def _variants() -> pd.DataFrame:
    rows = [("yolov8n-onnx-fp32", "detect", "yolov8n", "onnx", "fp32", "mAP50", 0.91, 4.0),
            ("yolov8n-onnx-int8-static", "detect", "yolov8n", "onnx", "int8-static", "mAP50", 0.88, 2.1),
            ("resnet-tiny-onnx-fp32", "classify", "resnet-tiny", "onnx", "fp32", "top1", 0.95, 1.2),
            ("resnet-tiny-onnx-int8-dynamic", "classify", "resnet-tiny", "onnx", "int8-dynamic", "top1", 0.94, 0.7)]
    frame = pd.DataFrame(rows, columns=["Variant", "Step", "Model", "Format", "Precision", "Metric", "Accuracy",
                                        "Latency ms"])
    frame["Status"] = "built"
    return frame


def _breakdown(detect_ms: float) -> pd.DataFrame:
    parts = {"client": (0, 0, 0.4), "gateway": (0, 0.8, 0), "detect": (1.0, detect_ms, 0.3), "classify": (0.5, 2.0, 0.3)}
    frame = pd.DataFrame(parts, index=["queue_ms", "compute_ms", "network_ms"]).T
    frame["total_ms"] = frame.sum(axis=1)
    return frame


def _fill_01_to_03(settings: ProjectSettings, *, smoke: bool = False) -> None:
    """What notebooks 01-03 save, through the same run writers and plot functions, with small numbers."""
    variants = _variants()
    run = open_run("01_build_variants", smoke=smoke, settings=settings)
    run.write_table(variants, "variants", title="Variants: accuracy and latency", index=False)
    run.save_figure(plot_accuracy_vs_latency(variants, title="Variants"), "variants_accuracy_latency")
    pairs = pd.DataFrame({"detector": ["yolov8n-onnx-fp32"], "classifier": ["resnet-tiny-onnx-fp32"],
                          "mAP50": [0.83], "mAP50-95": [0.61]})
    run.write_table(pairs, "pipeline_accuracy", title="End-to-end pipeline accuracy", index=False)
    run.record({"variants_built": 4, "variants_unavailable": 0, "build_seconds": 61.0,
                "best_pipeline": {"detector": "yolov8n-onnx-fp32", "classifier": "resnet-tiny-onnx-fp32",
                                  "mAP50": 0.83, "mAP50-95": 0.61}})
    run = open_run("03_per_step_latency", smoke=smoke, settings=settings)
    before, after = _breakdown(12.0), _breakdown(7.0)
    run.write_table(before, "03_step_breakdown_before", title="Per-step breakdown, before scaling")
    run.save_figure(plot_step_breakdown({"before": before, "after": after}), "03_step_breakdown")
    run.record({"slowest_step": "detect", "rate_rps": 8.0, "oversubscribed": True, "before_p95_ms": 30.5,
                "after_p95_ms": 21.0, "before_goodput_rps": 7.9, "after_goodput_rps": 8.0,
                "slowest_step_ms_before": 13.3, "slowest_step_ms_after": 8.3, "replicas_after": {"detect": 2}})


def _fill_04_05(settings: ProjectSettings, *, detect_variant: str) -> None:
    run = open_run("04_scaling_sweep", settings=settings)
    table = pd.DataFrame({"Variant": [detect_variant] * 30, "Scale": range(1, 31), "Latency": [40.0] * 30,
                          "Cost": [f"{r}x1" for r in range(1, 31)], "Accuracy": [0.9] * 30})
    run.write_table(table, "04_detect_table", title="detect: Variant / Scale / Latency / Cost / Accuracy", index=False)
    run.save_figure(_figure("version vs accuracy and latency"), "04_accuracy_latency")
    run.save_figure(_figure("version vs accuracy and throughput"), "04_accuracy_throughput")
    run.record({"sla_ms": 500, "rate_rps": 20})
    run = open_run("05_optimize_t3", settings=settings)
    run.save_figure(_figure("Pareto front"), "05_pareto")
    run.write_table(pd.DataFrame({"cost": [1.5, 2.5], "accuracy": [0.55, 0.61]}), "05_meeting_sla", index=False)
    run.write_table(pd.DataFrame({"configuration": ["optimum"], "forecast_p99_ms": [190.0], "measured_p99_ms": [171.0],
                                  "meets_sla_every_repeat": [True]}), "05_check", index=False)
    # The shape of optimize.T3Answers.to_dict(): a flat recommendation row, headline figures, one paragraph a question.
    chosen = {"detect_variant": detect_variant, "detect_replicas": 2, "detect_cpu": 1.0, "detect_batch": 4,
              "classify_variant": "resnet-tiny-onnx-fp32", "classify_replicas": 1, "classify_cpu": 0.5,
              "classify_batch": 8, "cost": 2.5, "accuracy": 0.61, "predicted_p99_ms": 180.0}
    answers = {"sla_ms": 500.0, "rate_rps": 20.0, "feasible": True, "recommendation": chosen,
               "figures": {"meeting_count": 12, "configurations": 40, "upstream_changes": True},
               "sentences": {"recommendation": f"{detect_variant} is the cheapest that meets the SLA.",
                             "upstream": "Yes: a detector with more crops per image needs more classifier replicas.",
                             "what_determines": "At 10 requests/s the cheapest meets it; " * 12}}
    (settings.reports_dir / "05_t3_answers.json").write_text(json.dumps(answers))
    (settings.reports_dir / "05_t3_answers.md").write_text("# T3\n\n| rate | configurations |\n|---|---|\n| 20 | 12 |\n")
    run.record({"meeting_count": 12})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture()
def settings(tmp_path: Path) -> ProjectSettings:
    return ProjectSettings(artifacts_dir=tmp_path / "artifacts", reports_dir=tmp_path / "reports")


def test_report_with_only_01_to_03_says_what_is_missing(settings: ProjectSettings) -> None:
    _fill_01_to_03(settings)
    page = build_report(settings.reports_dir).read_text()
    assert "Not produced yet: run notebook 02" in page and "Not produced yet: run notebook 04" in page
    assert "Not produced yet: run notebook 05" in page  # the recommendation's placeholder
    assert "Most time-consuming step: detect (13.3 ms" in page
    assert page.count("data:image/png;base64,") == 2  # both plots embedded, none linked
    assert not _REMOTE.search(page)
    deck = build_slides(settings.reports_dir).read_text()
    assert "Not produced yet: run notebook 04" in deck and "Reveal.initialize" in deck
    assert not _REMOTE.search(deck)


def test_recommendation_and_words_follow_the_recorded_numbers(settings: ProjectSettings) -> None:
    _fill_01_to_03(settings)
    _fill_04_05(settings, detect_variant="yolov8n-onnx-fp32")
    page = build_report(settings.reports_dir).read_text()
    assert "detect yolov8n-onnx-fp32 on 2 replica(s) x 1 CPU" in page
    assert "12 of 40 configurations meet the SLA (p99 at most 500 ms at 20 requests/s)" in page
    assert "yolov8n-onnx-fp32 is the cheapest that meets the SLA." in page  # the why, from notebook 05's words
    assert "run notebook 04" not in page and "run notebook 05" not in page
    assert page.count("data:image/png;base64,") == 5
    assert "<td>20</td>" in page  # the T3 answers' Markdown table, rendered
    assert "<summary>All 2 tables of 05_optimize_t3 (CSV)</summary>" in page  # the answers quote them: folded
    assert "30 rows · 04_detect_table.csv" in page and "more rows</summary>" not in page  # short: not folded
    assert "measured p99 171 ms (forecast 190) against the 500 ms SLA" in page  # the deck's answer, in the report too
    deck = build_slides(settings.reports_dir).read_text()
    assert "The answer: 2.5 CPUs, accuracy 0.61, measured p99 171 ms within the 500 ms SLA" in deck
    # Each T3 answer is the speaker notes of its slide; a question without its table says what is missing.
    assert "Yes: a detector with more crops per image needs more classifier replicas." in deck
    assert deck.count('<aside class="notes">') >= 8
    assert "Does the upstream detector change the best classifier: not produced yet" in deck
    # Another run that chose another detector: the words change with it.
    _fill_04_05(settings, detect_variant="yolov8n-onnx-int8-static")
    assert "detect yolov8n-onnx-int8-static on 2 replica(s)" in " ".join(recommendation(read_reports(settings.reports_dir)))


def test_before_notebook_05_the_recommendation_is_notebook_04s_best_per_step(settings: ProjectSettings) -> None:
    run = open_run("04_scaling_sweep", settings=settings)
    best = {step: {"variant": f"{step}-v", "replicas": 3, "cpu": 0.5, "cost": 1.5, "p99_ms": 80.2, "source": "measured"}
            for step in ("detect", "classify")}
    run.record({"sla_ms": 500.0, "rate_rps": 20.0, "best": ["detect: detect-v keeps p99 within its budget."],
                "best_detect": best["detect"], "best_classify": best["classify"], "prediction_error_p99_median": 0.12})
    advice = recommendation(read_reports(settings.reports_dir))
    assert advice[0].startswith("Each step on its own, from notebook 04")
    assert advice[1:] == ["detect detect-v on 3 replica(s) x 0.5 CPU (cost 1.5, p99 ms 80.2, source measured).",
                          "classify classify-v on 3 replica(s) x 0.5 CPU (cost 1.5, p99 ms 80.2, source measured)."]
    page = build_report(settings.reports_dir).read_text()
    assert "detect: detect-v keeps p99 within its budget." in page  # the sweep's own sentence, not rewritten
    assert "Prediction against measurement, prediction error p99 median: 0.12." in page


def test_an_sla_nothing_meets_is_said_with_the_closest_configurations(settings: ProjectSettings) -> None:
    _fill_04_05(settings, detect_variant="yolov8n-onnx-fp32")
    answers = json.loads((settings.reports_dir / "05_t3_answers.json").read_text())
    answers.update(feasible=False, sla_ms=5.0, recommendation={},
                   sentences={"recommendation": "No configuration keeps p99 within 5 ms; the closest: 42 ms."})
    (settings.reports_dir / "05_t3_answers.json").write_text(json.dumps(answers))
    (settings.reports_dir / "05_t3_answers.md").write_text("## Closest configurations\n\n| p99 ms |\n|---|\n| 42 |\n")
    page = build_report(settings.reports_dir).read_text()
    assert "Nothing meets the SLA of 5 ms at 20 requests/s." in page
    assert "the closest: 42 ms" in page and "<td>42</td>" in page
    assert "Not produced yet: run notebook 01" in page  # the others' placeholders stay


@pytest.mark.skipif(find_chromium() is None, reason="needs headless Chromium: apt-get install chromium")
def test_report_and_slides_open_offline_with_every_image_shown(settings: ProjectSettings) -> None:
    _fill_01_to_03(settings)
    _fill_04_05(settings, detect_variant="yolov8n-onnx-fp32")
    report = check_page(build_report(settings.reports_dir))
    slides = check_page(build_slides(settings.reports_dir))
    assert report.images == 5 and report.broken_images == [], report.summary()
    assert slides.images >= 5 and slides.broken_images == [], slides.summary()
    assert report.external_requests == [] and slides.external_requests == []
    assert report.requests[0].startswith("file://")  # requests are recorded: the check could fail
    assert slides.slides is not None and slides.slides >= 10  # reveal.js ran and laid out the deck
    assert slides.console_errors == [], slides.console_errors


def test_notebook_06_assembles_the_smoke_reports_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = ProjectSettings(artifacts_dir=tmp_path / "artifacts", reports_dir=tmp_path / "reports")
    _fill_01_to_03(base, smoke=True)
    monkeypatch.setenv("MILESTONE_REPORTS_DIR", str(tmp_path / "reports"))
    run_notebook(NOTEBOOKS_DIR / "06_report.ipynb", parameters={"smoke": True, "check_in_browser": False},
                 output_dir=tmp_path / "executed")
    smoke = tmp_path / "reports" / "smoke"
    figures = load_figures("06_report", reports_dir=smoke)
    assert figures["notebooks_included"] == ["01_build_variants", "03_per_step_latency"]
    assert figures["notebooks_missing"] == ["02_model_registry", "04_scaling_sweep", "05_optimize_t3"]
    assert figures["runs"] == ["smoke"] and figures["plots"] == 2 and figures["browser_checked"] is False
    assert "Run: <b>smoke</b>" in (smoke / "report.html").read_text()
    assert (smoke / "slides.html").stat().st_size > 0 and (smoke / "slides.ipynb").is_file()
    assert not (tmp_path / "reports" / "report.html").exists()  # a smoke run leaves the full run's folder alone


@pytest.mark.skipif(find_chromium() is None, reason="needs headless Chromium: apt-get install chromium")
def test_the_browser_check_sees_a_remote_image_and_a_missing_one(tmp_path: Path) -> None:
    # Chromium resolves no name and its proxy refuses everything: the remote request is recorded, and goes nowhere.
    page = tmp_path / "page.html"
    page.write_text('<html><body><img alt="remote" src="http://remote.invalid/plot.png">'
                    '<img alt="missing" src="missing.png"></body></html>')
    check = check_page(page)
    assert check.images == 2 and sorted(check.broken_images) == ["missing", "remote"]
    assert check.external_requests == ["http://remote.invalid/plot.png"] and not check.ok
