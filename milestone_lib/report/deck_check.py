"""What each slide of a reveal.js deck showed in the browser, and the deck's problems (`browser.check_deck`).

The page script walks `Reveal.getSlides()` (the slides a viewer steps through), shows each with
`Reveal.slide(h, v)` and measures it at reveal.js's configured size (its `width` x `height`, before the
scaling to the window): the slide's content box against that size, any element whose overflow is hidden
and whose content is larger (a table cut off), its figures (loaded img, svg, canvas) and tables, its
words outside tables, figures and speaker notes (`aside.notes`), and its notes' words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MilestoneError

__all__ = ["DECK_STATE", "DeckCheck", "SlideCheck", "deck_problems", "read_slides"]

DECK_STATE = r"""(async () => {
  const pause = ms => new Promise(r => setTimeout(r, ms));
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (let i = 0; i < 200 && !(typeof Reveal !== 'undefined' && Reveal.isReady && Reveal.isReady()); i++) await pause(50);
  if (typeof Reveal === 'undefined' || !Reveal.isReady()) return JSON.stringify({error: 'reveal.js did not start'});
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const config = Reveal.getConfig();
  const words = text => (text.match(/\S+/g) || []).filter(w => /[\p{L}\p{N}]/u.test(w)).length;
  // Text nodes joined by spaces: textContent would glue a heading's last word to the next paragraph's first.
  const text = root => { const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT), parts = [];
    while (walk.nextNode()) parts.push(walk.currentNode.nodeValue); return parts.join(' '); };
  const inNotes = e => e.closest('aside.notes') !== null;
  const slides = [];
  for (const slide of Reveal.getSlides()) {
    const {h, v} = Reveal.getIndices(slide);
    Reveal.slide(h, v);
    await frame();
    const figures = [...slide.querySelectorAll('img, svg, canvas')].filter(e => !inNotes(e) &&
      (e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)));
    const tables = [...slide.querySelectorAll('table')].filter(e => !inNotes(e));
    const clipped = [...slide.querySelectorAll('*')].filter(e => !inNotes(e) && getComputedStyle(e).overflow !== 'visible'
      && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1));
    const bare = slide.cloneNode(true);
    bare.querySelectorAll('aside.notes, table, figure, img, svg, canvas, script, style, a.anchor-link')
      .forEach(e => e.remove());
    const heading = slide.querySelector('h1, h2, h3');
    slides.push({h, v, title: heading ? heading.textContent.trim() : '',
      width: Number(config.width), height: Number(config.height),
      top: slide.offsetTop, left: slide.offsetLeft, content_height: slide.scrollHeight, content_width: slide.scrollWidth,
      clipped: clipped.map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '')),
      figures: figures.length, tables: tables.length, words: words(text(bare)),
      notes_words: [...slide.querySelectorAll('aside.notes')].reduce((n, e) => n + words(text(e)), 0),
      table_headers: tables.map(t => [...(t.tHead ? t.tHead.rows[0].cells : (t.rows[0] || {cells: []}).cells)]
        .map(c => c.textContent.trim())),
      placeholder: slide.querySelector('.placeholder') !== null, data: {...slide.dataset},
      text: slide.innerText});
  }
  Reveal.slide(0, 0);
  return JSON.stringify({slides});
})()"""
"""The page script: JSON `{"slides": [...]}`, one object per slide, the fields of `SlideCheck`."""


@dataclass(frozen=True)
class SlideCheck:
    """One slide as the browser showed it, measured at the deck's configured size."""

    number: int
    """1-based, in the order a viewer steps through the deck."""
    indices: tuple[int, int]
    """reveal.js's (horizontal, vertical) indices: `Reveal.slide(*indices)` shows it."""
    title: str
    width: int
    height: int
    """The slide size reveal.js lays the deck out at (its `width` / `height` settings)."""
    content_height: int
    content_width: int
    bottom: int
    """Where the content ends (px from the slide's top): its offset (reveal.js centers it) plus its height."""
    clipped: list[str]
    """Elements with hidden overflow whose content is larger than they are (e.g. a table wider than the slide)."""
    figures: int
    tables: int
    words: int
    """Words of running text: outside tables, figures and speaker notes (the title counts)."""
    notes_words: int
    table_headers: list[list[str]]
    placeholder: bool
    """The slide says an input is missing ("Not produced yet: run notebook NN ...")."""
    data: dict[str, str] = field(default_factory=dict)
    """The section's `data-*` attributes (`deliverable: vslca`)."""
    text: str = ""

    @property
    def fits(self) -> bool:
        """Everything shows within the slide: nothing below or right of it, nothing cut off inside it."""
        return self.bottom <= self.height and self.content_width <= self.width and not self.clipped

    @property
    def has_figure(self) -> bool:
        return self.figures > 0

    @property
    def has_table(self) -> bool:
        return self.tables > 0


