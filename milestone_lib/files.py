"""Writing files so that a reader never sees half of one.

Every file another process may read while we write it (a manifest, the gateway's endpoints
file, a state file, a dataset marker) goes through `atomic_write_*`: temp file in the same
folder, then `os.replace`, which is atomic on POSIX.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text"]


def _umask() -> int:
    # the process umask can only be read by setting it; done once, at import
    current = os.umask(0)
    os.umask(current)
    return current


_DEFAULT_MODE = 0o666 & ~_umask()  # what open() would give: a temp file starts at 0600


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write `data` to `path` atomically; `mode` sets permissions (e.g. 0o600 for secrets; default as
    `open()` would, 0666 less the umask) before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, _DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | Path, value: Any, *, mode: int | None = None, indent: int | None = 2) -> Path:
    """Write `value` as JSON to `path` atomically (keys kept in insertion order)."""
    return atomic_write_text(path, json.dumps(value, indent=indent) + "\n", mode=mode)
