"""Where candidate tables come from: the sweep of notebook 04 (at any rate), or a synthetic grid.

The optimizer needs candidates at more than the sweep's rate (the T3 rate question) and with the
fan-out ignored (the IPA-style baseline); a `CandidateSource` gives both from the same profiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ..errors import MilestoneError
from ..profiling import SweepData, candidate_table
from .synthetic import SyntheticGrid

__all__ = ["CandidateSource", "SweepSource", "SyntheticSource", "load_pipeline_accuracy"]


class CandidateSource(Protocol):
    def __call__(self, rate_rps: float, *, ignore_fanout: bool = False) -> pd.DataFrame:
        """Candidate rows at `rate_rps` pipeline requests/s; `ignore_fanout`: one crop per image."""
        ...


class SweepSource:
    """Candidates from the sweep's single-replica profiles (`profiling.candidate_table`), cached per rate.

    At the sweep's own rate, with the fan-out, it returns the sweep's table (measured rows included).
    """

    def __init__(self, sweep: SweepData) -> None:
        self.sweep = sweep
        cand = sweep.candidates
        self.replicas = sorted({int(r) for r in cand["replicas"]}) if len(cand) else [1]
        accuracy = cand.dropna(subset=["accuracy"]).drop_duplicates("variant") if "accuracy" in cand else cand
        self.accuracy = dict(zip(accuracy["variant"], accuracy["accuracy"], strict=True)) if len(accuracy) else {}
        self._cache: dict[tuple[float, bool], pd.DataFrame] = {}

    def __call__(self, rate_rps: float, *, ignore_fanout: bool = False) -> pd.DataFrame:
        key = (round(float(rate_rps), 6), ignore_fanout)
        if key in self._cache:
            return self._cache[key]
        if np.isclose(rate_rps, self.sweep.sla.rate_rps) and not ignore_fanout:
            table = self.sweep.candidates
        elif ignore_fanout:
            table = self._without_fanout(float(rate_rps))
        else:
            table = self._table(self.sweep.profiles, float(rate_rps), self.sweep.fanout)
        self._cache[key] = table
        return table

    def _table(self, profiles: pd.DataFrame, rate: float, fanout: pd.DataFrame) -> pd.DataFrame:
        return candidate_table(profiles, pipeline_rate_rps=rate, fanout=fanout, replicas=self.replicas,
                               step_budget_ms=self.sweep.sla.step_budgets(), percentile=self.sweep.sla.percentile,
                               accuracy=self.accuracy)

    def _without_fanout(self, rate: float) -> pd.DataFrame:
        """One crop per image: the classifier's rows are the same after every detector, so computed once."""
        detect = self(rate)
        detect = detect[detect["step"] == "detect"]
        detectors = sorted(set(self.sweep.fanout["detector_variant"]))
        one = pd.DataFrame({"detector_variant": detectors[:1], "crops_per_image_mean": [1.0],
                            "crops_per_image_std": [0.0]})
        profiles = self.sweep.profiles[self.sweep.profiles["step"] == "classify"]
        classify = self._table(profiles, rate, one)
        copies = [classify.assign(detector_variant=d) for d in detectors]
        return pd.concat([detect, *copies], ignore_index=True)


class SyntheticSource:
    """Candidates of a `SyntheticGrid` (tests, benchmarks)."""

    def __init__(self, grid: SyntheticGrid) -> None:
        self.grid = grid

    def __call__(self, rate_rps: float, *, ignore_fanout: bool = False) -> pd.DataFrame:
        return self.grid.candidates(rate_rps, ignore_fanout=ignore_fanout)


def load_pipeline_accuracy(reports_dir: Path) -> pd.DataFrame:
    """Notebook 01's `pipeline_accuracy.csv` (end-to-end mAP of every detector x classifier pair)."""
    path = Path(reports_dir) / "pipeline_accuracy.csv"
    if not path.is_file():
        raise MilestoneError(f"no pipeline accuracy table at '{path}'; run notebooks/01_build_variants.ipynb first "
                             "(smoke=True writes reports/smoke/)")
    table = pd.read_csv(path)
    return table.drop(columns=[c for c in table if c.startswith("Unnamed")])
