"""Open a generated page in headless Chromium and say what it showed and what it fetched.

Chromium is driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`: no
port, no websocket library). Every request the page makes is recorded (`Network.requestWillBeSent`),
and Chromium is also pointed at a proxy that does not exist and resolves no host name, so a request
to another host could not leave the machine even if the page made one. Then each `<img>` is checked: loaded, decoded, non-zero size.
`check_deck` shows a reveal.js deck slide by slide at a projector's size and says what fits (`deck_check`).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MilestoneError
from .deck_check import DeckCheck, deck_problems, read_slides

__all__ = ["LOCAL_SCHEMES", "PageCheck", "check_deck", "check_page", "find_chromium"]

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
"""URL schemes that never leave the machine."""
_BROWSERS = ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome")
# Counts images (and their state) once every image has settled; reveal.js decks also report slides.
_PAGE_STATE = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  return JSON.stringify({
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.alt || i.src).slice(0, 80)),
    title: document.title,
    slides: (typeof Reveal !== 'undefined' && Reveal.isReady && Reveal.isReady()) ? Reveal.getTotalSlides() : null,
    text_chars: document.body ? document.body.innerText.length : 0,
  });
})()"""


@dataclass(frozen=True)
class PageCheck:
    """What a page did in Chromium: its images, its requests, and (for a deck) its slide count."""

    path: Path
    title: str
    images: int
    broken_images: list[str]
    requests: list[str]
    slides: int | None
    text_chars: int
    console_errors: list[str] = field(default_factory=list)

    @property
    def external_requests(self) -> list[str]:
        """Requests whose URL leaves the machine (anything but file:, data:, blob:, ...)."""
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]

    @property
    def ok(self) -> bool:
        """Every image shown and no request left the machine."""
        return not self.broken_images and not self.external_requests

    def summary(self) -> dict[str, Any]:
        return {"page": self.path.name, "images": self.images, "broken_images": len(self.broken_images),
                "requests": len(self.requests), "external_requests": len(self.external_requests),
                "slides": self.slides, "ok": self.ok}


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH (Debian package `chromium`), or None."""
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Pipe:
    """DevTools protocol messages over Chromium's pipe: JSON, each ended by a NUL byte."""

    def __init__(self, process: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.process, self.write_fd, self.read_fd = process, write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout_s: float = 20.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise MilestoneError(f"Chromium refused {method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.read_fd], [], [], max(left, 0))
            if not ready:
                raise MilestoneError("Chromium did not answer in time; run it by hand with --headless to see why")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise MilestoneError(f"Chromium exited (code {self.process.poll()}) before answering")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def check_page(path: Path, *, chromium: str | None = None, timeout_s: float = 60.0, settle_s: float = 0.5) -> PageCheck:
    """Load `path` in headless Chromium with the network cut off; return its images, requests and slides."""
    path = _page(path)
    with _chromium(chromium, timeout_s=timeout_s) as pipe:
        return _inspect(pipe, path, timeout_s=timeout_s, settle_s=settle_s)


def check_deck(path: Path, width: int = 1280, height: int = 720, *, max_words: int = 60,
               chromium: str | None = None, timeout_s: float = 60.0) -> DeckCheck:
    """Show every slide of a reveal.js deck in a `width` x `height` window and say what each one holds.

    Per slide (`SlideCheck`): whether its content fits reveal.js's configured slide size without scrolling
    or being cut off, whether it shows a figure (img / svg) or a table, and its words outside tables,
    figures and speaker notes. `DeckCheck.problems` names each slide that does not fit, that carries
    neither a figure nor a table (the title slide and "not produced yet" slides excepted), or that has
    more than `max_words` words on it.
    """
    path = _page(path)
    with _chromium(chromium, timeout_s=timeout_s) as pipe:
        session = _open(pipe, path, timeout_s=timeout_s, settle_s=0.3,
                        viewport={"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        slides = read_slides(lambda script: _evaluate(pipe, session, script, path, timeout_s=timeout_s))
    return DeckCheck(path=path, width=width, height=height, slides=slides,
                     problems=deck_problems(slides, max_words=max_words))


def _page(path: Path) -> Path:
    path = Path(path).resolve()
    if not path.is_file():
        raise MilestoneError(f"no page at '{path}'; build it first (build_report / build_slides)")
    return path


@contextmanager
def _chromium(chromium: str | None, *, timeout_s: float) -> Iterator[_Pipe]:
    """A headless Chromium, offline, driven over its DevTools pipe; closed on the way out."""
    binary = chromium or find_chromium()
    if binary is None:
        raise MilestoneError("no Chromium on PATH; install the Debian package `chromium` (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="milestone-chromium-") as profile:
        to_chrome_r, to_chrome_w = _high(os.pipe())
        from_chrome_r, from_chrome_w = _high(os.pipe())
        arguments = [binary, "--headless", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                     "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-default-apps",
                     "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                     "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]
        # Chromium reads commands on fd 3 and writes replies on fd 4: bash (dash takes no fd above 9) moves the
        # pipes there and execs it; no preexec_fn, which is unsafe in a threaded process (a notebook kernel).
        shell = [shutil.which("bash") or "/bin/bash", "-c", f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', "sh", *arguments]
        process = subprocess.Popen(shell, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        pipe = _Pipe(process, to_chrome_w, from_chrome_r)
        try:
            yield pipe
        finally:
            try:
                pipe.send("Browser.close", timeout_s=5.0)
            except (MilestoneError, OSError):
                pass  # already gone
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(to_chrome_w)
            os.close(from_chrome_r)


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to fds >= 10, so the child's `3<&` / `4>&` cannot overwrite one with the other."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


def _open(pipe: _Pipe, path: Path, *, timeout_s: float, settle_s: float,
          viewport: dict[str, Any] | None = None) -> str:
    """A new tab (at `viewport` size, if given) showing `path`, loaded; returns its session id."""
    target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout_s=timeout_s)["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Network", "Page", "Runtime", "Log"):
        pipe.send(f"{domain}.enable", session=session)
    if viewport:
        pipe.send("Emulation.setDeviceMetricsOverride", viewport, session=session)
    pipe.send("Page.navigate", {"url": path.as_uri()}, session=session)
    pipe.wait_for("Page.loadEventFired", timeout_s=timeout_s)
    time.sleep(settle_s)  # reveal.js lays the deck out after the load event
    return session


def _evaluate(pipe: _Pipe, session: str, script: str, path: Path, *, timeout_s: float) -> Any:
    """The JSON value a page script returns (a promise is awaited)."""
    result = pipe.send("Runtime.evaluate", {"expression": script, "awaitPromise": True, "returnByValue": True},
                       session=session, timeout_s=timeout_s)
    if "exceptionDetails" in result:
        raise MilestoneError(f"the page check failed in '{path.name}': {result['exceptionDetails']}")
    return json.loads(result["result"]["value"])


def _inspect(pipe: _Pipe, path: Path, *, timeout_s: float, settle_s: float) -> PageCheck:
    session = _open(pipe, path, timeout_s=timeout_s, settle_s=settle_s)
    state = _evaluate(pipe, session, _PAGE_STATE, path, timeout_s=timeout_s)
    requests = [e["params"]["request"]["url"] for e in pipe.events if e.get("method") == "Network.requestWillBeSent"]
    errors = [e["params"]["entry"]["text"] for e in pipe.events
              if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"]
    errors += [str(e["params"]["exceptionDetails"].get("text")) for e in pipe.events
               if e.get("method") == "Runtime.exceptionThrown"]
    return PageCheck(path=path, title=state["title"], images=state["images"], broken_images=state["broken"],
                     requests=requests, slides=state["slides"], text_chars=state["text_chars"],
                     console_errors=errors)
