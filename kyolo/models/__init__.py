"""Keras 3 functional YOLO models: one raw-logit output ``scale_{s}`` per ``cfg.strides[s]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from kyolo.config import YoloConfig
from kyolo.models.nano import nano
from kyolo.models.sync_bn import SyncBatchNormalization, synchronized_batch_norm
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


def build_model(name: str, cfg: YoloConfig, *, sync_bn: bool = False, **kwargs: Any) -> keras.Model:
    """Build the model registered as ``name`` for ``cfg``; ``kwargs`` go to its builder.

    ``sync_bn``: every ``BatchNormalization`` computes its batch statistics over all replicas
    (:func:`synchronized_batch_norm`), so that a multi-replica step normalises as one device
    would with the global batch.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    model = MODELS[name](cfg, **kwargs)
    return synchronized_batch_norm(model) if sync_bn else model


__all__ = [
    "MODELS",
    "STRIDES",
    "SyncBatchNormalization",
    "build_model",
    "nano",
    "synchronized_batch_norm",
    "yolov3",
    "yolov3_tiny",
]
