"""Anchor-IoU assigners: the box's best anchor(s) by centred width/height IoU.

``"best_anchor"`` is keras-yolo3's ``preprocess_true_boxes`` (one anchor over all scales),
``"best_anchor_per_scale"`` the best anchor of every scale (the PyTorch YOLOv3 training study's
variant) and ``"multi_anchor"`` Darknet YOLOv4's: the best anchor plus every anchor whose IoU
exceeds ``iou_thresh``. The box goes to cell ``floor(centre * grid)`` of each scale it is assigned.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig


def first_argmax(values: tf.Tensor) -> tf.Tensor:
    """``(..., k)`` → ``(...)`` int32 index of the first maximum of each row (numpy's tie rule)."""
    k = values.shape[-1]
    k = tf.shape(values)[-1] if k is None else k  # static if known: fewer ops
    is_max = values >= tf.reduce_max(values, axis=-1, keepdims=True)
    return tf.reduce_min(tf.where(is_max, tf.range(k, dtype=tf.int32), k), axis=-1)


def cell_index(coord: tf.Tensor, size: int | np.ndarray) -> tf.Tensor:
    """``floor(coord * size)`` clamped to ``[0, size)``, for normalised ``coord``.

    ``size`` broadcasts against ``coord`` (e.g. ``(S, 1, 2)`` grid sizes against ``(n, 2)``
    centres). The product is taken in float64, as numpy does in keras-yolo3: in float32,
    ``0.9 * 20`` rounds up to 18.0 and a box on a cell border would move one cell.
    """
    size = np.asarray(size, np.int32)
    cell = tf.floor(tf.cast(coord, tf.float64) * size.astype(np.float64))
    return tf.clip_by_value(tf.cast(cell, tf.int32), 0, size - 1)


def anchor_ious(wh: tf.Tensor, anchors: np.ndarray) -> tf.Tensor:
    """``(n, K)`` centred IoU of ``(n, 2)`` positive box sizes and ``(K, 2)`` anchor sizes.

    The values of :func:`kyolo.boxes.anchor_wh_iou` (same float32 operations in the same
    order), in fewer ops: it guards against empty boxes, which only padding rows are here.
    """
    anchors = np.asarray(anchors, np.float32)
    inter = tf.reduce_prod(tf.minimum(wh[:, None, :], anchors), axis=-1)
    union = tf.reduce_prod(wh, axis=-1, keepdims=True) + anchors[:, 0] * anchors[:, 1] - inter
    return inter / union


def anchor_matches(boxes: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """``(S, n, A)`` bool: which anchors of each scale each box is assigned to.

    IoUs are of the box and anchor sizes in input pixels, both centred (YOLOv2/v3 matching);
    ties go to the first anchor, as numpy's argmax in keras-yolo3.
    """
    height, width = cfg.input_size
    wh_pixels = boxes[:, 2:4] * np.array([width, height], np.float32)
    ious = anchor_ious(wh_pixels, cfg.anchors)  # (n, all anchors)
    owned = np.array(cfg.masks, np.int32)  # (S, A)
    if cfg.assigner == "best_anchor_per_scale":
        best = first_argmax(tf.gather(ious, owned, axis=1))  # (n, S)
        matches = tf.cast(tf.one_hot(best, cfg.anchors_per_scale), tf.bool)
    else:
        matches = tf.cast(tf.one_hot(first_argmax(ious), len(cfg.anchors)), tf.bool)
        if cfg.assigner == "multi_anchor":
            matches |= ious > cfg.iou_thresh
        matches = tf.gather(matches, owned, axis=1)  # (n, S, A)
    return tf.transpose(matches, [1, 0, 2])


def anchor_iou_candidates(
    boxes: tf.Tensor, cfg: YoloConfig
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Candidates (see :data:`kyolo.encode.encoder.Candidates`), ``k = n * A``, box-major.

    Within a scale, candidate ``i * A + a`` is box ``i`` on anchor ``a``: a later box therefore
    wins a slot shared with an earlier one, as in keras-yolo3's loop and Darknet's (which writes
    truths in order).
    """
    grids = np.array([cfg.grid_size(s)[::-1] for s in range(cfg.num_scales)], np.int32)
    cell = cell_index(boxes[:, :2], grids[:, None, :])  # (S, n, 2) column, row
    # The flat cell gj * gw + gi as a dot product of (gi, gj) with (1, gw).
    flat = np.stack([np.ones_like(grids[:, 0]), grids[:, 0]], axis=-1)[:, None, :]  # (S, 1, 2)
    count = cfg.anchors_per_scale
    slot = tf.reduce_sum(cell * flat, axis=-1, keepdims=True) * count + np.arange(count)
    keep = anchor_matches(boxes, cfg)
    row = tf.broadcast_to(tf.range(tf.shape(boxes)[0])[:, None], tf.shape(slot))
    shape = [cfg.num_scales, -1]
    return tf.reshape(slot, shape), tf.reshape(keep, shape), tf.reshape(row, shape)
