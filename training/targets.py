"""Glue between the data pipeline (pixel ``xyxy`` boxes) and the target encoder."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from kyolo.boxes import xyxy_to_xywh
from kyolo.config import YoloConfig
from kyolo.encode import encode_targets


def target_encoder(
    cfg: YoloConfig,
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tuple[tf.Tensor, ...]]]:
    """``encode(image, boxes, classes) -> (image, y_true per scale)`` for ``make_dataset``.

    ``boxes`` are ``(n, 4)`` xyxy in network-input pixels; the encoder wants them normalised.
    """
    height, width = cfg.input_size
    size = tf.constant([width, height, width, height], tf.float32)

    def encode(image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor):
        return image, encode_targets(xyxy_to_xywh(boxes) / size, classes, cfg)

    return encode
