"""What every serving process shares: its command-line basics, READY line, signals and exit codes.

A service process prints `READY <host>:<port>` once it serves, stops gracefully on SIGTERM or
SIGINT (exit 0), and turns a bad flag or file into one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from ..net import format_ready_line

__all__ = ["run_service", "serve_until_signal", "service_parser"]

log = logging.getLogger(__name__)


def service_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the flags every service takes: --host, --port, --metrics-port, --grace-s."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed in the READY line)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus port on the same host; 0: off")
    parser.add_argument("--grace-s", type=float, default=5.0, help="how long requests in flight may finish on stop")
    return parser


async def serve_until_signal(start: Callable[[str, int], Awaitable[int]], stop: Callable[[float], Awaitable[None]],
                             *, host: str, port: int, grace: float = 5.0) -> None:
    """Start, print `READY host:port`, wait for SIGTERM/SIGINT, stop gracefully."""
    bound = await start(host, port)
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    print(format_ready_line(host, bound), flush=True)
    await stop_event.wait()
    log.info("stopping (grace %.1f s)", grace)
    await stop(grace)


def run_service(serve: Awaitable[None]) -> int:
    """Run a service's coroutine to the end with logging on stderr; the process exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve)  # type: ignore[arg-type]
    except (FileNotFoundError, OSError, ValueError) as exc:  # a bad flag or file: one clear line, exit 2
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0
