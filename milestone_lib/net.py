"""Loopback ports and the READY line every server process prints.

Servers of this package bind 127.0.0.1 only. A server process prints `READY <host>:<port>`
on stdout once it serves; `parse_ready_line` is the one reader of that contract.
"""

from __future__ import annotations

import re
import socket

__all__ = ["LOOPBACK", "format_ready_line", "free_port", "parse_ready_line", "port_answers", "port_is_free"]

LOOPBACK = "127.0.0.1"
_READY = re.compile(r"^READY (\S+):(\d+)\s*$")


def free_port(*, avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it before you bind)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise OSError("no free TCP port on 127.0.0.1; close some servers and try again")


def port_is_free(port: int, *, host: str = LOOPBACK) -> bool:
    """Whether `host:port` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, *, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on `host:port`."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def format_ready_line(host: str, port: int) -> str:
    """The line a server prints once it serves."""
    return f"READY {host}:{port}"


def parse_ready_line(line: str) -> tuple[str, int] | None:
    """`(host, port)` from a READY line; None for any other line."""
    match = _READY.match(line.strip())
    return (match.group(1), int(match.group(2))) if match else None
