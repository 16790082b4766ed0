"""YOLOv5's assigner (``utils/loss.py`` ``ComputeLoss.build_targets``): anchors by w/h ratio.

On each scale a box goes to every anchor whose width and height ratios ``r`` (box / anchor, both in
grid cells) satisfy ``max(r, 1/r) < anchor_t``, in its centre cell and in the neighbour cell on
each axis whose border is nearer than half a cell to the centre (``g = 0.5``), unless that border
is the image edge. Centres of neighbour cells are −0.5..0 or 1..1.5 cells from their corner, hence
YOLOv5's ``xy = 2σ(t) − 0.5`` range.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig

# Subtracted from the centre (in cells) to reach each candidate cell, in build_targets' order:
# the centre cell, then left (j), up (k), right (l), down (m).
_OFFSETS = 0.5 * np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], np.float64)


def ratio_candidates(
    boxes: tf.Tensor, cfg: YoloConfig, scale: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Candidates (see :data:`kyolo.encode.targets.Candidates`) in YOLOv5's row order.

    Order is offset-major (centre, left, up, right, down), then anchor, then box, so the later
    candidate that wins a shared slot is the row whose IoU YOLOv5's ``tobj[b, a, gj, gi] = iou``
    keeps. The arithmetic is float64, like the reference NumPy semantics; a centre at exactly
    1.0 lands in the last cell (clamped, as YOLOv5 does).

    Args:
        boxes: ``(n, 4)`` normalised ``xywh``.
    Returns:
        ``slot, keep, row``, each ``(5 * A * n,)``.
    """
    gh, gw = cfg.grid_size(scale)
    size = tf.constant([gw, gh], tf.float64)
    centre = tf.cast(boxes[:, :2], tf.float64) * size  # (n, 2) in cells
    wh = tf.cast(boxes[:, 2:4], tf.float64) * size
    anchors = tf.constant(np.array(cfg.scale_anchors(scale), np.float64) / cfg.strides[scale])
    ratio = wh[None] / anchors[:, None]  # (A, n, 2)
    match = tf.reduce_max(tf.maximum(ratio, 1.0 / ratio), axis=-1) < cfg.anchor_t  # (A, n)
    to_far_edge = size - centre
    near = (tf.math.floormod(centre, 1.0) < 0.5) & (centre > 1.0)  # left, up
    far = (tf.math.floormod(to_far_edge, 1.0) < 0.5) & (to_far_edge > 1.0)  # right, down
    use = tf.stack([tf.ones_like(near[:, 0]), near[:, 0], near[:, 1], far[:, 0], far[:, 1]])
    cell = tf.cast(tf.floor(centre[None] - _OFFSETS[:, None]), tf.int32)  # (5, n, 2)
    cell_x = tf.clip_by_value(cell[..., 0], 0, gw - 1)
    cell_y = tf.clip_by_value(cell[..., 1], 0, gh - 1)
    count = cfg.anchors_per_scale
    anchor = tf.range(count)[None, :, None]
    slot = (cell_y * gw + cell_x)[:, None, :] * count + anchor  # (5, A, n)
    keep = use[:, None, :] & match[None]
    row = tf.broadcast_to(tf.range(tf.shape(boxes)[0])[None, None, :], tf.shape(slot))
    return tf.reshape(slot, [-1]), tf.reshape(keep, [-1]), tf.reshape(row, [-1])
