"""YOLOv3 assigner: each box goes to its one best anchor (keras-yolo3 ``preprocess_true_boxes``)."""

from __future__ import annotations

import tensorflow as tf

from kyolo.boxes import anchor_wh_iou
from kyolo.config import YoloConfig
from kyolo.encode.targets import check_boxes, pack_target, scatter_to_grid


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


def encode_best_anchor(
    boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig
) -> tuple[tf.Tensor, ...]:
    """Encode one image's boxes into per-scale ``y_true`` tensors, keras-yolo3 style.

    The best anchor is chosen by centred width/height IoU (in input pixels) over *all* anchors;
    the box is written only on the scale(s) whose mask holds that anchor, at cell
    ``floor(centre * grid)`` (clamped to the grid, so a centre at exactly 1.0 stays inside).
    Shared slots: the later box's ``xywh`` wins and class entries accumulate (see
    :func:`kyolo.encode.targets.scatter_to_grid`).

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; rows with ``w <= 0``
            are padding.
        classes: ``(n,)`` integer class ids in ``[0, C)``.
        cfg: the head configuration; its ``input_size`` sets the grid sizes.
    Returns:
        One target per scale in the layout of :mod:`kyolo.encode.targets`.
    """
    boxes = tf.cast(boxes, tf.float32)
    valid = check_boxes(boxes, classes, cfg)
    height, width = cfg.input_size
    wh_pixels = boxes[:, 2:4] * tf.constant([width, height], tf.float32)
    best = first_argmax(anchor_wh_iou(wh_pixels, tf.constant(cfg.anchors, tf.float32)))
    targets = []
    for scale in range(cfg.num_scales):
        gh, gw = cfg.grid_size(scale)
        anchor_slot = tf.gather(cfg.anchor_slots(scale), best)
        gi, gj = cell_index(boxes[:, 0], gw), cell_index(boxes[:, 1], gh)
        slot = (gj * gw + gi) * cfg.anchors_per_scale + anchor_slot
        grid = scatter_to_grid(
            slot, valid & (anchor_slot >= 0), boxes, classes, cfg.cells(scale), cfg.num_classes
        )
        targets.append(pack_target(grid, boxes, valid, cfg, scale))
    return tuple(targets)
