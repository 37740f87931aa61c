"""Event-loop helpers of the engines: blocking entry points (also inside Jupyter's loop), precise sleeps."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["run_sync", "sleep_until"]

T = TypeVar("T")
_SPIN_S = 0.002  # the event loop's timers wake up to ~1 ms late (epoll counts milliseconds)


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion; inside a running loop, in a fresh loop on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


async def sleep_until(when: float) -> None:
    """Sleep until `when` (perf_counter); the last `_SPIN_S` yielding to the loop rather than on a timer."""
    delay = when - time.perf_counter() - _SPIN_S
    if delay > 0:
        await asyncio.sleep(delay)
    while time.perf_counter() < when:
        await asyncio.sleep(0)  # answers already in can still be handled while it waits