@dataclass(frozen=True)
class DeckCheck:
    """Every slide of a deck, and what is wrong with it."""

    path: Path
    width: int
    height: int
    """The browser window's size."""
    slides: list[SlideCheck]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return bool(self.slides) and not self.problems

    def summary(self) -> list[dict[str, Any]]:
        """One row per slide: number, title, fits, height, figure / table, words (on the slide and in its notes)."""
        return [{"slide": s.number, "title": s.title, "fits": s.fits, "content_px": s.bottom,
                 "figure": s.has_figure, "table": s.has_table, "words": s.words, "notes_words": s.notes_words}
                for s in self.slides]


def read_slides(evaluate: Callable[[str], Any]) -> list[SlideCheck]:
    """Run `DECK_STATE` in the page (`evaluate(script) -> JSON value`) and type what it measured."""
    state = evaluate(DECK_STATE)
    if "error" in state:
        raise MilestoneError(f"the deck check failed: {state['error']}; is it a reveal.js deck (build_slides)?")
    return [SlideCheck(number=i, indices=(int(s["h"]), int(s.get("v") or 0)), title=s["title"], width=int(s["width"]),
                       height=int(s["height"]), content_height=int(s["content_height"]),
                       content_width=int(s["content_width"]) + max(0, int(s["left"])),
                       bottom=int(s["top"]) + int(s["content_height"]), clipped=list(s["clipped"]),
                       figures=int(s["figures"]), tables=int(s["tables"]), words=int(s["words"]),
                       notes_words=int(s["notes_words"]), table_headers=[list(h) for h in s["table_headers"]],
                       placeholder=bool(s["placeholder"]), data=dict(s["data"]), text=s["text"])
            for i, s in enumerate(state["slides"], start=1)]


def deck_problems(slides: list[SlideCheck], *, max_words: int = 60) -> list[str]:
    """What a class could not follow: a slide that does not fit, has no figure or table, or too many words.

    The first slide (the title) needs no figure, nor does one that says an input is missing.
    """
    problems = []
    for s in slides:
        label = f"slide {s.number} ({s.title[:60]!r})"
        if s.bottom > s.height or s.content_width > s.width:
            problems.append(f"{label}: its content takes {s.content_width} x {s.bottom} px, over the {s.width} x "
                            f"{s.height} slide, so it scrolls or is cut off; shorten it or split it")
        if s.clipped:
            problems.append(f"{label}: cut off inside {', '.join(sorted(set(s.clipped)))} (content larger than its box)")
        if s.number > 1 and not (s.has_figure or s.has_table or s.placeholder):
            problems.append(f"{label}: neither a figure nor a table; show the claim with one")
        if s.words > max_words:
            problems.append(f"{label}: {s.words} words outside tables and figures (at most {max_words}); "
                            "move the rest to the speaker notes")
    if not slides:
        problems.append("the deck has no slides")
    return problems
