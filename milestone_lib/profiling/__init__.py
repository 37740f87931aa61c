"""Profiling: the scaling sweep of each step, and predictions beyond what the machine can measure.

    sla.py         SlaSpec: the pipeline SLA and its split into per-step budgets
    schema.py      the columns handed to optimize/ (service profiles, fan-out, candidates)
    selection.py   which variants are swept: each step's accuracy-vs-latency front, and what dominates the rest
    spec.py        SweepSpec (YAML-loadable): variants, CPU allocations, replicas, load windows; input checks
    machine.py     the machine's description saved with the results
    fanout.py      fanout_table: crops per image of each detector variant (the classifier's load)
    balanced.py    load straight to a step's replicas, balanced by serving's ReplicaPool
    measure.py     one configuration measured (saturation + open loop at rate) -> profile / table rows
    sweep.py       run_sweep: deployments, CPU quotas, measurements, the pipeline end to end
    queueing.py    predict_step: discrete-event simulation of replicas + dynamic batching; M/M/1, M/D/1
    candidates.py  candidate_table: every configuration at the SLA rate, measured or predicted, traced
    tables.py      per-step tables, the best configuration in words, the pipeline table
    summary.py     best configurations, efficiency, headline figures, reference tables, registry push
    store.py       save_sweep / load_sweep: the sweep's files in a reports folder
"""

from __future__ import annotations

from .candidates import CONFIG_KEYS, candidate_table, profile_trace
from .fanout import cut_image_crops, fanout_table
from .machine import describe_machine, machine_cores
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
    PROFILE_REQUIRED,
    ServiceProfile,
    check_columns,
)
from .selection import (
    ACCURACY_TOLERANCE,
    step_accuracy_metric,
    swept_variants,
    variant_selection,
)
from .sla import DEFAULT_STEP_WEIGHTS, SlaSpec
from .spec import (
    StepSweep,
    SweepSpec,
    default_cpus,
    default_variants,
    load_sweep_spec,
    notebook_sweep,
)
from .store import SWEEP_FILES, SweepData, load_sweep, save_sweep
from .summary import (
    beside_reference,
    best_configurations,
    best_samples,
    binding_constraint,
    push_results,
    reference_tables,
    scaling_efficiency,
    sweep_data,
    sweep_figures,
)
from .sweep import SweepResult, load_manifests, run_sweep
from .tables import (
    best_configuration,
    describe_best,
    pipeline_table,
    step_table,
    sweep_candidates,
)

__all__ = [
    "ACCURACY_TOLERANCE",
    "CANDIDATE_COLUMNS",
    "CONFIG_KEYS",
    "DEFAULT_STEP_WEIGHTS",
    "FANOUT_COLUMNS",
    "PROFILE_COLUMNS",
    "PROFILE_REQUIRED",
    "SIMULATION_MODEL",
    "SWEEP_FILES",
    "ServiceCurve",
    "ServiceProfile",
    "SlaSpec",
    "StepPrediction",
    "StepSweep",
    "SweepData",
    "SweepResult",
    "SweepSpec",
    "beside_reference",
    "best_configuration",
    "best_configurations",
    "best_samples",
    "binding_constraint",
    "candidate_table",
    "check_columns",
    "cut_image_crops",
    "default_cpus",
    "default_variants",
    "describe_best",
    "describe_machine",
    "fanout_table",
    "load_manifests",
    "load_sweep",
    "load_sweep_spec",
    "machine_cores",
    "md1_mean_ms",
    "mm1_quantile_ms",
    "notebook_sweep",
    "pipeline_table",
    "predict_step",
    "profile_trace",
    "push_results",
    "reference_tables",
    "run_sweep",
    "save_sweep",
    "scaling_efficiency",
    "step_accuracy_metric",
    "step_table",
    "sweep_candidates",
    "sweep_data",
    "sweep_figures",
    "swept_variants",
    "variant_selection",
]
