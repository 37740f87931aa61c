"""Build the runtime image and one image per variant, offline, through the engine's builder.

    milestone-runtime:<inputs>        base + venv (wheelhouse) + milestone_lib wheel, non-root, HEALTHCHECK
    milestone-<variant>:<inputs>      FROM the runtime + the variant folder as one last thin layer,
                                      labelled variant / step / format / precision / manifest sha256

Each image is labelled with the sha256 of its inputs (Dockerfile, wheels, sources, or runtime id +
variant files); an image with those inputs already in the engine is reused without a build, so
rebuilding every variant with nothing changed costs a lookup each. `:latest` follows the last build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import BuildError
from pydantic import BaseModel

from ..contracts import MANIFEST_NAME, load_manifest, sha256_file
from ..errors import ContainerError
from ..settings import PROJECT_ROOT, ProjectSettings
from .base import ensure_base_image
from .wheelhouse import ensure_wheelhouse, project_wheel

__all__ = ["LABEL_PREFIX", "RUNTIME_REPOSITORY", "BuiltImage", "build_runtime_image", "build_variant_image",
           "prune_images",
           "variant_repository"]

RUNTIME_REPOSITORY = "milestone-runtime"
LABEL_PREFIX = "org.milestone."
_INPUTS = LABEL_PREFIX + "inputs-sha256"
DOCKERFILES = PROJECT_ROOT / "containers"


class BuiltImage(BaseModel):
    """An image in the engine, as a build left it."""

    repository: str
    tag: str
    image_id: str
    size_bytes: int
    layers: int
    variant: str | None = None
    step: str | None = None
    built: bool
    """False when an image with the same inputs was already there (nothing was built)."""
    seconds: float

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def variant_repository(variant: str) -> str:
    """The image repository of a variant: `milestone-<variant>` (lower case, as Docker requires)."""
    return f"milestone-{variant.lower()}"


def _tree_digest(root: Path, *, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _existing(client: docker.DockerClient, repository: str, inputs: str) -> docker.models.images.Image | None:
    images = client.images.list(name=repository, filters={"label": f"{_INPUTS}={inputs}"})
    return images[0] if images else None


def _describe(client: docker.DockerClient, image: docker.models.images.Image, repository: str, tag: str, *,
              built: bool, started: float, variant: str | None = None, step: str | None = None) -> BuiltImage:
    image.tag(repository, tag)
    image.tag(repository, "latest")
    image.reload()
    layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
    return BuiltImage(repository=repository, tag=tag, image_id=image.id, size_bytes=int(image.attrs["Size"]),
                      layers=layers, variant=variant, step=step, built=built,
                      seconds=time.perf_counter() - started)


def _build(client: docker.DockerClient, context: Path, dockerfile: Path, *, tag: str, labels: dict[str, str],
           buildargs: dict[str, str]) -> docker.models.images.Image:
    shutil.copy(dockerfile, context / "Dockerfile")
    try:
        image, _ = client.images.build(path=str(context), tag=tag, labels=labels, buildargs=buildargs, rm=True,
                                       forcerm=True, network_mode="none", pull=False)
    except BuildError as exc:
        tail = "".join(str(line.get("stream", line.get("error", ""))) for line in list(exc.build_log)[-12:])
        raise ContainerError(f"building {tag} from {dockerfile.name} failed: {exc.msg}\n{tail}") from exc
    return image


def build_runtime_image(client: docker.DockerClient, *, settings: ProjectSettings | None = None) -> BuiltImage:
    """The runtime image (base, wheels, milestone_lib); reused when its inputs did not change."""
    started = time.perf_counter()
    settings = settings or ProjectSettings()
    base = ensure_base_image(client, settings=settings)
    wheels = ensure_wheelhouse(settings)
    dockerfile = DOCKERFILES / "runtime.Dockerfile"
    base_id = client.images.get(base).id
    inputs = hashlib.sha256("\0".join([
        base_id, dockerfile.read_text(), (wheels / ".stamp").read_text(),
        _tree_digest(PROJECT_ROOT / "milestone_lib"), sha256_file(PROJECT_ROOT / "pyproject.toml"),
    ]).encode()).hexdigest()
    tag = inputs[:12]
    found = _existing(client, RUNTIME_REPOSITORY, inputs)
    if found is not None:
        return _describe(client, found, RUNTIME_REPOSITORY, tag, built=False, started=started)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runtime-context-", dir=settings.cache_dir) as tmp:
        context = Path(tmp)
        shutil.copytree(wheels, context / "wheels", copy_function=_link_or_copy)
        project_wheel(context / "project")
        image = _build(client, context, dockerfile, tag=f"{RUNTIME_REPOSITORY}:{tag}",
                       labels={_INPUTS: inputs, LABEL_PREFIX + "role": "runtime"}, buildargs={"BASE": base})
    return _describe(client, image, RUNTIME_REPOSITORY, tag, built=True, started=started)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the build context is read, never written: a hard link saves the copy
    except OSError:
        shutil.copy2(src, dst)


def build_variant_image(client: docker.DockerClient, folder: Path, *, runtime: BuiltImage,
                        settings: ProjectSettings | None = None) -> BuiltImage:
    """The variant's image: the runtime plus the variant's manifest and files as the last layer."""
    started = time.perf_counter()
    settings = settings or ProjectSettings()
    folder = Path(folder)
    if not (folder / MANIFEST_NAME).is_file():
        raise ContainerError(f"'{folder}' holds no {MANIFEST_NAME}; build the variant first "
                             "(notebooks/01_build_variants.ipynb or `make variants`)")
    manifest = load_manifest(folder)
    manifest_sha = sha256_file(folder / MANIFEST_NAME)
    dockerfile = DOCKERFILES / "variant.Dockerfile"
    repository = variant_repository(manifest.name)
    inputs = hashlib.sha256(f"{runtime.image_id}\0{dockerfile.read_text()}\0{manifest_sha}".encode()).hexdigest()
    tag = inputs[:12]
    found = _existing(client, repository, inputs)
    if found is not None:
        return _describe(client, found, repository, tag, built=False, started=started, variant=manifest.name,
                         step=manifest.step)
    labels = {"variant": manifest.name, "step": manifest.step, "format": manifest.format,
              "precision": manifest.precision, "manifest-sha256": manifest_sha}
    with tempfile.TemporaryDirectory(prefix="variant-context-", dir=settings.cache_dir) as tmp:
        context = Path(tmp)
        (context / "variant").mkdir()
        # only what the manifest lists (plus itself): no build leftovers in the image
        for relative in [MANIFEST_NAME, *(entry.path for entry in manifest.files)]:
            target = context / "variant" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(str(folder / relative), str(target))
        image = _build(client, context, dockerfile, tag=f"{repository}:{tag}",
                       labels={_INPUTS: inputs, LABEL_PREFIX + "role": "variant"},
                       buildargs={"RUNTIME": runtime.ref, **{k.upper().replace("-", "_"): v
                                                                  for k, v in labels.items()}})
    return _describe(client, image, repository, tag, built=True, started=started, variant=manifest.name,
                     step=manifest.step)


def prune_images(client: docker.DockerClient, *, repositories: list[str] | None = None) -> list[str]:
    """Remove milestone images (of `repositories`, default all) that `:latest` no longer points to and no
    container uses; their tags.

    Every source change builds a new runtime (and variant images on it); the old ones stay until pruned.
    Variant images go first (an image with children cannot be removed); a failure leaves that image.
    """
    in_use = {c.image.id for c in client.containers.list(all=True) if c.image is not None}
    removed = []
    images = client.images.list(filters={"label": _INPUTS})
    current = {t.rsplit(":", 1)[0]: i.id for i in images for t in i.tags if t.endswith(":latest")}
    stale = [i for i in images if i.id not in in_use and i.id not in current.values()
             and (repositories is None or any(t.rsplit(":", 1)[0] in repositories for t in i.tags))]
    for image in sorted(stale, key=lambda i: i.labels.get(LABEL_PREFIX + "role") != "variant"):
        try:
            client.images.remove(image.id, force=True)
            removed += image.tags
        except docker.errors.APIError:
            pass
    return removed
