"""The wheelhouse: every Python package of the runtime image, downloaded on the host.

pip inside an image build has no network it can trust here, so the host downloads binary wheels
for the image's interpreter (CPython 3.11, glibc x86_64) once (`pip download`), pinned by
`containers/requirements-runtime.txt` and, for the dependencies it does not name, by the versions
the host venv holds. `project_wheel` builds milestone_lib itself as a wheel (from a copy of the
sources, so the checkout gets no build/ folder).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ContainerError
from ..settings import PROJECT_ROOT, ProjectSettings

__all__ = ["RUNTIME_REQUIREMENTS", "ensure_wheelhouse", "project_wheel"]

RUNTIME_REQUIREMENTS = PROJECT_ROOT / "containers" / "requirements-runtime.txt"
_PLATFORMS = ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
              "linux_x86_64")
_PYTHON = "3.11"  # Debian bookworm's python3


def _constraints() -> str:
    """`name==version` of every distribution the host venv holds (the image gets the same versions)."""
    pins = {dist.metadata["Name"].lower(): dist.version for dist in importlib.metadata.distributions()
            if dist.metadata["Name"]}
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()) if name != "milestone_lib")


def ensure_wheelhouse(settings: ProjectSettings | None = None) -> Path:
    """`<cache_dir>/wheelhouse/runtime` holding the runtime's wheels; downloaded only when the pins changed."""
    settings = settings or ProjectSettings()
    target = settings.cache_dir / "wheelhouse" / "runtime"
    requirements = RUNTIME_REQUIREMENTS.read_text()
    constraints = _constraints()
    stamp = hashlib.sha256((requirements + constraints).encode()).hexdigest()
    if (target / ".stamp").is_file() and (target / ".stamp").read_text() == stamp:
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    (target / "constraints.txt").write_text(constraints)
    shutil.copy(RUNTIME_REQUIREMENTS, target / "requirements-runtime.txt")
    args = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
            "--python-version", _PYTHON, "--implementation", "cp", "-d", str(target),
            "-r", str(target / "requirements-runtime.txt"), "-c", str(target / "constraints.txt")]
    for platform in _PLATFORMS:
        args += ["--platform", platform]
    done = subprocess.run(args, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ContainerError(
            f"`pip download` of the runtime wheels failed (exit {done.returncode}): {done.stderr.strip()[-1200:]}; "
            f"check that PyPI answers (`pip download numpy`) and the pins in {RUNTIME_REQUIREMENTS}"
        )
    (target / ".stamp").write_text(stamp)
    return target


def project_wheel(dest: Path) -> Path:
    """milestone_lib as a wheel in `dest` (sources only: no caches, no tests)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("milestone_lib-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="milestone-wheel-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(PROJECT_ROOT / "milestone_lib", source / "milestone_lib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(PROJECT_ROOT / "pyproject.toml", source / "pyproject.toml")
        shutil.copy(PROJECT_ROOT / "README.md", source / "README.md")
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                               "--disable-pip-version-check", "-w", str(dest), str(source)],
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise ContainerError(f"building the milestone_lib wheel failed: {done.stderr.strip()[-1200:]}; "
                                 "is setuptools installed in the venv (`make setup`)?")
    wheels = sorted(dest.glob("milestone_lib-*.whl"))
    if not wheels:
        raise ContainerError(f"pip wheel wrote no milestone_lib wheel into '{dest}'")
    return wheels[0]
