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


def ratio_candidates(boxes: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Candidates (see :data:`kyolo.encode.encoder.Candidates`) in YOLOv5's row order.

    Within a scale the order is offset-major (centre, left, up, right, down), then anchor, then
    box, so the later candidate that wins a shared slot is the row whose IoU YOLOv5's
    ``tobj[b, a, gj, gi] = iou`` keeps. The arithmetic is float64, like the reference NumPy
    semantics; a centre at exactly 1.0 lands in the last cell (clamped, as YOLOv5 does). All
    scales are computed together: axis 0 of every array below is the scale.

    Args:
        boxes: ``(n, 4)`` normalised ``xywh``.
    Returns:
        ``slot, keep, row``, each ``(S, 5 * A * n)``.
    """
    scales = range(cfg.num_scales)
    grids = np.array([cfg.grid_size(s)[::-1] for s in scales], np.float64)  # (S, 2) gw, gh
    size = tf.constant(grids[:, None, :])  # (S, 1, 2)
    centre = tf.cast(boxes[:, :2], tf.float64) * size  # (S, n, 2) in cells
    wh = tf.cast(boxes[:, 2:4], tf.float64) * size
    anchors = np.array(
        [np.array(cfg.scale_anchors(s), np.float64) / cfg.strides[s] for s in scales]
    )  # (S, A, 2) in cells
    ratio = wh[:, None] / anchors[:, :, None]  # (S, A, n, 2)
    match = tf.reduce_max(tf.maximum(ratio, 1.0 / ratio), axis=-1) < cfg.anchor_t  # (S, A, n)
    to_far_edge = size - centre
    near = (tf.math.floormod(centre, 1.0) < 0.5) & (centre > 1.0)  # left, up
    far = (tf.math.floormod(to_far_edge, 1.0) < 0.5) & (to_far_edge > 1.0)  # right, down
    centre_cell = tf.ones_like(near[..., 0])
    use = tf.stack([centre_cell, near[..., 0], near[..., 1], far[..., 0], far[..., 1]], 1)
    cell = tf.cast(tf.floor(centre[:, None] - _OFFSETS[:, None]), tf.int32)  # (S, 5, n, 2)
    last_cell = tf.constant(grids[:, None, None, :].astype(np.int32) - 1)
    cell = tf.clip_by_value(cell, 0, last_cell)
    gw = tf.constant(grids[:, None, None, 0].astype(np.int32))
    count = cfg.anchors_per_scale
    anchor = tf.range(count)[:, None]
    slot = (cell[..., 1] * gw + cell[..., 0])[:, :, None, :] * count + anchor  # (S, 5, A, n)
    keep = use[:, :, None, :] & match[:, None]
    row = tf.broadcast_to(tf.range(tf.shape(boxes)[0]), tf.shape(slot))
    shape = [cfg.num_scales, -1]
    return tf.reshape(slot, shape), tf.reshape(keep, shape), tf.reshape(row, shape)
