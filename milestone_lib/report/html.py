"""`reports/report.html`: the whole milestone in one self-contained page.

Plots are embedded as base64 data URIs and the style sheet is inline, so the file opens offline
and can be mailed on its own; nothing is fetched (`browser.check_page` proves it in a test).
The page tells the deck's story in the same order, in full sentences: the story in brief (the slides'
claims, each linked to its section), the answer, then a section per notebook (01-05; notebook 04's
ends with deliverable 4's table, as the deck does), and last where each deliverable is answered. Each
section says which run (full / smoke), machine and backend its numbers came from, and a notebook that
has not run yet gets a "not produced yet" placeholder.
"""

from __future__ import annotations

import base64
import html
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..contracts import STEPS
from ..files import atomic_write_text
from .deck import deck_slides, step_budgets
from .deliverables import DELIVERABLES
from .inputs import NotebookOutputs, PlotFile, TableFile, read_reports
from .narrative import findings, headline_items, recommendation
from .slide import Slide
from .variant_table import best_rows_table

__all__ = ["REPORT_NAME", "build_report", "image_data_uri", "markdown_html", "table_html"]

REPORT_NAME = "report.html"
SHOWN_ROWS = 40
"""Rows of a table shown open; the rest (up to `FOLDED_ROWS`) folded under it, all of it in the CSV."""
FOLDED_ROWS = 400
# Plots the assignment asks for by name come first in their section.
_REQUIRED_PLOTS = (("accuracy", "latency"), ("accuracy", "throughput"), ("pareto",))
_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0 auto;max-width:1200px;padding:1.5em;color:#1d2733;
 line-height:1.45}
