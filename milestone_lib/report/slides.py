"""`reports/slides.html`: the class presentation, a reveal.js deck made by nbconvert, working offline.

The deck is written as a notebook (`slides.ipynb`, one Markdown cell per slide, plots attached
to their cell) and converted with nbconvert's `SlidesExporter`. nbconvert's own reveal template
loads reveal.js, require.js, jQuery, mermaid and MathJax from CDNs; the template here replaces
its head and its script block so that reveal.js (from the `sphinx-revealjs` wheel, which ships
reveal.js 5) and every style sheet are inlined, and the page fetches nothing. One message per
slide, its title the message; one plot per slide, large, for a projector.
"""

from __future__ import annotations

import base64
import html
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import MilestoneError
from ..files import atomic_write_text
from .html import table_html
from .inputs import NotebookOutputs, PlotFile, find_plot, read_reports
from .narrative import findings, recommendation, t3_answers

__all__ = ["SLIDES_NAME", "Slide", "build_slides", "deck_slides", "reveal_assets"]

SLIDES_NAME = "slides.html"
_THEME = "white"
_DENSE_CHARS = 420
# Notebook 05 writes one paragraph per T3 question (`05_t3_answers.json`, "sentences"); each is a slide.
_QUESTIONS = {"how_many": "How many configurations meet the SLA?", "pareto": "Cost against accuracy: the Pareto front",
              "what_determines": "What determines the optimum?",
              "upstream": "Does the upstream detector change the best classifier?",
              "baselines": "Against the baselines", "check": "Checked against reality: deployed and measured"}
_CAPTIONS = {"variants_accuracy_latency": "Accuracy against latency of every variant (batch 1, 1 thread)",
             "03_step_breakdown": "Where a request's time goes: before and after scaling out"}
