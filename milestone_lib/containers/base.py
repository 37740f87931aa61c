"""The base image: Debian bookworm (minbase) with Python 3, built offline by debootstrap + import.

No container registry is reachable here, so `python:3.11-slim` cannot be pulled; debootstrap
fetches Debian packages from the mirror apt already uses (read from /etc/apt/sources.list*), the
root filesystem is trimmed (apt caches and lists, docs, man pages, locales) and imported as
`milestone-base:bookworm`. Built once per engine data root; the root filesystem is cached under
`<cache_dir>/containers/rootfs-bookworm` so a fresh engine re-imports it in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from ..errors import ContainerError
from ..settings import ProjectSettings

__all__ = ["BASE_IMAGE", "BASE_PACKAGES", "debian_mirror", "ensure_base_image"]

BASE_IMAGE = "milestone-base:bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
"""Debian packages on top of minbase: the interpreter and venv (whose bundled pip installs the wheelhouse)."""
_SUITE = "bookworm"
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale")


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 `URIs:` or a classic `deb` line)."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.MULTILINE):
            url = match.group(1).rstrip("/")
            if "security" not in url and url.startswith("http"):
                return url
    return "http://deb.debian.org/debian"


def _rootfs(settings: ProjectSettings) -> Path:
    """A trimmed bookworm root filesystem, built by debootstrap unless one is cached."""
    target = settings.cache_dir / "containers" / f"rootfs-{_SUITE}"
    if (target / ".milestone-complete").exists():
        return target
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                                  else None)
    if debootstrap is None or os.geteuid() != 0:
        why = "debootstrap is not installed" if debootstrap is None else "debootstrap needs root"
        raise ContainerError(
            f"cannot build the base image {BASE_IMAGE}: {why}; as root run `apt-get install debootstrap`, "
            "or load a base image with that tag into the engine"
        )
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    args = [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", _SUITE, str(target),
            debian_mirror()]
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ContainerError(f"debootstrap failed (exit {done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}; "
                             "check that the Debian mirror answers (`apt-get update`)")
    for relative in _TRIM:
        folder = target / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (target / ".milestone-complete").write_text(_SUITE)
    return target


def ensure_base_image(client: docker.DockerClient, *, settings: ProjectSettings | None = None) -> str:
    """`milestone-base:bookworm` in the engine, built (debootstrap + import) only when it is missing."""
    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except ImageNotFound:
        pass
    settings = settings or ProjectSettings()
    rootfs = _rootfs(settings)
    with tempfile.TemporaryDirectory(dir=settings.cache_dir) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        # numeric owners: the files keep root ownership whatever this machine's users are
        subprocess.run(["tar", "--numeric-owner", "--exclude=./.milestone-complete", "-C", str(rootfs), "-cf",
                        str(tarball), "."], check=True)
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag,
                                          changes=['ENV LANG=C.UTF-8', 'CMD ["/bin/bash"]'])
    client.images.get(BASE_IMAGE)  # raises if the import did not tag it
    return BASE_IMAGE
