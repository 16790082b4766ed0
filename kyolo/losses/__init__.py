"""YOLO losses: pure terms (:mod:`kyolo.losses.terms`, :mod:`kyolo.losses.box`,
:mod:`kyolo.losses.scores`, :mod:`kyolo.losses.ohem`) and the Keras ``YoloLoss``."""

from kyolo.losses.yolo import YoloLoss

__all__ = ["YoloLoss"]
