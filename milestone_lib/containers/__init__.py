"""Container images of the pipeline, built offline, and the Docker engine they run on.

    engine.py     find the engine (DOCKER_HOST, this checkout's private one, the default socket);
                  start / stop the private engine (`make docker-up` / `make docker-down`)
    base.py       milestone-base:bookworm: debootstrap --variant=minbase + python3, imported
    wheelhouse.py the runtime's wheels downloaded on the host; milestone_lib as a wheel
    build.py      milestone-runtime and one milestone-<variant> image per variant (cached by inputs)
    publish.py    build_images (runtime + every servable variant), push_images, the variant table's column
    __main__.py   `python -m milestone_lib.containers up | down | status | build [--push]`

Dockerfiles: `containers/runtime.Dockerfile`, `containers/variant.Dockerfile`. Images in the
registry (deduplicated layers): `milestone_lib.registry.images`.
"""

from __future__ import annotations

from .build import (
    RUNTIME_REPOSITORY,
    BuiltImage,
    build_runtime_image,
    build_variant_image,
    variant_repository,
)
from .engine import (
    connect_engine,
    engine_answers,
    start_private_engine,
    stop_private_engine,
)

__all__ = [
    "RUNTIME_REPOSITORY",
    "BuiltImage",
    "build_runtime_image",
    "build_variant_image",
    "connect_engine",
    "engine_answers",
    "start_private_engine",
    "stop_private_engine",
    "variant_repository",
]
