"""Bring dead local processes back: a thread that finds a replica or the gateway that exited and has it replaced.

The local counterpart of a container restart policy. For a replica, the backend's `revive(process)`
starts a new one of the same step, waits until it is ready and swaps it into the gateway's
membership; meanwhile the gateway routes around the dead one (it answers UNAVAILABLE, which the
gateway retries on another replica). For the gateway, it starts a new one on the same address;
meanwhile clients retry UNAVAILABLE within their deadline. Processes the backend retires itself
are out of its list before they stop, so they are never revived.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .processes import LocalProcess

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """Polls `processes()` every `interval_s`; calls `revive(process)` for each one that is not alive."""

    def __init__(self, processes: Callable[[], list[LocalProcess]], revive: Callable[[LocalProcess], None], *,
                 interval_s: float = 0.2) -> None:
        self.processes = processes
        self.revive = revive
        self.interval_s = interval_s
        self.restarts: list[str] = []
        """Labels of the processes replaced so far (`detect-0`, `gateway`), in order."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replica-supervisor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (call before stopping the processes, so none is revived on the way down)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for process in self.processes():
                if self._stop.is_set():
                    return
                if process.alive():
                    continue
                try:
                    self.revive(process)
                    self.restarts.append(process.label)
                except Exception:  # the supervisor must outlive one failed restart; the next poll retries
                    log.exception("could not restart %s", process.label)
