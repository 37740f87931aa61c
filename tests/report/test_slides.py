"""The deck a class follows in ten minutes: built from a reports folder of notebooks 01-05, shown in Chromium.

`_write_reports` fills a folder the way the notebooks do (the run writers, the real column names of
`04_<step>_table.csv`, `05_*.csv` and `05_t3_answers.json`), with small numbers; `check_deck` then shows
each slide at 1280 x 720 and the tests hold the deck to issue 21's rules.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.report import (
    best_rows_table,
    check_deck,
    deck_slides,
    find_chromium,
    open_run,
    read_reports,
)
from milestone_lib.report.deck_check import SlideCheck, deck_problems
from milestone_lib.report.slides import build_slides, reveal_assets
from milestone_lib.report.variant_table import BEST_ROWS_COLUMNS
from milestone_lib.settings import ProjectSettings

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="needs headless Chromium: apt-get install chromium")
DETECTORS = ["yolov8s-160-onnx-fp32", "yolov8s-96-onnx-fp32", "yolov8n-160-onnx-fp32", "yolov8n-96-onnx-fp32"]
CLASSIFIERS = ["resnet-small-onnx-int8-static", "resnet-small-onnx-fp32", "resnet-tiny-onnx-fp32",
               "resnet-tiny-onnx-int8-static"]
LONG = ("At 10 requests/s the cheapest configuration meets the SLA with room to spare, and the detector decides "
        "both the accuracy and most of the latency; ") * 6  # ~120 words: notes, never on the slide


def _plot(title: str, size: tuple[float, float] = (14, 5)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=size)
    axis.plot([1, 2, 4], [0.5, 0.7, 0.8], marker="o")
    axis.set_title(title)
    return figure


def _step_table(step: str, variants: list[str], accuracy: list[float], base_ms: list[float]) -> pd.DataFrame:
    """`04_<step>_table.csv`: every variant x replicas x CPU, p99 falling with cost, a budget column."""
    budget = {"detect": 270.0, "classify": 180.0}[step]
    rows = []
    for variant, acc, ms in zip(variants, accuracy, base_ms):
        for replicas in (1, 2, 3, 4):
            for cpu in (0.25, 0.5, 1.0, 2.0):
                p99 = ms / (replicas * cpu) ** 0.7
                rows.append({"Variant": variant, "Format": "onnx", "Precision": variant.rsplit("-", 1)[-1],
                             "Scale": replicas, "CPU per replica": cpu, "Cost": replicas * cpu, "p50 ms": p99 / 4,
                             "p95 ms": p99 / 1.5, "p99 ms": p99, "Max throughput (req/s)": 40 * replicas * cpu / ms * 10,
                             "Accuracy": acc, "Meets step SLA": p99 <= budget,
                             "Source": "measured" if replicas == 1 else "predicted",
                             **({"Upstream detector": DETECTORS[2]} if step == "classify" else {}),
                             "Predicted p99 ms": p99, "Trace": "run 1: saturation 4 windows"})
    return pd.DataFrame(rows)


def _configuration(detect: str, d_replicas: int, classify: str, c_replicas: int, *, accuracy: float,
                   p99: float) -> dict:
    """A flat configuration row, as the optimizer writes them (`detect_*`, `classify_*`, cost, accuracy, p99)."""
    return {"detect_variant": detect, "detect_cpu": 0.25, "detect_batch": 8, "detect_replicas": d_replicas,
            "detect_cost": 0.25 * d_replicas, "detect_p99_ms": p99 - 60, "detect_source": "predicted",
            "classify_variant": classify, "classify_cpu": 0.25, "classify_batch": 16, "classify_replicas": c_replicas,
            "classify_cost": 0.25 * c_replicas, "classify_p99_ms": 10.0, "classify_source": "predicted",
            "cost": 0.25 * (d_replicas + c_replicas), "accuracy": accuracy, "predicted_p99_ms": p99}


def _write_01_to_04(settings: ProjectSettings) -> None:
    run = open_run("01_build_variants", settings=settings)
    variants = pd.DataFrame({"Variant": DETECTORS + CLASSIFIERS, "Step": ["detect"] * 4 + ["classify"] * 4,
                             "Metric": ["mAP50"] * 4 + ["top1"] * 4,
                             "Accuracy": [0.95, 0.75, 0.61, 0.43, 0.849, 0.846, 0.767, 0.760],
                             "Latency ms": [20.0, 9.0, 5.0, 2.4, 0.4, 0.5, 0.2, 0.15], "Status": "built"})
    run.write_table(variants, "variants", title="Variants: accuracy and latency", index=False)
    run.save_figure(_plot("Variants: accuracy vs latency"), "variants_accuracy_latency")
    run.write_table(pd.DataFrame({"detector": DETECTORS[:2], "classifier": CLASSIFIERS[:2], "mAP50": [0.72, 0.55],
                                  "mAP50-95": [0.52, 0.34]}), "pipeline_accuracy", index=False)
    run.record({"variants_built": 8, "variants_unavailable": 0,
                "best_pipeline": {"detector": DETECTORS[0], "classifier": CLASSIFIERS[0], "mAP50": 0.72,
                                  "mAP50-95": 0.52}})
    run = open_run("02_model_registry", settings=settings)
    run.record({"variants_pushed": 8, "versions_in_registry": 8, "variants_in_registry": 8, "pushed_mb": 91.5,
                "push_seconds_total": 1.2, "pulled_variant": CLASSIFIERS[0], "pulled_version": "v1",
                "pulled_files_verified": 1, "images_in_registry": 6, "images_size_mb_sum": 2100.0,
                "images_uploaded_mb": 380.0})
    run = open_run("03_per_step_latency", settings=settings)
    run.save_figure(_plot("Per-step breakdown"), "03_step_breakdown")
    run.record({"slowest_step": "detect", "rate_rps": 20.0, "oversubscribed": True, "before_p95_ms": 23.4,
                "after_p95_ms": 21.0, "before_goodput_rps": 20.0, "after_goodput_rps": 20.0,
                "slowest_step_ms_before": 10.4, "slowest_step_ms_after": 8.1, "replicas_after": {"detect": 2}})
    run = open_run("04_scaling_sweep", settings=settings)
    run.write_table(_step_table("detect", DETECTORS, [0.66, 0.42, 0.29, 0.19], [900.0, 300.0, 120.0, 60.0]),
                    "04_detect_table", index=False)
    run.write_table(_step_table("classify", CLASSIFIERS, [0.849, 0.846, 0.767, 0.760], [9.0, 9.5, 7.0, 6.5]),
                    "04_classify_table", index=False)
    run.write_table(pd.DataFrame({"variant": DETECTORS[2], "cpu": 1.0, "replicas": [1, 2, 3, 4],
                                  "max_throughput_rps": [160.0, 318.0, 470.0, 620.0], "source": "predicted",
                                  "efficiency": [1.0, 0.99, 0.98, 0.97]}), "04_efficiency", index=False)
    for name in ("04_accuracy_vs_latency", "04_accuracy_vs_throughput", "04_cost_vs_p99"):
        run.save_figure(_plot(name), name)
    (settings.reports_dir / "04_sweep.json").write_text(json.dumps({"spec": {"sla": {
        "latency_ms": 500.0, "rate_rps": 20.0, "gateway_reserve_ms": 50.0, "step_weights": {"detect": 0.6, "classify": 0.4}}}}))
    run.record({"sla_ms": 500.0, "rate_rps": 20.0, "step_budgets_ms": {"detect": 270.0, "classify": 180.0},
                "best": ["detect: yolov8n-160-onnx-fp32 on 1 replica(s) x 0.25 CPU keeps p99 within its 270 ms budget."]})


def _write_05(settings: ProjectSettings, *, check: bool = True) -> None:
    run = open_run("05_optimize_t3", settings=settings)
    chosen = _configuration(DETECTORS[0], 2, CLASSIFIERS[0], 1, accuracy=0.5226, p99=462.0)
    meeting = [chosen] + [_configuration(DETECTORS[i % 2], 2 + i // 2, CLASSIFIERS[i % 4], 1 + i % 2,
                                         accuracy=0.52 - 0.01 * i, p99=450.0 - 10 * i) for i in range(11)]
    run.write_table(pd.DataFrame(meeting), "05_meeting_sla", index=False)
    front = pd.DataFrame([_configuration(DETECTORS[1], 1, CLASSIFIERS[0], 1, accuracy=0.344, p99=420.0), chosen])
    front["extra_cpus"], front["extra_accuracy"] = [None, 0.25], [None, 0.178]
    run.write_table(front, "05_pareto_front", index=False)
    run.save_figure(_plot("Pareto front", (10, 7)), "05_pareto")
    scenarios = pd.DataFrame([{**_configuration(DETECTORS[0], r, CLASSIFIERS[0], 1, accuracy=0.5226, p99=sla * 0.8),
                               "name": f"{rate} rps, {sla} ms", "rate_rps": rate, "sla_ms": float(sla), "feasible": True}
                              for r, rate in ((1, 10), (2, 20), (3, 40)) for sla in (250, 500, 1000)])
    run.write_table(scenarios, "05_what_determines", index=False)
    upstream = pd.DataFrame([{**_configuration(d, 1, CLASSIFIERS[i % 2], 1, accuracy=0.5 - 0.1 * i, p99=300.0),
                              "detector": d, "feasible": True, "crops_per_image": 5.8 - i} for i, d in enumerate(DETECTORS)])
    run.write_table(upstream, "05_upstream", index=False)
    baselines = pd.DataFrame([{**_configuration(DETECTORS[3], 1, CLASSIFIERS[3], 1, accuracy=0.109, p99=93.0),
                               "name": "static smallest", "meets_sla": True, "same_as_optimum": False},
                              {**chosen, "name": "static most accurate", "meets_sla": True, "same_as_optimum": True}])
    run.write_table(baselines, "05_baselines", index=False)
    if check:
        run.write_table(pd.DataFrame({"configuration": ["optimum"], "forecast_p99_ms": [475.0],
                                      "measured_p99_ms": [415.0], "goodput_rps": [20.0], "sla_attainment": [1.0],
                                      "meets_sla_every_repeat": [True]}), "05_check", index=False)
        run.save_figure(_plot("Predicted vs measured p99", (10, 5.5)), "05_prediction_check")
    sentences = {"recommendation": "Deploy yolov8s-160-onnx-fp32 on 2 x 0.25 CPU then resnet-small on 1 x 0.25 CPU.",
                 "how_many": "12 of the 4032 configurations on the grid meet 500 ms p99 at 20 requests/s.",
                 "pareto": "2 configurations are Pareto-optimal.", "marginal": "+0.25 CPU buys +0.178 mAP50-95.",
                 "what_determines": LONG, "upstream": "Yes: the 4 detector variants lead to 2 classifiers.",
                 "baselines": "static smallest: -0.414 accuracy against the optimum.",
                 "check": "Deployed and driven with Poisson load: measured p99 415 ms against 475 ms forecast.",
                 "rule": "The rule: detect p99 + classify p99 + gateway reserve."}
    if not check:
        sentences.pop("check")
    answers = {"sla_ms": 500.0, "rate_rps": 20.0, "objective": "the most accurate within 2 CPUs", "metric": "mAP50-95",
               "feasible": True, "recommendation": chosen, "sentences": sentences,
               "figures": {"meeting_count": 12, "configurations": 4032, "pareto_points": 2, "upstream_changes": True,
                           **({"measured_p99_ms": 415.0} if check else {})}}
    (settings.reports_dir / "05_t3_answers.json").write_text(json.dumps(answers))
    run.record({"meeting_count": 12})


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture()
def settings(tmp_path: Path) -> ProjectSettings:
    return ProjectSettings(artifacts_dir=tmp_path / "artifacts", reports_dir=tmp_path / "reports")


def test_best_rows_table_keeps_each_steps_best_variants_within_budget() -> None:
    detect = _step_table("detect", DETECTORS, [0.66, 0.42, 0.29, 0.19], [900.0, 300.0, 120.0, 60.0])
    classify = _step_table("classify", CLASSIFIERS, [0.849, 0.846, 0.767, 0.760], [9.0, 9.5, 7.0, 6.5])
    best = best_rows_table({"detect": detect, "classify": classify})
    assert list(best.columns) == BEST_ROWS_COLUMNS and len(best) == 8
    assert best["Step"].tolist() == ["detect"] * 4 + ["classify"] * 4
    first = best.iloc[0]  # the most accurate detector, at its cheapest scale whose p99 meets the 270 ms budget
    assert first["Variant"] == DETECTORS[0] and first["Latency (p99 ms)"] <= 270
    cheapest = detect[(detect["Variant"] == DETECTORS[0]) & detect["Meets step SLA"]]["Cost"].min()
    assert first["Cost (CPUs)"] == cheapest and first["Scale (replicas × CPU)"].count("×") == 1
    assert best.groupby("Step")["Accuracy"].apply(lambda a: a.is_monotonic_decreasing).all()
    # Without the budget column, p99 against the step budget decides; fewer rows per step when asked.
    loose = best_rows_table({"detect": detect.drop(columns="Meets step SLA")}, budgets_ms={"detect": 100.0}, per_step=2)
    assert len(loose) == 2 and (loose["Latency (p99 ms)"] <= 100).all()
    assert best_rows_table({"detect": detect.drop(columns="Meets step SLA").assign(**{"p99 ms": 1e6})},
                           budgets_ms={"detect": 100.0}).empty  # nothing within budget: an empty table, no error
    with_source = best_rows_table({"classify": classify}, with_source=True)
    assert list(with_source.columns) == [*BEST_ROWS_COLUMNS, "Source"]


def test_each_t3_answer_is_the_notes_of_the_slide_with_its_table(settings: ProjectSettings) -> None:
    _write_01_to_04(settings)
    _write_05(settings)
    slides = deck_slides(read_reports(settings.reports_dir))

    def holding(text: str):
        return next(s for s in slides if any(text in note for note in s.notes))
    assert holding("12 of the 4032").table is not None and len(holding("12 of the 4032").table) == 8  # top 8 of 12
    assert holding("Pareto-optimal").plot.name == "05_pareto" and holding("+0.178 mAP50-95").plot.name == "05_pareto"
    assert list(holding(LONG[:40]).table.columns) == ["Rate", "SLA 250 ms", "SLA 500 ms", "SLA 1,000 ms"]
    assert holding("lead to 2 classifiers").title.startswith("Yes: 4 detectors lead to")
    assert "Baseline" in holding("static smallest: -0.414").table.columns
    assert holding("measured p99 415 ms against").plot.name == "05_prediction_check"
    assert holding("The rule:").plot.name == "05_prediction_check"
    assert holding("Deploy yolov8s-160").data == {"slide": "answer"}
    assert [s.title for s in slides].index(holding("12 of the 4032").title) > [s.data.get("deliverable")
                                                                                 for s in slides].index("vslca")


@needs_chromium
def test_the_deck_fits_1280x720_and_every_slide_shows_its_claim(settings: ProjectSettings) -> None:
    _write_01_to_04(settings)
    _write_05(settings)
    deck = check_deck(build_slides(settings.reports_dir), width=1280, height=720)
    assert deck.problems == [], "\n".join(deck.problems)
    assert len(deck.slides) >= 15
    assert all(s.fits and s.height == 720 for s in deck.slides), [(s.number, s.bottom) for s in deck.slides]
    assert all(s.has_figure or s.has_table for s in deck.slides[1:])
    assert max(s.words for s in deck.slides) <= 60 and sum(s.notes_words for s in deck.slides) > 300
    answer = deck.slides[1]
    for shown in (DETECTORS[0], CLASSIFIERS[0], "2 × 0.25", "0.75 CPUs", "0.523", "measured p99 415 ms", "500 ms SLA"):
        assert shown in answer.text, (shown, answer.text)
    vslca = [s for s in deck.slides
             if any({"Variant", "Scale", "Latency", "Cost", "Accuracy"} <= {h.split(" (")[0] for h in headers}
                    for headers in s.table_headers)]
    assert len(vslca) == 1 and vslca[0].data.get("deliverable") == "vslca"
    assert [h.split(" (")[0] for h in vslca[0].table_headers[0]] == ["Step", "Variant", "Scale", "Latency", "Cost",
                                                                     "Accuracy"]
    assert [s.number for s in deck.slides if s.data.get("deliverable") == "vslca"] == [vslca[0].number]


def test_missing_inputs_say_what_is_missing_and_which_notebook_to_run(settings: ProjectSettings) -> None:
    _write_01_to_04(settings)
    deck = build_slides(settings.reports_dir).read_text()  # no notebook 05 at all
    assert "Not produced yet: run notebook 05 (05_optimize_t3) to get the chosen configuration" in html.unescape(deck)
    _write_05(settings, check=False)  # notebook 05 without its deployed check (a smoke run that skipped it)
    slides = deck_slides(read_reports(settings.reports_dir))
    answer = slides[1]
    assert answer.table is not None and "predicted p99 462 ms" in answer.lines[0]
    assert "05_check.csv" in answer.placeholder and "run notebook 05" in answer.placeholder
    assert slides[-2].title.endswith("not produced yet") and "05_prediction_check.png" in slides[-2].placeholder
    build_slides(settings.reports_dir)


def _bad_deck(path: Path) -> Path:
    """A reveal.js deck with a wordy slide without a figure and a slide taller than 720 px."""
    assets = reveal_assets()
    wordy = " ".join(f"word{i}" for i in range(120))
    sections = ["<section><h2>Title</h2></section>",
                f"<section><h2>Too many words</h2><p>{wordy}</p></section>",
                '<section><h2>Too tall</h2><table><tr><th>a</th></tr></table><div style="height:1000px"></div></section>',
                ("<section><h2>Fine</h2><table><tr><th>a</th></tr><tr><td>1</td></tr></table>"
                 f'<aside class="notes">{wordy}</aside></section>')]
    path.write_text(f"<!DOCTYPE html><html><head><style>{assets['reveal_css']}</style></head><body>"
                    f'<div class="reveal"><div class="slides">{"".join(sections)}</div></div>'
                    f"<script>{assets['reveal_js']}</script>"
                    "<script>Reveal.initialize({width: 1280, height: 720, hash: true});</script></body></html>")
    return path


@needs_chromium
def test_check_deck_flags_a_wordy_slide_without_figure_and_a_tall_one(tmp_path: Path) -> None:
    deck = check_deck(_bad_deck(tmp_path / "bad.html"))
    wordy, tall, fine = deck.slides[1], deck.slides[2], deck.slides[3]
    assert wordy.words >= 120 and not wordy.has_figure and not wordy.has_table
    assert not tall.fits and tall.bottom > 720 and fine.fits and fine.notes_words == 120 and fine.words == 1
    assert not deck.ok and len(deck.problems) == 3
    assert any("slide 2" in p and "123 words" in p for p in deck.problems)
    assert any("slide 2" in p and "neither a figure nor a table" in p for p in deck.problems)
    assert any("slide 3" in p and "over the 1280 x 720 slide" in p for p in deck.problems)


def test_deck_problems_spare_the_title_and_missing_input_slides() -> None:
    def slide(number: int, **changes) -> SlideCheck:
        base = {"number": number, "indices": (number - 1, 0), "title": f"s{number}", "width": 1280, "height": 720,
                "content_height": 500, "content_width": 1280, "bottom": 600, "clipped": [], "figures": 0,
                "tables": 0, "words": 10, "notes_words": 0, "table_headers": [], "placeholder": False}
        return SlideCheck(**{**base, **changes})

    assert deck_problems([slide(1), slide(2, placeholder=True), slide(3, figures=1)]) == []
    problems = deck_problems([slide(1), slide(2, tables=1, clipped=["div.scroll"])])
    assert problems == ["slide 2 ('s2'): cut off inside div.scroll (content larger than its box)"]
