"""T3 answered with numbers and words: changing the profiles changes the recommendation and the words."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from milestone_lib.optimize import (
    Objective,
    SyntheticGrid,
    SyntheticSource,
    build_problem,
    hypervolume,
    load_t3_answers,
    pareto_front,
    t3_answers,
)

GRID = SyntheticGrid(
    detect_ms={"det-small": 8.0, "det-large": 30.0},
    classify_ms={"cls-small": 1.0, "cls-large": 4.0},
    fanout={"det-small": 1.5, "det-large": 2.5},
    pair_accuracy={("det-small", "cls-small"): 0.40, ("det-small", "cls-large"): 0.48,
                   ("det-large", "cls-small"): 0.55, ("det-large", "cls-large"): 0.66},
    step_accuracy={"det-small": 0.5, "det-large": 0.7, "cls-small": 0.8, "cls-large": 0.9},
)


def _answers(grid: SyntheticGrid, *, sla_ms: float = 250.0, objective: Objective | None = None, **kwargs):
    return t3_answers(grid.candidates(20), grid.pipeline_accuracy(), sla_ms=sla_ms, rate_rps=20, gateway_reserve_ms=20,
                      objective=objective or Objective(kind="min_cost", accuracy_floor=0.5),
                      source=SyntheticSource(grid), **kwargs)


def test_every_question_has_numbers_and_a_sentence() -> None:
    answers = _answers(GRID)
    assert answers.feasible and answers.figures["milp_equals_enumeration"]
    assert 0 < answers.figures["meeting_count"] < answers.figures["configurations"]
    assert f"{answers.figures['meeting_count']} of the {answers.figures['configurations']}" in \
        answers.sentences["how_many"]
    assert answers.recommendation["accuracy"] >= 0.5
    assert answers.recommendation["detect_variant"] in answers.sentences["recommendation"]
    assert set(answers.tables["sensitivity"]["rate_rps"]) == {10, 20, 40}
    assert set(answers.tables["upstream"]["detector"]) == {"det-small", "det-large"}
    assert answers.figures["hypervolume"] > 0
    names = set(answers.tables["baselines"]["name"])
    assert {"static smallest", "static most accurate", "IPA-style (no fan-out)"} <= names
    markdown = answers.to_markdown()
    for title in ("How many configurations", "Pareto front", "What determines", "upstream", "baselines"):
        assert title in markdown


def test_the_rate_changes_how_much_is_provisioned() -> None:
    sens = _answers(GRID).tables["sensitivity"]
    at_sla = sens[sens["sla_ms"] == 250].set_index("rate_rps")
    assert at_sla.loc[40, "cost"] > at_sla.loc[10, "cost"]


@pytest.mark.parametrize("change", ["slower detector", "higher fan-out", "tighter SLA"])
def test_changed_profiles_change_the_recommendation_and_the_words(change: str) -> None:
    before = _answers(GRID)
    if change == "slower detector":
        after = _answers(GRID.with_changes(detect_ms={"det-small": 8.0, "det-large": 90.0}))
    elif change == "higher fan-out":
        after = _answers(GRID.with_changes(fanout={"det-small": 1.5, "det-large": 12.0}))
    else:
        after = _answers(GRID, sla_ms=110.0)
    assert after.recommendation != before.recommendation
    assert after.sentences["recommendation"] != before.sentences["recommendation"]
    assert after.sentences["upstream"] != before.sentences["upstream"]
    assert after.recommendation["cost"] > before.recommendation["cost"] or \
        after.recommendation["detect_variant"] != before.recommendation["detect_variant"]


def test_the_upstream_answer_names_fan_out_and_the_accuracy_interaction() -> None:
    answers = _answers(GRID.with_changes(fanout={"det-small": 0.5, "det-large": 6.0}), objective=Objective())
    upstream = answers.tables["upstream"].set_index("detector")
    assert upstream.loc["det-large", "classify_load_items_per_s"] == pytest.approx(120.0)
    assert upstream.loc["det-small", "classify_load_items_per_s"] == pytest.approx(10.0)
    assert answers.figures["upstream_changes"]
    assert answers.sentences["upstream"].startswith("Yes")
    assert "crops/s" in answers.sentences["upstream"]


def test_pareto_front_and_hypervolume() -> None:
    full = build_problem(GRID.candidates(20), GRID.pipeline_accuracy(), sla_ms=250, rate_rps=20, prune=False)
    front = pareto_front(full)
    assert (front["cost"].diff().dropna() > 0).all() and (front["accuracy"].diff().dropna() > 0).all()
    points = pd.DataFrame({"cost": [1.0, 2.0], "accuracy": [0.5, 0.8]})
    # (4-1)*0.5 + (4-2)*(0.8-0.5) = 1.5 + 0.6
    assert hypervolume(points, reference_cost=4.0) == pytest.approx(2.1)


def test_answers_are_saved_as_json_and_markdown(tmp_path: Path) -> None:
    answers = _answers(GRID)
    paths = answers.save(tmp_path)
    loaded = load_t3_answers(tmp_path)
    assert loaded["sentences"] == answers.sentences
    assert loaded["figures"]["meeting_count"] == answers.figures["meeting_count"]
    assert len(loaded["tables"]["pareto"]) == len(answers.tables["pareto"])
    assert paths["md"].read_text().startswith("# T3")
