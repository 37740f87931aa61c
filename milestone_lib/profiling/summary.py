"""What notebook 04 states and records: the best configurations, their latency samples, throughput
efficiency by replicas, the headline figures, the reference run beside the local one, the registry push."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import MilestoneError
from .sla import SlaSpec
from .store import SweepData
from .tables import best_configuration, describe_best

__all__ = [
    "beside_reference",
    "best_configurations",
    "best_samples",
    "binding_constraint",
    "push_results",
    "reference_tables",
    "scaling_efficiency",
    "sweep_data",
    "sweep_figures",
]


def best_configurations(candidates: pd.DataFrame, sla: SlaSpec) -> tuple[dict[str, pd.Series | None], list[str]]:
    """Per step the best configuration (the classifier's under the best detector's fan-out) and a sentence each."""
    detect = best_configuration(candidates, "detect")
    classify = best_configuration(candidates, "classify",
                                  detector_variant=detect["variant"] if detect is not None else None)
    best = {"detect": detect, "classify": classify}
    return best, [describe_best(best[step], step, sla) for step in best]


def _binds(candidates: pd.DataFrame, step: str, sla: SlaSpec, detector: str | None) -> tuple[bool, str]:
    """Whether the step's budget changes what its most accurate variant needs, and the numbers that say so."""
    rows = candidates[candidates["step"] == step]
    if step == "classify" and detector is not None:
        rows = rows[rows["detector_variant"] == detector]
    if rows.empty or rows["accuracy"].isna().all():
        return False, f"{step}: nothing measured"
    column, budget = sla.quantile_column, sla.step_budgets()[step]
    rows = rows.assign(meets_step_sla=rows["stable"].astype(bool) & (rows[column] <= budget))  # at this SLA
    top = rows.loc[rows["accuracy"].idxmax(), "variant"]
    mine = rows[rows["variant"] == top]
    floor = mine.sort_values(["cost", "replicas"]).iloc[0]
    where = f"{int(floor['replicas'])}x{floor['cpu']:g} CPU"
    at_floor = (f"p{sla.percentile} {floor[column]:.0f} ms" if bool(floor["stable"])
                else "no stable p99 (the rate is above its capacity)")
    if bool(floor["meets_step_sla"]):
        return False, (f"{step} does not bind: its most accurate variant {top} meets its {budget:.0f} ms budget on the "
                       f"smallest allocation ({where}: {at_floor})")
    meeting = mine[mine["meets_step_sla"].astype(bool)].sort_values(["cost", column])
    if meeting.empty:
        fits = rows[rows["meets_step_sla"].astype(bool)]
        other = fits.loc[fits["accuracy"].idxmax(), "variant"] if len(fits) else None
        return True, (f"on {step} the latency bound binds: it rules out the most accurate variant {top} at every "
                      f"scale swept ({where}: {at_floor}, against {budget:.0f} ms)"
                      + (f"; the most accurate that fits is {other}" if other else "; nothing fits"))
    need = meeting.iloc[0]
    stable = mine[mine["stable"].astype(bool)].sort_values(["cost", column])
    what = ("the rate binds (capacity, not latency)" if len(stable) and bool(stable.iloc[0]["meets_step_sla"])
            else "the latency bound binds")
    return True, (f"on {step} {what}: {top} needs {int(need['replicas'])}x{need['cpu']:g} CPU (cost {need['cost']:g}, "
                  f"p{sla.percentile} {need[column]:.0f} ms within its {budget:.0f} ms budget), where {where} gives "
                  f"{at_floor}")


def binding_constraint(candidates: pd.DataFrame, sla: SlaSpec) -> str:
    """Which constraint binds at this SLA, in one sentence: for each step, whether its budget makes its most
    accurate variant (the classifier fed by the most accurate detector) cost more than the grid's smallest
    allocation, or rules it out; where neither step binds, cost is the grid's floor and the SLA decides nothing."""
    detectors = candidates[candidates["step"] == "detect"]
    detector = detectors.loc[detectors["accuracy"].idxmax(), "variant"] if detectors["accuracy"].notna().any() \
        else None
    parts = [_binds(candidates, step, sla, detector) for step in ("detect", "classify")]
    head = (f"At p{sla.percentile} <= {sla.latency_ms:g} ms and {sla.rate_rps:g} requests/s the SLA "
            + ("binds" if any(b for b, _ in parts) else "does not bind (every step's most accurate variant fits "
               "on the smallest allocation, so the CPU grid's floor sets the cost)"))
    return head + ": " + "; ".join(text for _, text in parts) + "."


def best_samples(result: Any, best: dict[str, pd.Series | None]) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """Measured latencies behind each best configuration: its own run where measured, else the one-replica
    run of the same variant and CPU (the label says which)."""
    samples, labels = {}, {}
    for step, row in best.items():
        if row is None:
            continue
        runs = result.measured
        same = runs[(runs["step"] == step) & (runs["variant"] == row["variant"]) & np.isclose(runs["cpu"], row["cpu"])]
        exact = same[same["replicas"] == row["replicas"]]
        chosen = exact if len(exact) else same[same["replicas"] == 1]
        run_id = chosen["run_id"].iloc[0] if len(chosen) else None
        lat = result.latencies
        samples[step] = lat.loc[lat["run_id"] == run_id, "latency_ms"].to_numpy() if run_id and len(lat) else np.array([])
        how = "measured" if len(exact) else "1 replica measured; lines predicted"
        labels[step] = {"p50_ms": float(row["p50_ms"]), "p99_ms": float(row["p99_ms"]),
                        "label": f"{row['variant']} {int(row['replicas'])}x{row['cpu']:g} CPU ({how})"}
    return samples, labels


