"""Box terms on boxes in grid-cell units (:func:`kyolo.decode.decode_cells`): MSE and IoU family.

Shapes: ``(b, P, ...)`` rows gathered at the positive slots
(:func:`kyolo.targets.target_rows`, 0 weight at rows that are not positive); each term is
summed over them and returned per image, ``(b,)``. keras-yolo3's own box term is in
:mod:`kyolo.losses.terms`.
"""

from __future__ import annotations

import tensorflow as tf

from kyolo import boxes
from kyolo.losses.terms import per_image

OVERLAPS = {"iou": boxes.iou, "giou": boxes.giou, "diou": boxes.diou, "ciou": boxes.ciou}
"""The IoU variant of each IoU-family ``box_loss``: ``(..., 4), (..., 4)`` xywh → ``(...)``."""


def target_in_cells(grid: tf.Tensor, cell: tf.Tensor, grid_wh: tf.Tensor) -> tf.Tensor:
    """Targets in the units of :func:`kyolo.decode.decode_cells`.

    ``x·gw − col, y·gh − row`` is the centre from the slot's own cell corner: in [0, 1) for the
    centre cell, [−0.5, 0) or [1, 1.5) for YOLOv5's neighbour cells (``tbox`` of
    ``build_targets``); ``w·gw, h·gh`` the size in cells.

    Args:
        grid: ``(b, P, ≥4)`` targets, xywh normalised to the image.
        cell: ``(b, P, 2)`` the slot's cell column/row; ``grid_wh``: ``(2,)`` grid width and
            height.
    """
    return tf.concat([grid[..., :2] * grid_wh - cell, grid[..., 2:4] * grid_wh], axis=-1)


def overlap_box_term(overlap: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
    """``Σ_P (1 − X)`` with ``X`` the row's IoU-family overlap ``(b, P)`` → ``(b,)``.

    ``X`` is one of :data:`OVERLAPS` (YOLOv5 and Darknet YOLOv4 use CIoU, Zheng et al. 2020).
    """
    return per_image(positive * (1.0 - overlap))


def mse_box_terms(
    pred_xy: tf.Tensor,
    pred_log_wh: tf.Tensor,
    true: tf.Tensor,
    anchors_cells: tf.Tensor,
    grid_wh: tf.Tensor,
    positive: tf.Tensor,
    sqrt_wh: bool,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Squared error of the in-cell centre and of the size (YOLOv1 eq. 3, YOLOv2 region layer).

    ``xy = Σ_P (x̂ − x)² + (ŷ − y)²`` with centres in cells from the cell corner, and
    ``wh = Σ_P (f(ŵ) − f(w))² + (f(ĥ) − f(h))²`` with ``f = √·`` of the size as a fraction of the
    image (YOLOv1, ``sqrt_wh``) or ``f = log(· / anchor)`` (YOLOv2: the raw ``t_wh`` of a v3 head).

    Args:
        pred_xy: ``(b, P, 2)`` decoded centre offsets; ``pred_log_wh``: ``(b, P, 2)`` the
            prediction's ``log(wh / anchor)`` (:func:`kyolo.decode.log_wh_ratio`).
        true: ``(b, P, 4)`` :func:`target_in_cells`; ``anchors_cells``: ``(b, P, 2)`` the row's
            anchor in cells.
        positive: ``(b, P)`` float mask.
    Returns:
        ``xy (b,)``, ``wh (b,)``.
    """
    mask = positive[..., None] > 0
    # Sizes at empty slots are 0: replaced by the anchor before the log/sqrt keeps gradients finite.
    true_wh = tf.where(mask, true[..., 2:4], anchors_cells)
    if sqrt_wh:
        # √(anchor · e^ρ / grid), written with e^(ρ/2) so that it has a gradient at any logit.
        pred_wh = tf.sqrt(anchors_cells / grid_wh) * tf.exp(0.5 * pred_log_wh)
        true_wh = tf.sqrt(true_wh / grid_wh)
    else:
        pred_wh, true_wh = pred_log_wh, tf.math.log(true_wh / anchors_cells)
    xy = positive[..., None] * tf.square(pred_xy - true[..., :2])
    wh = positive[..., None] * tf.square(pred_wh - true_wh)
    return per_image(xy), per_image(wh)
