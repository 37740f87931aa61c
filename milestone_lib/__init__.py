"""milestone_lib: build, store, serve, load-test and optimise a detect -> classify inference pipeline."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
