"""The steps of the pipeline, named once: every module that lists or checks steps imports them from here."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["STEPS", "Step"]

Step = Literal["detect", "classify"]
STEPS: tuple[Step, ...] = get_args(Step)
