"""Profiling: the scaling sweep of each step, and predictions beyond what the machine can measure.

    sla.py         SlaSpec: the pipeline SLA and its split into per-step budgets
    schema.py      the columns handed to optimize/ (service profiles, fan-out, candidates)
    queueing.py    predict_step: discrete-event simulation of replicas + dynamic batching; M/M/1, M/D/1
    candidates.py  candidate_table: every configuration at the SLA rate, measured or predicted, traced
    fanout.py      fanout_table: crops per image of each detector variant
    store.py       save_sweep / load_sweep: the sweep's files in a reports folder
"""

from __future__ import annotations

from .candidates import CONFIG_KEYS, candidate_table, profile_trace
from .fanout import detector_crops, fanout_table
from .queueing import (
    SIMULATION_MODEL,
    ServiceCurve,
    StepPrediction,
    md1_mean_ms,
    mm1_quantile_ms,
    predict_step,
)
from .schema import (
    CANDIDATE_COLUMNS,
    FANOUT_COLUMNS,
    PROFILE_COLUMNS,
    ServiceProfile,
    check_columns,
)
from .sla import DEFAULT_STEP_WEIGHTS, SlaSpec
from .store import SWEEP_FILES, SweepData, load_sweep, save_sweep

__all__ = [
    "CANDIDATE_COLUMNS",
    "CONFIG_KEYS",
    "DEFAULT_STEP_WEIGHTS",
    "FANOUT_COLUMNS",
    "PROFILE_COLUMNS",
    "SIMULATION_MODEL",
    "SWEEP_FILES",
    "ServiceCurve",
    "ServiceProfile",
    "SlaSpec",
    "StepPrediction",
    "SweepData",
    "candidate_table",
    "check_columns",
    "detector_crops",
    "fanout_table",
    "load_sweep",
    "md1_mean_ms",
    "mm1_quantile_ms",
    "predict_step",
    "profile_trace",
    "save_sweep",
]