_EXTRA_CSS = """
.reveal .slides section{text-align:left}
.reveal h1,.reveal h2{font-family:"DejaVu Sans",Arial,sans-serif;text-transform:none;color:#1d2733}
.reveal h2{font-size:40px;line-height:1.15;margin:0 0 12px 0}
.reveal .jp-RenderedHTMLCommon,.reveal .jp-RenderedHTMLCommon p,.reveal .jp-RenderedHTMLCommon li{font-size:28px;
 line-height:1.3}
.reveal .jp-RenderedHTMLCommon img{display:block;margin:4px auto;max-height:580px;max-width:100%;width:auto}
.reveal .jp-RenderedHTMLCommon table{font-size:20px}.reveal .scroll{overflow:hidden}
.reveal .placeholder{border:3px dashed #d9822b;padding:18px;font-weight:bold}
.reveal .jp-RenderedHTMLCommon .dense p{font-size:21px;line-height:1.3;margin:0 0 10px 0}
.jp-InputPrompt,.jp-OutputPrompt,a.anchor-link{display:none}
"""
# Replaces nbconvert's reveal head (CDN scripts) and footer script (require.js loading reveal from a CDN).
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block header -%}
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ resources.offline.title | e }}</title>
<style type="text/css">{{ resources.offline.reveal_css }}</style>
{% for css in resources.inlining.css -%}<style type="text/css">{{ css }}</style>{% endfor %}
{{ resources.include_css("static/index.css") }}
{{ resources.include_css("static/theme-light.css") }}
{{ resources.include_css("static/custom_reveal.css") }}
<style type="text/css">{{ resources.offline.theme_css }}</style>
<style type="text/css">{{ resources.offline.extra_css }}</style>
</head>
{%- endblock header -%}
{% block footer_js %}
<script>{{ resources.offline.reveal_js }}</script>
<script>Reveal.initialize({controls: true, progress: true, hash: true, slideNumber: "c/t", transition: "none",
  width: 1280, height: 720, margin: 0.02});</script>
{% endblock footer_js %}
"""


@dataclass(frozen=True)
class Slide:
    """One message: a title (the message itself), a few lines, at most one plot or one small table."""

    title: str
    lines: list[str] = field(default_factory=list)
    plot: PlotFile | None = None
    table: pd.DataFrame | None = None
    placeholder: str = ""


def build_slides(reports_dir: Path, *, output: Path | None = None) -> Path:
    """Write `<reports_dir>/slides.ipynb` (the deck as a notebook) and `<reports_dir>/slides.html`; returns the html."""
    from jinja2 import DictLoader
    from nbconvert import SlidesExporter

    folder = Path(reports_dir)
    slides = deck_slides(read_reports(folder))
    notebook = _notebook(slides)
    import nbformat

    atomic_write_text(folder / "slides.ipynb", nbformat.writes(notebook))
    exporter = SlidesExporter(extra_loaders=[DictLoader({"offline_slides.html.j2": _TEMPLATE})],
                              template_file="offline_slides.html.j2")
    assets = {**reveal_assets(), "extra_css": _EXTRA_CSS, "title": slides[0].title}
    body, _ = exporter.from_notebook_node(notebook, resources={"offline": assets})
    return atomic_write_text(Path(output) if output else folder / SLIDES_NAME, body)


def reveal_assets() -> dict[str, str]:
    """reveal.js 5 (script, base and theme style sheets) from the installed `sphinx-revealjs` wheel, as text."""
    spec = importlib.util.find_spec("sphinx_revealjs")  # found without importing it (that would load Sphinx)
    if spec is None or not spec.submodule_search_locations:
        raise MilestoneError("reveal.js is not installed: the slides need the `sphinx-revealjs` package "
                             "(`.venv/bin/pip install -r requirements.txt`)")
    dist = Path(next(iter(spec.submodule_search_locations))) / "_static" / "revealjs" / "dist"
    theme = (dist / "theme" / f"{_THEME}.css").read_text()
    # The theme imports its web font from a side file; the deck uses the system font instead.
    theme = "\n".join(line for line in theme.splitlines() if not line.lstrip().startswith("@import"))
    # `</script` inside the inlined script would end the tag early.
    script = (dist / "reveal.js").read_text().replace("</script", "<\\/script")
    return {"reveal_css": (dist / "reveal.css").read_text(), "theme_css": theme, "reveal_js": script}


def deck_slides(outputs: list[NotebookOutputs]) -> list[Slide]:
    """The deck: title, then one slide per message of each notebook, the recommendation, and what is missing."""
    by = {o.spec.number: o for o in outputs}
    runs = sorted({o.run for o in outputs if o.run})
    machines = sorted({o.provenance()["machine"] for o in outputs if o.present} - {"not recorded"})
    slides = [Slide("Milestone 2: detect → classify pipeline",
                    ["Model variants, per-step latency, scaling under an SLA, and the optimal configuration.",
                     f"Run: {' + '.join(runs) or 'none yet'}" + (f" · machine: {machines[0]}" if machines else "")])]
    slides += _notebook_slides(by["01"], ("accuracy", "latency"))
    pairs = by["01"].table("pipeline_accuracy")
    if pairs is not None and len(pairs) and {"detector", "classifier"} <= set(pairs.columns):
        best = pairs.iloc[0]
        slides.append(Slide(f"Best end-to-end pair: {best['detector']} → {best['classifier']}",
                            ["End-to-end mAP of detector → crops → classifier, best pairs first."],
                            table=pairs.head(6)))
    slides += _notebook_slides(by["02"])
    slides += _notebook_slides(by["03"], ("breakdown",))
    required = {"04": (("accuracy", "latency"), "Model version vs accuracy and latency"),
                "04b": (("accuracy", "throughput"), "Model version vs accuracy and throughput"),
                "05": (("pareto",), "Cost against end-to-end accuracy: the Pareto front")}
    shown: dict[str, Slide] = {}
    for key, (words, title) in required.items():
        found = by[key[:2]]
        plot = find_plot(outputs, *words, notebook=found.spec.notebook) if found.started else None
        shown[key] = Slide(title, plot=plot) if plot else Slide(title, placeholder=key[:2])
    names = {s.plot.name for s in shown.values() if s.plot is not None}
    slides += [shown["04"], shown["04b"]]
    slides += _notebook_slides(by["04"], skip=names) if by["04"].started else []
    slides += [shown["05"]]
    questions = t3_answers(by["05"]).get("sentences", {}) if by["05"].started else {}
    slides += [Slide(_QUESTIONS.get(key, key.replace("_", " ").capitalize()), [text])
               for key, text in questions.items() if key not in ("recommendation", "rule") and text]
    # Notebook 05's findings are its answers: said once, on the question slides above, when it wrote them.
    slides += _notebook_slides(by["05"], skip=names, said=bool(questions)) if by["05"].started else []
    advice = recommendation(outputs)
    slides.append(Slide("Recommendation", advice) if advice else Slide("Recommendation", placeholder="05"))
    slides.append(Slide("Every table and plot", ["report.html: the full report, every table, self-contained.",
                                                 "README.md in the reports folder: each deliverable and its file."]))
    return slides


def _notebook_slides(found: NotebookOutputs, words: tuple[str, ...] = (), *, skip: set[str] | None = None,
                     said: bool = False) -> list[Slide]:
    """A notebook's findings on one slide (titled by the first), then its plots, one per slide."""
    if not found.started:
        return [Slide(found.spec.title, placeholder=found.spec.number)]
    sentences = [] if said else findings(found)
    plots = [p for p in found.plots if p.name not in (skip or set())]
    plots.sort(key=lambda p: 0 if words and all(w in p.name.lower() for w in words) else 1)
    slides = []
    if sentences:
        title = _headline(sentences[0])
        # A first finding that is all title is not said twice.
        slides.append(Slide(title, sentences[1:5] if title == sentences[0].rstrip(".") else sentences[:5]))
    slides += [Slide(_caption(p), plot=p) for p in plots[:3]]
    return slides or [Slide(found.spec.title, [f"See {found.spec.notebook} in the report."])]


