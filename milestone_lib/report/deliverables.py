"""Each task and deliverable of the assignment, and where the milestone answers it.

The report's "Where each deliverable is answered" table and `reports/README.md` say the same;
a file name here is relative to the run's reports folder (`reports/`, or `reports/smoke/`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DELIVERABLES", "Deliverable"]


@dataclass(frozen=True)
class Deliverable:
    """An item of the assignment, the notebook that answers it, and the files that hold the answer."""

    item: str
    asks: str
    notebook: str
    files: tuple[str, ...]


DELIVERABLES: tuple[Deliverable, ...] = (
    Deliverable("T1 (part 1)", "model variants, containerized, stored in a model registry", "01, 02",
                ("variants.csv", "variants_accuracy_latency.png", "registry_variants.csv")),
    Deliverable("T2 (part 1)", "a gRPC service connecting the two model steps, requests queued between them",
                "03", ("03_deployment.csv", "03_step_breakdown_before.csv")),
    Deliverable("T1 (part 2)", "per-step latency of a pipeline configuration; the most time-consuming step", "03",
                ("03_step_breakdown_before.csv", "03_step_breakdown.png", "03_per_step_latency.figures.json")),
    Deliverable("T2 (part 2)", "SLA; per step, Variant / Scale / Latency / Cost / Accuracy over >= 4 versions and "
                "4 CPU values; the best version and cores per step", "04",
                ("04_detect_table.csv", "04_classify_table.csv", "04_pipeline_table.csv", "04_*.png")),
    Deliverable("T3", "configurations that meet the SLA; what makes one optimal; does the upstream model change "
                "the best downstream one", "05", ("05_t3_answers.md", "05_t3_answers.json", "05_pareto.png",
                                                     "05_prediction_check.png")),
    Deliverable("Deliverable 1", "notebooks that regenerate every table and plot; horizontal scaling in the notebook",
                "01-06", ("notebooks/*.ipynb", "notebooks/executed/")),
    Deliverable("Deliverable 3", "plots: model version vs accuracy and latency; vs accuracy and throughput", "04",
                ("04_accuracy_vs_latency.png", "04_accuracy_vs_throughput.png")),
    Deliverable("Deliverable 4", "table of Variant, Scale, Latency, Cost, Accuracy across the steps", "04",
                ("04_detect_table.csv", "04_classify_table.csv", "04_pipeline_table.csv")),
    Deliverable("Deliverable 5", "analysis: which version at how many resources, given the overall SLA and accuracy",
                "05, 06", ("05_t3_answers.md", "report.html")),
    Deliverable("Deliverable 6", "presentation", "06", ("slides.html",)),
)
