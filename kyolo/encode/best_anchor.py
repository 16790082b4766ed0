"""Anchor-IoU assigners: the box's best anchor(s) by centred width/height IoU.

``"best_anchor"`` is keras-yolo3's ``preprocess_true_boxes`` (one anchor over all scales),
``"best_anchor_per_scale"`` the best anchor of every scale (the PyTorch YOLOv3 training study's
variant) and ``"multi_anchor"`` Darknet YOLOv4's: the best anchor plus every anchor whose IoU
exceeds ``iou_thresh``. The box goes to cell ``floor(centre * grid)`` of each scale it is assigned.
"""

from __future__ import annotations

import tensorflow as tf

from kyolo.boxes import anchor_wh_iou
from kyolo.config import YoloConfig
from kyolo.encode.targets import encode_image


def first_argmax(values: tf.Tensor) -> tf.Tensor:
    """``(n, k)`` → ``(n,)`` int32 index of the first maximum of each row (numpy's tie rule)."""
    k = tf.shape(values)[-1]
    is_max = values >= tf.reduce_max(values, axis=-1, keepdims=True)
    return tf.reduce_min(tf.where(is_max, tf.range(k, dtype=tf.int32), k), axis=-1)


def cell_index(coord: tf.Tensor, size: int) -> tf.Tensor:
    """``floor(coord * size)`` clamped to ``[0, size)``, for normalised ``coord`` ``(n,)``.

    The product is taken in float64, as numpy does in keras-yolo3: in float32, ``0.9 * 20``
    rounds up to 18.0 and a box on a cell border would move one cell.
    """
    cell = tf.floor(tf.cast(coord, tf.float64) * size)
    return tf.clip_by_value(tf.cast(cell, tf.int32), 0, size - 1)


def anchor_matches(boxes: tf.Tensor, cfg: YoloConfig, scale: int) -> tf.Tensor:
    """``(n, A)`` bool: which of ``scale``'s anchors each box is assigned to.

    IoUs are of the box and anchor sizes in input pixels, both centred (YOLOv2/v3 matching);
    ties go to the first anchor, as numpy's argmax in keras-yolo3.
    """
    height, width = cfg.input_size
    wh_pixels = boxes[:, 2:4] * tf.constant([width, height], tf.float32)
    ious = anchor_wh_iou(wh_pixels, tf.constant(cfg.anchors, tf.float32))
    owned = list(cfg.masks[scale])
    if cfg.assigner == "best_anchor_per_scale":
        best = first_argmax(tf.gather(ious, owned, axis=1))
        return tf.cast(tf.one_hot(best, cfg.anchors_per_scale), tf.bool)
    best = tf.cast(tf.one_hot(first_argmax(ious), len(cfg.anchors)), tf.bool)
    if cfg.assigner == "multi_anchor":
        best |= ious > cfg.iou_thresh
    return tf.gather(best, owned, axis=1)


def anchor_iou_candidates(
    boxes: tf.Tensor, cfg: YoloConfig, scale: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Candidates (see :data:`kyolo.encode.targets.Candidates`) ordered box-major, then anchor.

    A later box therefore wins a slot shared with an earlier one, as in keras-yolo3's loop and
    Darknet's (which writes truths in order).
    """
    gh, gw = cfg.grid_size(scale)
    count = cfg.anchors_per_scale
    cell = cell_index(boxes[:, 1], gh) * gw + cell_index(boxes[:, 0], gw)
    slot = cell[:, None] * count + tf.range(count)[None, :]
    row = tf.broadcast_to(tf.range(tf.shape(boxes)[0])[:, None], tf.shape(slot))
    keep = anchor_matches(boxes, cfg, scale)
    return tf.reshape(slot, [-1]), tf.reshape(keep, [-1]), tf.reshape(row, [-1])


def encode_best_anchor(
    boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig
) -> tuple[tf.Tensor, ...]:
    """Encode one image's boxes with ``cfg``'s anchor-IoU assigner (keras-yolo3 by default).

    Shared slots: the later box's ``xywh`` wins and class entries accumulate (see
    :func:`kyolo.encode.targets.scatter_to_grid`). :func:`kyolo.encode.encode_targets` picks the
    assigner named by ``cfg.assigner``, this one included.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; rows with ``w <= 0``
            are padding.
        classes: ``(n,)`` integer class ids in ``[0, C)``.
        cfg: the head configuration; its ``input_size`` sets the grid sizes.
    Returns:
        One target per scale in the layout of :mod:`kyolo.encode.targets`.
    """
    if cfg.assigner == "ratio":
        raise ValueError("cfg.assigner is 'ratio': use kyolo.encode.encode_targets")
    return encode_image(boxes, classes, cfg, anchor_iou_candidates)
