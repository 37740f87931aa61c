"""`reports/slides.html`: the class presentation, a reveal.js deck made by nbconvert, working offline.

The deck is written as a notebook (`slides.ipynb`, one Markdown cell per slide, plots attached
to their cell) and converted with nbconvert's `SlidesExporter`. nbconvert's own reveal template
loads reveal.js, require.js, jQuery, mermaid and MathJax from CDNs; the template here replaces
its head and its script block so that reveal.js (from the `sphinx-revealjs` wheel, which ships
reveal.js 5) and every style sheet are inlined, and the page fetches nothing. One message per
slide, its title the message (`deck.deck_slides` says what); one plot or one small table per slide, large,
for a projector, sized to fit the 1280 x 720 slide; the full sentences are speaker notes (`<aside class="notes">`,
a notes cell of `slides.ipynb`; press S for reveal.js's speaker view). `browser.check_deck` checks every slide.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import math
from pathlib import Path

from ..errors import MilestoneError
from ..files import atomic_write_text
from .deck import deck_slides
from .html import table_html
from .inputs import read_reports
from .slide import Slide

__all__ = ["SLIDES_NAME", "SLIDE_HEIGHT", "SLIDE_WIDTH", "build_slides", "reveal_assets"]

SLIDES_NAME = "slides.html"
_THEME = "white"
SLIDE_WIDTH, SLIDE_HEIGHT = 1280, 720
"""reveal.js's slide size (px): the deck is laid out for it and scaled to the screen."""
# Rough type metrics of the style below (DejaVu Sans): characters per line and line height, to size the plot.
_TITLE_CHARS, _TITLE_LINE_PX = 52, 47
_TEXT_CHARS, _TEXT_LINE_PX = 80, 37
_EXTRA_CSS = """
.reveal .slides section{text-align:left}
.reveal h1,.reveal h2{font-family:"DejaVu Sans",Arial,sans-serif;text-transform:none;color:#1d2733}
.reveal h2{font-size:40px;line-height:1.15;margin:0 0 12px 0}
.reveal .jp-RenderedHTMLCommon,.reveal .jp-RenderedHTMLCommon p,.reveal .jp-RenderedHTMLCommon li{font-size:28px;
 line-height:1.3}
.reveal .jp-RenderedHTMLCommon p{margin:0 0 10px 0}
.reveal .jp-RenderedHTMLCommon img{display:block;margin:4px auto;max-height:var(--figure-height,560px);max-width:100%;
 width:auto}
.reveal .jp-RenderedHTMLCommon table{font-size:20px;margin:6px auto}.reveal .scroll{overflow:hidden}
.reveal .jp-RenderedHTMLCommon td,.reveal .jp-RenderedHTMLCommon th{padding:4px 10px}
.reveal .placeholder{border:3px dashed #d9822b;padding:14px;font-weight:bold;font-size:24px;margin-top:10px}
.reveal section[data-slide="answer"] p{font-size:30px;font-weight:bold;color:#2d6a2d;margin-top:14px}
.reveal section[data-slide="answer"] table{font-size:26px}
.reveal section[data-slide="title"] h2{font-size:54px;margin-top:120px}
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
<script>{{ resources.offline.notes_js }}</script>
<script>Reveal.initialize({controls: true, progress: true, hash: true, slideNumber: "c/t", transition: "none",
  width: {{ resources.offline.width }}, height: {{ resources.offline.height }}, margin: 0.02,
  plugins: typeof RevealNotes === "undefined" ? [] : [RevealNotes]});</script>
{% endblock footer_js %}
"""


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
    assets = {**reveal_assets(), "extra_css": _EXTRA_CSS, "title": slides[0].title, "width": SLIDE_WIDTH,
              "height": SLIDE_HEIGHT}
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
    notes = dist.parent / "plugin" / "notes" / "notes.js"  # the speaker view (key S), its page inlined in the script
    notes_js = notes.read_text().replace("</script", "<\\/script") if notes.is_file() else ""
    return {"reveal_css": (dist / "reveal.css").read_text(), "theme_css": theme, "reveal_js": script,
            "notes_js": notes_js}


def _figure_height(slide: Slide) -> int:
    """The plot's height (px) that leaves room for the title, the lines and a placeholder on the slide."""
    def lines(text: str, chars: int) -> int:
        return max(1, math.ceil(len(text) / chars))

    used = 80 + lines(slide.title, _TITLE_CHARS) * _TITLE_LINE_PX
    used += sum(lines(text, _TEXT_CHARS) * _TEXT_LINE_PX + 10 for text in slide.lines)
    used += (lines(slide.placeholder, _TEXT_CHARS) * 32 + 40) if slide.placeholder else 0
    return max(240, SLIDE_HEIGHT - used)


def _notebook(slides: list[Slide]):  # -> nbformat.NotebookNode
    import nbformat

    cells = []
    for slide in slides:
        # Raw HTML blocks (escaped text), one per paragraph; the plot stays Markdown so nbconvert embeds its attachment.
        text = [f"<h2>{html.escape(slide.title)}</h2>"]
        text += [f"<p>{html.escape(line)}</p>" for line in slide.lines]
        if slide.placeholder:
            text.append(f'<div class="placeholder">{html.escape(slide.placeholder)}</div>')
        attachments = {}
        if slide.plot is not None:
            name = slide.plot.path.name
            attachments[name] = {"image/png": base64.b64encode(slide.plot.path.read_bytes()).decode("ascii")}
            text += [f'<div class="figure" style="--figure-height:{_figure_height(slide)}px">',
                     f"![{slide.plot.caption}](attachment:{name})", "</div>"]
        if slide.table is not None:
            text.append(table_html(slide.table))
        metadata = {"slideshow": {"slide_type": "slide", **({"data": dict(slide.data)} if slide.data else {})}}
        cell = nbformat.v4.new_markdown_cell("\n\n".join(text), metadata=metadata)
        if attachments:
            cell["attachments"] = attachments
        cells.append(cell)
        if slide.notes:
            notes = "\n\n".join(f"<p>{html.escape(note)}</p>" for note in slide.notes)
            cells.append(nbformat.v4.new_markdown_cell(notes, metadata={"slideshow": {"slide_type": "notes"}}))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["title"] = slides[0].title
    return notebook
