"""Writing tables (CSV + Markdown) and figures (PNG) to a reports folder.

Every notebook saves through these functions (via `MilestoneRun`), so a reports folder holds the
same files whichever notebook or CLI produced them. Files are written atomically: a reader
(or a second run) never sees half a table.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import atomic_write_bytes, atomic_write_text
from ..settings import ProjectSettings, configure_offline_environment

__all__ = ["reports_path", "save_figure", "write_table"]


def reports_path(reports_dir: Path | None = None) -> Path:
    """The reports folder (created if missing): `reports_dir`, else `ProjectSettings().reports_dir`."""
    folder = Path(reports_dir) if reports_dir is not None else ProjectSettings().reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_table(table: pd.DataFrame, name: str, *, reports_dir: Path | None = None, index: bool = True,
                floatfmt: str = ".2f", title: str | None = None) -> dict[str, Path]:
    """Write `<name>.csv` and `<name>.md` (headed by `# title` when given); returns both paths."""
    folder = reports_path(reports_dir)
    markdown = table.to_markdown(index=index, floatfmt=floatfmt) + "\n"
    if title:
        markdown = f"# {title}\n\n{markdown}"
    return {
        "csv": atomic_write_text(folder / f"{name}.csv", table.to_csv(index=index)),
        "md": atomic_write_text(folder / f"{name}.md", markdown),
    }


def save_figure(figure: Any, name: str, *, reports_dir: Path | None = None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as `<name>.png`."""
    configure_offline_environment()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(reports_path(reports_dir) / f"{name}.png", buffer.getvalue())
