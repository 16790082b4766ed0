"""Keras 3 functional YOLO models: one raw-logit output ``scale_{s}`` per ``cfg.strides[s]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from kyolo.config import YoloConfig
from kyolo.models.nano import nano
from kyolo.models.yolov3 import yolov3, yolov3_tiny

MODELS: dict[str, Callable[..., keras.Model]] = {
    "yolov3": yolov3,
    "yolov3_tiny": yolov3_tiny,
    "nano": nano,
}


STRIDES: dict[str, tuple[int, ...]] = {
    "yolov3": (32, 16, 8),
    "yolov3_tiny": (32, 16),
    "nano": (16, 8),
}
"""The strides each model builds by default, in its output order (deepest first)."""


def build_model(name: str, cfg: YoloConfig, **kwargs: Any) -> keras.Model:
    """Build the model registered as ``name`` for ``cfg``; ``kwargs`` go to its builder."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    return MODELS[name](cfg, **kwargs)


__all__ = ["MODELS", "STRIDES", "build_model", "nano", "yolov3", "yolov3_tiny"]
