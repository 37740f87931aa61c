"""Writing tables (CSV + Markdown) and figures (PNG) to the reports folder.

Every notebook saves its results through these two functions, so `reports/` holds the same
files whichever notebook or CLI produced them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .settings import ProjectSettings, configure_offline_environment

__all__ = ["reports_path", "save_figure", "write_table"]


def reports_path(reports_dir: Path | None = None) -> Path:
    """The reports folder (created if missing): `reports_dir`, else `ProjectSettings().reports_dir`."""
    folder = Path(reports_dir) if reports_dir is not None else ProjectSettings().reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_table(table: pd.DataFrame, name: str, *, reports_dir: Path | None = None, index: bool = True,
                floatfmt: str = ".2f") -> dict[str, Path]:
    """Write `<name>.csv` and `<name>.md`; returns both paths."""
    folder = reports_path(reports_dir)
    csv_path, md_path = folder / f"{name}.csv", folder / f"{name}.md"
    table.to_csv(csv_path, index=index)
    md_path.write_text(table.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    return {"csv": csv_path, "md": md_path}


def save_figure(figure: Any, name: str, *, reports_dir: Path | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as `<name>.png`."""
    configure_offline_environment()
    path = reports_path(reports_dir) / f"{name}.png"
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
