"""Running the milestone notebooks with papermill, in order, into `notebooks/executed/`.

A smoke run's executed copies go to `notebooks/executed/smoke/` (and its reports to
`reports/smoke/`), so it never replaces a full run's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .errors import MilestoneError
from .settings import PROJECT_ROOT, configure_offline_environment, run_settings

__all__ = ["NOTEBOOKS_DIR", "executed_dir", "list_notebooks", "run_milestone", "run_notebook"]

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"


def executed_dir(*, smoke: bool) -> Path:
    """Where executed notebooks go: `notebooks/executed/`, or `notebooks/executed/smoke/` for a smoke run."""
    folder = NOTEBOOKS_DIR / "executed"
    return folder / "smoke" if smoke else folder


def list_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks (`NN_name.ipynb`), in order."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, *, parameters: dict[str, Any] | None = None, output_dir: Path | None = None,
                 timeout_s: int = 3600) -> Path:
    """Execute one notebook top to bottom; the executed copy goes to `output_dir` (default: `executed_dir`)."""
    import papermill

    configure_offline_environment()
    path = Path(path)
    if not path.is_file():
        raise MilestoneError(f"notebook '{path}' does not exist; choose one of {[p.name for p in list_notebooks()]}")
    parameters = dict(parameters or {})
    output_dir = Path(output_dir or executed_dir(smoke=bool(parameters.get("smoke"))))
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / path.name
    papermill.execute_notebook(str(path), str(target), parameters=parameters, cwd=str(path.parent),
                               kernel_name="python3", progress_bar=False, execution_timeout=timeout_s)
    return target


def run_milestone(*, smoke: bool = False, only: list[str] | None = None) -> list[tuple[Path, float]]:
    """Run every numbered notebook in order (or those whose name starts with one of `only`)."""
    done = []
    for path in list_notebooks():
        if only and not any(path.name.startswith(prefix) for prefix in only):
            continue
        started = time.perf_counter()
        print(f"[milestone] running {path.name}{' (smoke)' if smoke else ''} ...", flush=True)
        target = run_notebook(path, parameters={"smoke": True} if smoke else {})
        seconds = time.perf_counter() - started
        print(f"[milestone] {path.name} done in {seconds:.0f} s -> {target}", flush=True)
        done.append((target, seconds))
    print(f"[milestone] tables and plots: {run_settings(smoke=smoke).reports_dir}", flush=True)
    return done