h1{font-size:1.9em;margin-bottom:.2em}h2{border-bottom:2px solid #3d7dca;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}.meta,.provenance{color:#52606d;font-size:.92em}
.provenance span{display:inline-block;background:#eef3fa;border-radius:4px;padding:.1em .5em;margin:.1em .3em .1em 0}
.placeholder{border:2px dashed #d9822b;background:#fff7ec;padding:1em;border-radius:6px;font-weight:bold}
.warning{border-left:4px solid #d9822b;padding-left:.8em}
.recommendation{background:#eef7ee;border-left:5px solid #3c9a3c;padding:.6em 1em}.story li{margin:.2em 0}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.85em;margin:.4em 0}
th,td{border:1px solid #cfd7df;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f0f3f6}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e1e6eb}
figcaption{color:#52606d;font-size:.9em}.source{color:#7b8794;font-size:.8em}
nav ol{columns:2}code{background:#f0f3f6;padding:0 .2em}
"""


def build_report(reports_dir: Path, *, output: Path | None = None) -> Path:
    """Assemble `<reports_dir>/report.html` from what the notebooks saved there; returns its path."""
    folder = Path(reports_dir)
    outputs = read_reports(folder)
    runs = sorted({o.run for o in outputs if o.run})
    title = "Milestone 2: detect → classify pipeline, variants, scaling and the optimal configuration"
    built = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    slides = deck_slides(outputs)
    parts = [f"<h1>{_e(title)}</h1>",
             (f'<p class="meta">Run: <b>{_e(" + ".join(runs) or "none yet")}</b> · built {built} from '
              f'<code>{_e(str(folder))}</code> · slides: <a href="slides.html">slides.html</a></p>'),
             _contents(outputs), _story_section(slides), _recommendation_section(outputs, slides)]
    parts += [_notebook_section(found, folder) for found in outputs]
    parts.append(_deliverables_section(outputs))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    return atomic_write_text(Path(output) if output else folder / REPORT_NAME, page)


def image_data_uri(path: Path) -> str:
    """`data:image/png;base64,...` of an image file, so the page needs no other file."""
    kind = {".png": "png", ".svg": "svg+xml", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(Path(path).suffix.lower(), "png")
    return f"data:image/{kind};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def table_html(frame: pd.DataFrame, *, max_rows: int | None = None) -> str:
    """An HTML table with numbers rounded for reading (the CSV keeps every digit)."""
    shown = frame if max_rows is None else frame.head(max_rows)
    body = shown.to_html(index=False, border=0, na_rep="", float_format=_number, escape=True)
    return f'<div class="scroll">{body}</div>'


def markdown_html(text: str, *, images_dir: Path | None = None) -> str:
    """Markdown (tables included) as HTML; an image that names a file in `images_dir` is embedded."""
    import mistune

    rendered = str(mistune.create_markdown(plugins=["table"])(text))
    if images_dir is None:
        return rendered

    def embed(match: re.Match[str]) -> str:
        path = Path(images_dir) / html.unescape(match.group(2))
        return f"{match.group(1)}{image_data_uri(path)}{match.group(3)}" if path.is_file() else match.group(0)

    return re.sub(r'(<img[^>]*\ssrc=")(?!data:|https?:)([^"]+)(")', embed, rendered)


def _number(value: float) -> str:
    if pd.isna(value):
        return ""
    magnitude = abs(value)
    return f"{value:,.0f}" if magnitude >= 100 else f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"


def _e(text: object) -> str:
    return html.escape(str(text))


def _anchor(found: NotebookOutputs) -> str:
    return f"nb{found.spec.number}"


def _contents(outputs: list[NotebookOutputs]) -> str:
    items = ['<li><a href="#story">The story in brief</a></li>', '<li><a href="#recommendation">Recommendation</a></li>']
    items += [f'<li><a href="#{_anchor(o)}">{o.spec.number} · {_e(o.spec.title)}</a>'
              f'{"" if o.started else " (not produced yet)"}</li>' for o in outputs]
    items.append('<li><a href="#deliverables">Where each deliverable is answered</a></li>')
    return f"<nav><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _story_section(slides: list[Slide]) -> str:
    """The slides' claims in their order, each linked to the section that tells it in full."""
    items = "".join(f'<li><a href="#{_e(s.anchor)}">{_e(s.title)}</a></li>' if s.anchor else f"<li>{_e(s.title)}</li>"
                    for s in slides[1:])
    return (f'<section id="story"><h2>The story in brief</h2><p>The claims of the slides, in their order; each '
            f'links to the section below that shows it in full.</p><ol class="story">{items}</ol></section>')


def _recommendation_section(outputs: list[NotebookOutputs], slides: list[Slide]) -> str:
    sentences = recommendation(outputs)
    if sentences:
        body = '<div class="recommendation"><ul>' + "".join(f"<li>{_e(s)}</li>" for s in sentences) + "</ul></div>"
    else:
        body = _placeholder("the recommended configuration", "05")
    answer = next((s for s in slides if s.data.get("slide") == "answer"), None)
    if answer is not None and answer.table is not None:  # the deck's answer slide, the same table
        body += table_html(answer.table) + "".join(f"<p>{_e(line)}</p>" for line in answer.lines)
    if answer is not None and answer.placeholder and sentences:
        body += f'<p class="warning">{_e(answer.placeholder)}</p>'
    return f'<section id="recommendation"><h2>Recommendation</h2>{body}</section>'


def _best_rows_section(found: NotebookOutputs) -> str:
    """Deliverable 4: per step, the best rows of the sweep within the step's budget (the deck's table, with Source)."""
    tables = {step: t for step in STEPS if (t := found.table(f"04_{step}_table")) is not None}
    if not tables:
        return ""
    best = best_rows_table(tables, budgets_ms=step_budgets(found), with_source=True)
    budgets = ", ".join(f"{step} {value:.0f} ms" for step, value in step_budgets(found).items())
    body = table_html(best) if len(best) else "<p>No row of the sweep meets its step budget.</p>"
    return (f'<h3 id="deliverable4">Deliverable 4: Variant, Scale, Latency, Cost, Accuracy, the best rows per step</h3>'
            f"<p>Per step, each variant at its cheapest scale whose p99 meets the step's budget"
            f"{f' ({_e(budgets)})' if budgets else ''}, most accurate first; every row is in "
            f"{_e(', '.join(f'04_{s}_table.csv' for s in tables))}.</p>{body}")


def _deliverables_section(outputs: list[NotebookOutputs]) -> str:
    ran = {o.spec.number for o in outputs if o.started}
    rows = []
    for d in DELIVERABLES:
        numbers = re.findall(r"\d\d", d.notebook)
        links = [f'<a href="#nb{n}">{n}</a>' for n in numbers if n in ran]
        links += ['<a href="#recommendation">this page</a>, <a href="slides.html">slides</a>'] if "06" in numbers else []
        links += ['<a href="#deliverable4">its table</a>'] if d.item == "Deliverable 4" and "04" in ran else []
        rows.append(f"<tr><td>{_e(d.item)}</td><td style='text-align:left;white-space:normal'>{_e(d.asks)}</td>"
                    f"<td>{', '.join(links) or 'not produced yet'}</td><td style='text-align:left'>{_e(', '.join(d.files))}</td></tr>")
    return ('<section id="deliverables"><h2>Where each deliverable is answered</h2><div class="scroll"><table>'
            "<tr><th>item</th><th>asks for</th><th>section</th><th>files (in this reports folder)</th></tr>"
            + "".join(rows) + "</table></div></section>")


def _placeholder(what: str, number: str) -> str:
    return (f'<div class="placeholder">Not produced yet: run notebook {number} to get {_e(what)} '
            f"(<code>make milestone</code>, or <code>make milestone SMOKE=1</code> for a smoke run).</div>")


def _provenance(found: NotebookOutputs) -> str:
    spans = "".join(f"<span>{_e(k)}: {_e(v)}</span>" for k, v in found.provenance().items())
    return f'<p class="provenance">{spans}<span>answers: {_e(found.spec.answers)}</span></p>'


def _notebook_section(found: NotebookOutputs, folder: Path) -> str:
    head = f'<section id="{_anchor(found)}"><h2>{found.spec.number} · {_e(found.spec.title)}</h2>'
    if not found.started:
        expected = ", ".join(found.spec.expected)
        return (head + _placeholder(f"{found.spec.notebook}'s outputs ({expected})", found.spec.number)
                + "</section>")
    parts = [head, _provenance(found)]
    if not found.present:
        parts.append(f'<p class="warning">{found.spec.notebook}.figures.json is missing: the notebook did not run '
                     "to its end, so the files below may be partial.</p>")
    sentences = findings(found)
    if sentences:
        parts.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in sentences) + "</ul>")
    answers = [name for name in found.texts if name.endswith(".md")]
    for name in answers:
        parts.append(f'<div class="answers">{markdown_html(found.texts[name].read_text(), images_dir=folder)}</div>'
                     f'<p class="source">from {_e(name)}</p>')
    parts += [_plot(p) for p in _ordered_plots(found.plots)]
    if found.spec.number == "04":
        parts.append(_best_rows_section(found))
    tables = [_table(t) for t in found.tables]
    if answers and tables:  # the answers above quote these tables: all of them stay here, folded
        tables = [f"<details><summary>All {len(tables)} tables of {found.spec.notebook} (CSV)</summary>"
                  + "\n".join(tables) + "</details>"]
    parts += tables
    if found.figures:
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in headline_items(found.figures))
        parts.append(f"<details><summary>Recorded figures ({found.spec.notebook}.figures.json)</summary>"
                     f"<table>{rows}</table></details>")
    return "\n".join(parts) + "</section>"


def _ordered_plots(plots: list[PlotFile]) -> list[PlotFile]:
    def rank(plot: PlotFile) -> int:
        name = plot.name.lower()
        return next((i for i, words in enumerate(_REQUIRED_PLOTS) if all(w in name for w in words)), len(_REQUIRED_PLOTS))

    return sorted(plots, key=rank)


def _plot(plot: PlotFile) -> str:
    return (f'<figure id="{_e(plot.name)}"><img src="{image_data_uri(plot.path)}" alt="{_e(plot.caption)}">'
            f"<figcaption>{_e(plot.caption)} <span class=\"source\">({_e(plot.path.name)})</span></figcaption>"
            "</figure>")


def _table(table: TableFile) -> str:
    rows = len(table.frame)
    parts = [f'<h3 id="{_e(table.name)}">{_e(table.title)}</h3>', table_html(table.frame, max_rows=SHOWN_ROWS)]
    if rows > SHOWN_ROWS:
        rest = table.frame.iloc[SHOWN_ROWS:FOLDED_ROWS]
        parts.append(f"<details><summary>{len(rest)} more rows</summary>{table_html(rest)}</details>")
    more = f"; {rows - FOLDED_ROWS} more rows in the CSV" if rows > FOLDED_ROWS else ""
    parts.append(f'<p class="source">{rows} rows · {_e(table.path.name)}{more}</p>')
    return "\n".join(parts)
