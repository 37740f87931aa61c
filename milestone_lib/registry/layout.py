"""Where things live in the registry's buckets: version ids, key names and the variant key layout.

    <models>/<pipeline>/<step>/<variant>/<version>/<file>...        the variant's files, as in its folder
    <models>/<pipeline>/<step>/<variant>/<version>/manifest.json    uploaded last: the version's commit mark
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import PurePosixPath

from ..contracts import MANIFEST_NAME
from ..errors import RegistryError

__all__ = [
    "BUILD_NOTEBOOK",
    "NAME_RE",
    "VERSION_RE",
    "check_name",
    "check_relative",
    "new_version_id",
    "variant_prefix",
]

BUILD_NOTEBOOK = "notebooks/01_build_variants.ipynb"
VERSION_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def new_version_id(now: datetime | None = None) -> str:
    """A fresh version: UTC time to the microsecond and 6 random hex digits, sortable as text."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(3)}"


def variant_prefix(pipeline: str, step: str, name: str, version: str | None = None) -> str:
    """Key prefix of a variant (every version), or of one version; ends in '/'."""
    base = f"{pipeline}/{step}/{name}/"
    return base + f"{version}/" if version else base


def check_name(value: str, what: str) -> str:
    if not NAME_RE.match(value or ""):
        raise RegistryError(f"{what} '{value}' cannot be a registry key; use letters, digits, '.', '_', '+' or '-'")
    return value


def check_relative(path: str, variant: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or path == MANIFEST_NAME:
        raise RegistryError(
            f"variant '{variant}' lists the file '{path}', which is not a plain path inside its folder; "
            f"rebuild it with {BUILD_NOTEBOOK}"
        )
    return path
