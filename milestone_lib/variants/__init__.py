"""Building model variants: train, export, quantize, measure, write a manifest beside each.

Entry point `build.build_variants(config.BuildConfig())`; `family` builds the formats of one
model, `yolo` / `hf` train and export, `quantize` and `tensorrt` derive formats, `speed` times them.
"""

from __future__ import annotations

__all__: list[str] = []
