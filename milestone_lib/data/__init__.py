"""The first stage: datasets (synthetic or any YOLO-format one), their crops, image geometry.

Modules: `synthetic` (the generated default), `yolo` (loading a dataset yaml), `crops`
(jittered ground-truth crops), `geometry` (letterbox, box mapping, crop cutting).
"""

from __future__ import annotations

__all__: list[str] = []