def _caption(plot: PlotFile) -> str:
    """A slide title for a plot: a known one, else from its file name ("04_cost_p99" -> "Cost p99")."""
    if plot.name in _CAPTIONS:
        return _CAPTIONS[plot.name]
    words = plot.name.split("_")
    text = " ".join(words[1:] if words[0].isdigit() else words)
    return text[:1].upper() + text[1:]


def _headline(sentence: str) -> str:
    """A slide title from a finding: up to its first parenthesis, kept short."""
    text = sentence.split(" (")[0].rstrip(".")
    return text if len(text) <= 72 else text[:69].rsplit(" ", 1)[0] + " ..."


def _notebook(slides: list[Slide]):  # -> nbformat.NotebookNode
    import nbformat

    cells = []
    for slide in slides:
        text = [f"## {slide.title}", ""]
        if sum(len(line) for line in slide.lines) > _DENSE_CHARS:  # a long paragraph: smaller type, still on the slide
            text.append('<div class="dense">' + "".join(f"<p>{html.escape(line)}</p>" for line in slide.lines) + "</div>")
        else:
            text += [f"* {line}" if len(slide.lines) > 1 else line for line in slide.lines]
        attachments = {}
        if slide.placeholder:
            text.append(f'<div class="placeholder">Not produced yet: run notebook {slide.placeholder} '
                        "(make milestone)</div>")
        if slide.plot is not None:
            name = slide.plot.path.name
            attachments[name] = {"image/png": base64.b64encode(slide.plot.path.read_bytes()).decode("ascii")}
            text += ["", f"![{slide.plot.caption}](attachment:{name})"]
        if slide.table is not None:
            text += ["", table_html(slide.table)]
        cell = nbformat.v4.new_markdown_cell("\n".join(text), metadata={"slideshow": {"slide_type": "slide"}})
        if attachments:
            cell["attachments"] = attachments
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["title"] = slides[0].title
    return notebook
