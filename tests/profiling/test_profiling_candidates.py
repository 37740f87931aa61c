"""candidate_table: one row per configuration, cost accounting, budgets, measured rows overriding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from profiling_helpers import (
    CLASSIFIERS,
    DETECTORS,
    synthetic_fanout,
    synthetic_profiles,
)

from milestone_lib.errors import ProfilingError
from milestone_lib.profiling import (
    CANDIDATE_COLUMNS,
    SlaSpec,
    candidate_table,
    load_sweep,
    save_sweep,
)
from milestone_lib.profiling.store import SweepData


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return candidate_table(synthetic_profiles(), pipeline_rate_rps=20, fanout=synthetic_fanout(),
                           replicas=range(1, 4))


def test_one_row_per_configuration(table: pd.DataFrame) -> None:
    assert list(table.columns) == CANDIDATE_COLUMNS
    detect = table[table.step == "detect"]
    classify = table[table.step == "classify"]
    assert len(detect) == len(DETECTORS) * 2 * 3  # variants x cpus x replicas
    assert len(classify) == len(CLASSIFIERS) * 2 * 3 * len(DETECTORS)  # ... x upstream detectors
    assert detect["detector_variant"].isna().all() and classify["detector_variant"].notna().all()
    keys = ["step", "variant", "cpu", "threads", "batch", "replicas", "detector_variant"]
    assert not table[keys].astype(str).duplicated().any()


def test_cost_rate_and_items(table: pd.DataFrame) -> None:
    assert np.allclose(table["cost"], table["replicas"] * table["cpu"])
    assert (table["rate_rps"] == 20).all()
    fanout = synthetic_fanout().set_index("detector_variant")["crops_per_image_mean"]
    classify = table[table.step == "classify"]
    assert np.allclose(classify["items_per_request"], classify["detector_variant"].map(fanout))
    assert (table[table.step == "detect"]["items_per_request"] == 1).all()


def test_budgets_decide_meets_step_sla(table: pd.DataFrame) -> None:
    budgets = SlaSpec().step_budgets()
    expected = table["stable"] & (table["p99_ms"] <= table["step"].map(budgets))
    assert (table["meets_step_sla"] == expected).all()
    strict = candidate_table(synthetic_profiles(), pipeline_rate_rps=20, fanout=synthetic_fanout(),
                             replicas=[1], step_budget_ms={"detect": 1.0, "classify": 1.0})
    assert not strict["meets_step_sla"].any()


def test_every_predicted_row_traces_its_inputs(table: pd.DataFrame) -> None:
    assert (table["source"] == "predicted").all()
    for row in table.itertuples():
        assert row.trace.startswith("des-jsq-batching") and "profile run" in row.trace
        assert f"run-{row.step}-" in row.trace  # the measured run ids it was predicted from


def test_measured_rows_override_and_keep_the_prediction(table: pd.DataFrame) -> None:
    target = table[(table.step == "classify")].iloc[4]
    measured = pd.DataFrame([{**target.to_dict(), "p99_ms": 123.0, "trace": "run abc windows 3 requests 90"}])
    again = candidate_table(synthetic_profiles(), pipeline_rate_rps=20, fanout=synthetic_fanout(),
                            replicas=range(1, 4), measured=measured)
    row = again[again.source == "measured"]
    assert len(row) == 1
    assert row.iloc[0]["p99_ms"] == 123.0 and row.iloc[0]["predicted_p99_ms"] == pytest.approx(target["p99_ms"])
    assert row.iloc[0]["trace"].startswith("run abc")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ProfilingError, match="lacks column\\(s\\) service_ms"):
        candidate_table(synthetic_profiles().drop(columns="service_ms"), pipeline_rate_rps=20,
                        fanout=synthetic_fanout())
    with pytest.raises(ProfilingError, match="replicas \\[0\\]"):
        candidate_table(synthetic_profiles(), pipeline_rate_rps=20, fanout=synthetic_fanout(), replicas=[0])


def test_save_and_load_sweep(tmp_path, table: pd.DataFrame) -> None:
    data = SweepData(synthetic_profiles(), synthetic_fanout(), table, SlaSpec(latency_ms=400), {"cores": 2}, {})
    save_sweep(data, tmp_path)
    profiles, _fanout, candidates, sla, machine = load_sweep(tmp_path)
    assert len(profiles) == len(data.profiles) and len(candidates) == len(table)
    assert sla.latency_ms == 400 and machine == {"cores": 2}
    with pytest.raises(ProfilingError, match="notebooks/04_scaling_sweep.ipynb"):
        load_sweep(tmp_path / "nowhere")


def test_a_table_of_only_the_contract_columns_is_enough() -> None:
    from milestone_lib.profiling import PROFILE_REQUIRED

    table = candidate_table(synthetic_profiles()[PROFILE_REQUIRED], pipeline_rate_rps=20, fanout=synthetic_fanout(),
                            replicas=[1])
    assert (table["batch"] == 8).all()  # max_batch defaults to the largest batch measured
    assert table["accuracy"].isna().all() and table["p99_ms"].notna().all()
