"""YOLO losses: pure terms (:mod:`kyolo.losses.terms`) and the Keras ``YoloLoss``."""

from kyolo.losses.yolo import COMPONENTS, YoloLoss

__all__ = ["COMPONENTS", "YoloLoss"]
