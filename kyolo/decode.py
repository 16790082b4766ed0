"""Raw head outputs → boxes. Shared by the loss (ignore mask) and by post-processing."""

from __future__ import annotations

import tensorflow as tf

from kyolo.config import YoloConfig


def split_head(y_pred: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """``(b, gh, gw, A * (5 + C))`` raw output → ``(b, gh, gw, A, 5 + C)`` float32 logits.

    Mixed-precision models emit float16/bfloat16; every loss and decode runs in float32.
    """
    shape = tf.shape(y_pred)
    depth = 5 + cfg.num_classes
    y_pred = tf.cast(y_pred, tf.float32)
    return tf.reshape(y_pred, [shape[0], shape[1], shape[2], cfg.anchors_per_scale, depth])


def cell_grid(grid_h: int | tf.Tensor, grid_w: int | tf.Tensor) -> tf.Tensor:
    """``(gh, gw, 1, 2)`` float32 ``(column, row)`` index of every cell."""
    cols, rows = tf.meshgrid(tf.range(grid_w), tf.range(grid_h))
    return tf.cast(tf.stack([cols, rows], axis=-1)[:, :, None, :], tf.float32)


def decode_xywh(logits: tf.Tensor, cfg: YoloConfig, scale: int) -> tf.Tensor:
    """YOLOv3 decode: ``xy = (σ(t_xy) + cell) / grid``, ``wh = exp(t_wh) · anchor / input``.

    Args:
        logits: ``(b, gh, gw, A, ≥4)`` float32 raw outputs of ``scale``.
    Returns:
        ``(b, gh, gw, A, 4)`` boxes ``x, y, w, h`` normalised to the input image, whose size is
        taken as ``grid * stride`` so any input size the model accepts decodes correctly.
    """
    shape = tf.shape(logits)
    grid_hw = tf.cast(shape[1:3], tf.float32)
    grid_wh = grid_hw[::-1]
    input_wh = grid_wh * float(cfg.strides[scale])
    xy = (tf.sigmoid(logits[..., :2]) + cell_grid(shape[1], shape[2])) / grid_wh
    wh = tf.exp(logits[..., 2:4]) * tf.constant(cfg.scale_anchors(scale)) / input_wh
    return tf.concat([xy, wh], axis=-1)
