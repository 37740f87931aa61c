"""Waiting until freshly started replicas are ready, for any backend that polls them one by one.

The backend says what "ready" and "exited" mean for one replica (a READY line, a health answer)
and how to word the two failures; the loop, the deadline and the order of checks are shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import DeploymentError

__all__ = ["wait_until_ready"]

R = TypeVar("R")


def wait_until_ready(pending: Sequence[R], timeout_s: float, *, ready: Callable[[R], bool],
                     exited: Callable[[R], str | None], timed_out: Callable[[list[R]], str],
                     poll_s: float) -> None:
    """Poll each pending replica until all are ready.

    Args:
        pending: the replicas still to wait for.
        ready: True once the replica serves (it may record its address on the way).
        exited: the error message when the replica exited before it was ready, else None.
        timed_out: the error message naming the replicas still pending at the deadline.
        poll_s: the pause between rounds.

    Raises:
        DeploymentError: the first replica that exited, or every replica still pending at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    waiting = list(pending)
    while waiting:
        for replica in list(waiting):
            if ready(replica):
                waiting.remove(replica)
            elif (message := exited(replica)) is not None:
                raise DeploymentError(message)
        if waiting and time.monotonic() > deadline:
            raise DeploymentError(timed_out(waiting))
        if waiting:
            time.sleep(poll_s)
