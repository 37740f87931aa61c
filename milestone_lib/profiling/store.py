"""The sweep's files: what notebook 04 writes and notebook 05 (`load_sweep`) reads back.

    04_service_profiles.csv   measured single-replica service profiles
    04_fanout.csv             crops per image per detector variant
    04_candidates.csv         every configuration, measured or predicted, with its trace
    04_sweep.json             the SlaSpec, the sweep spec and the machine description
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ProfilingError
from ..files import atomic_write_text
from .schema import CANDIDATE_COLUMNS, FANOUT_COLUMNS, PROFILE_REQUIRED, check_columns
from .sla import SlaSpec

__all__ = ["SWEEP_FILES", "SweepData", "load_sweep", "save_sweep"]

SWEEP_FILES = {"profiles": "04_service_profiles.csv", "fanout": "04_fanout.csv",
               "candidates": "04_candidates.csv", "meta": "04_sweep.json"}


@dataclass
class SweepData:
    """A sweep's results: profiles, fan-out, candidates, its SLA and the machine it ran on."""

    profiles: pd.DataFrame
    fanout: pd.DataFrame
    candidates: pd.DataFrame
    sla: SlaSpec
    machine: dict[str, Any]
    spec: dict[str, Any]

    def __iter__(self):
        return iter((self.profiles, self.fanout, self.candidates, self.sla, self.machine))


def save_sweep(data: SweepData, reports_dir: Path) -> dict[str, Path]:
    """Write the three CSVs and the JSON side file into `reports_dir`; returns their paths."""
    folder = Path(reports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in ("profiles", "fanout", "candidates"):
        paths[key] = atomic_write_text(folder / SWEEP_FILES[key], getattr(data, key).to_csv(index=False))
    meta = {"sla": data.sla.model_dump(), "machine": data.machine, "spec": data.spec}
    paths["meta"] = atomic_write_text(folder / SWEEP_FILES["meta"], json.dumps(meta, indent=2, default=str) + "\n")
    return paths


def load_sweep(reports_dir: Path) -> SweepData:
    """The sweep notebook 04 left in `reports_dir` (profiles, fan-out, candidates, SlaSpec, machine)."""
    folder = Path(reports_dir)
    missing = [name for name in SWEEP_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise ProfilingError(f"no sweep in '{folder}': {', '.join(missing)} missing; run "
                             "notebooks/04_scaling_sweep.ipynb first (smoke=True writes reports/smoke/)")
    frames = {key: pd.read_csv(folder / SWEEP_FILES[key]) for key in ("profiles", "fanout", "candidates")}
    check_columns(frames["profiles"], PROFILE_REQUIRED, "service profile")
    check_columns(frames["fanout"], FANOUT_COLUMNS[:2], "fan-out")
    check_columns(frames["candidates"], CANDIDATE_COLUMNS, "candidate")
    meta = json.loads((folder / SWEEP_FILES["meta"]).read_text())
    return SweepData(frames["profiles"], frames["fanout"], frames["candidates"], SlaSpec(**meta["sla"]),
                     meta.get("machine", {}), meta.get("spec", {}))
