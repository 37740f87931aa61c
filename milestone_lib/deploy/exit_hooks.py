"""Nothing a backend started outlives this interpreter: teardown at exit and on SIGTERM.

`register(backend)` when it starts something, `unregister(backend)` once it stopped everything.
The first registration installs an atexit hook and (from the main thread) a SIGTERM handler that
tears every registered backend down, then chains to the previous handler.
"""

from __future__ import annotations

import atexit
import signal
import threading
from typing import Protocol

__all__ = ["register", "registered", "unregister"]


class _Stoppable(Protocol):
    def teardown(self) -> None: ...


# Strong references: a deployment whose backend object was dropped (a notebook variable reassigned)
# is still stopped at exit.
_LIVE: list[_Stoppable] = []
_installed = False
_lock = threading.Lock()


def _teardown_all() -> None:
    for backend in _LIVE.copy():  # teardown() unregisters while we iterate
        backend.teardown()


def _on_sigterm(previous: object) -> object:
    def handler(signum: int, frame: object) -> None:
        _teardown_all()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            raise SystemExit(128 + signum)

    return handler


def register(backend: _Stoppable) -> None:
    """Tear `backend` down at interpreter exit or on SIGTERM unless it is unregistered first."""
    global _installed
    with _lock:
        if not _installed:
            atexit.register(_teardown_all)
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _on_sigterm(signal.getsignal(signal.SIGTERM)))  # type: ignore[arg-type]
            _installed = True
        if not any(b is backend for b in _LIVE):
            _LIVE.append(backend)


def unregister(backend: _Stoppable) -> None:
    with _lock:
        _LIVE[:] = [b for b in _LIVE if b is not backend]


def registered() -> list[_Stoppable]:
    """The backends that would be torn down at exit now."""
    return list(_LIVE)