def scaling_efficiency(candidates: pd.DataFrame, *, step: str, variant: str, cpu: float = 1.0) -> pd.DataFrame:
    """Max throughput by replicas at `cpu` per replica (the nearest allocation swept), and the efficiency
    throughput(r) / (r x throughput(1))."""
    rows = candidates[(candidates["step"] == step) & (candidates["variant"] == variant)]
    if len(rows):
        nearest = rows["cpu"].iloc[int(np.argmin(np.abs(rows["cpu"].to_numpy(float) - cpu)))]
        rows = rows[np.isclose(rows["cpu"], nearest)]
    if step == "classify" and rows["detector_variant"].notna().any():
        rows = rows[rows["detector_variant"] == rows["detector_variant"].dropna().iloc[0]]
    rows = rows.sort_values("replicas")[["variant", "cpu", "replicas", "max_throughput_rps", "source"]]
    rows = rows.reset_index(drop=True)
    one = rows.loc[rows["replicas"] == 1, "max_throughput_rps"]
    base = float(one.iloc[0]) if len(one) else math.nan
    return rows.assign(efficiency=rows["max_throughput_rps"] / (rows["replicas"] * base))


def sweep_figures(result: Any, candidates: pd.DataFrame, best: dict[str, pd.Series | None],
                  sentences: list[str], *, seconds: float) -> dict[str, Any]:
    """The headline figures notebook 04 records."""
    figures: dict[str, Any] = {
        "seconds": round(seconds, 1), "cores": result.machine.get("cores"), "cpus": result.spec.cpus,
        "replicas": result.spec.replicas, "sla_ms": result.spec.sla.latency_ms, "rate_rps": result.spec.sla.rate_rps,
        "step_budgets_ms": result.spec.sla.step_budgets(), "rows": len(candidates),
        "measured_rows": int((candidates["source"] == "measured").sum()), "best": sentences,
    }
    for step in ("detect", "classify"):
        figures[f"{step}_variants"] = sorted(candidates.loc[candidates["step"] == step, "variant"].unique())
        row = best.get(step)
        figures[f"best_{step}"] = None if row is None else {
            "variant": row["variant"], "replicas": int(row["replicas"]), "cpu": float(row["cpu"]),
            "cost": float(row["cost"]), "p99_ms": float(row["p99_ms"]), "source": row["source"]}
    both = candidates[candidates["source"] == "measured"]
    both = both[(both["replicas"] > 1) & np.isfinite(both["predicted_p99_ms"].astype(float))]
    if len(both):
        figures["prediction_error_p99_median"] = float(np.median(np.abs(both["predicted_p99_ms"] / both["p99_ms"] - 1)))
    return figures


def sweep_data(result: Any, candidates: pd.DataFrame) -> SweepData:
    """What `save_sweep` writes for notebook 05: profiles, fan-out, candidates, SLA, machine, spec."""
    return SweepData(result.profiles, result.fanout, candidates, result.spec.sla, result.machine,
                     result.spec.model_dump(mode="json"))


def reference_tables(folder: Path) -> dict[str, pd.DataFrame]:
    """The 16-core reference run's tables under `folder` (reports/reference/), by file stem; {} if none."""
    folder = Path(folder)
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


def beside_reference(local: pd.DataFrame, reference: dict[str, pd.DataFrame], *, step: str = "detect") -> pd.DataFrame:
    """The local efficiency table (`scaling_efficiency`) beside the reference run's for the same step and
    model (its first `efficiency_<step>_*` table), by replicas."""
    names = sorted(n for n in reference if n.startswith(f"efficiency_{step}_"))
    left = local.set_index("replicas")[["max_throughput_rps", "efficiency", "source"]].add_prefix("here: ")
    if not names:
        return left.reset_index()
    theirs = reference[names[0]].set_index("replicas")[["max_throughput_rps", "efficiency", "source"]]
    out = left.join(theirs.add_prefix("reference: "), how="outer").reset_index()
    return out.assign(**{"reference variant": names[0].removeprefix(f"efficiency_{step}_")})


def push_results(tables: dict[str, pd.DataFrame], *, run: str, registry: Any = None) -> str:
    """Push the tables to the registry's results (profiles/<run>/<name>.csv); a sentence saying what happened.

    `registry`: a `ModelRegistry` (default: the one the environment names, not started if none answers).
    """
    try:
        if registry is None:
            from ..registry import open_registry

            registry = open_registry(start_local=False)
        for name, table in tables.items():
            registry.push_profile(table, name=name, run=run)
    except (MilestoneError, OSError) as exc:
        return f"registry push skipped: {str(exc).splitlines()[0]}"
    return f"pushed {len(tables)} tables to the registry's results under profiles/{run}/"
