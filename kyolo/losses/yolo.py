"""``YoloLoss``: the Keras face of the YOLO loss, one instance per output scale."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.decode import cell_grid, decode_xywh, split_head
from kyolo.encode.targets import unpack_target
from kyolo.losses import terms

COMPONENTS = ("xy", "wh", "obj", "cls")


@keras.saving.register_keras_serializable(package="kyolo")
class YoloLoss(keras.losses.Loss):
    """YOLO loss of one output scale; with the defaults it is keras-yolo3's ``yolo_loss`` term.

    Per image: ``xy + wh + obj + cls``, each summed over the scale's slots (see
    :mod:`kyolo.losses.terms`). Keras' ``reduction="sum_over_batch_size"`` then divides by the
    batch size, as keras-yolo3 does, and Keras scales by the replica count under ``tf.distribute``.
    Summing the losses of all scales gives keras-yolo3's total.

    Args:
        config: the head configuration (or its ``to_dict()``).
        scale: which output this instance scores.
        ignore_thresh: negatives whose best IoU with a ground truth reaches this are not
            penalised for objectness.

    ``y_true`` is one scale's target from :mod:`kyolo.encode` (batched); ``y_pred`` the raw
    ``(b, gh, gw, A * (5 + C))`` output of that scale, any float dtype.
    """

    def __init__(
        self,
        config: YoloConfig | dict[str, Any],
        scale: int,
        ignore_thresh: float = 0.5,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name or f"yolo_loss_{scale}", reduction=reduction, dtype=dtype)
        self.config = YoloConfig.from_any(config)
        if not 0 <= scale < self.config.num_scales:
            raise ValueError(f"scale must be in [0, {self.config.num_scales}), got {scale}")
        self.scale = scale
        self.ignore_thresh = float(ignore_thresh)

    def components(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> dict[str, tf.Tensor]:
        """The loss split into ``xy, wh, obj, cls``, each ``(b,)`` per image (before reduction)."""
        cfg = self.config
        logits = split_head(y_pred, cfg)
        shape = tf.shape(logits)
        grid, true_boxes, valid = unpack_target(y_true, cfg)
        grid = tf.reshape(grid, tf.shape(logits))
        pred_boxes = decode_xywh(logits, cfg, self.scale)
        ignore = terms.ignore_mask(
            tf.reshape(pred_boxes, [shape[0], -1, 4]), true_boxes, valid, self.ignore_thresh
        )
        grid_wh = tf.cast(shape[1:3][::-1], tf.float32)
        anchors_norm = cfg.scale_anchors(self.scale) / (grid_wh * float(cfg.strides[self.scale]))
        xy, wh = terms.keras_yolo3_box_terms(
            grid, logits, cell_grid(shape[1], shape[2]), anchors_norm, grid_wh
        )
        return {
            "xy": xy,
            "wh": wh,
            "obj": terms.objectness_term(grid, logits, tf.reshape(ignore, tf.shape(grid)[:-1])),
            "cls": terms.class_term(grid, logits),
        }

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        return tf.add_n(list(self.components(y_true, y_pred).values()))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "config": self.config.to_dict(),
            "scale": self.scale,
            "ignore_thresh": self.ignore_thresh,
        }
