"""Box math: format conversion and the IoU family. Pure, batched, dtype-preserving TF functions.

Boxes are ``(..., 4)`` tensors, either ``xywh`` = (centre x, centre y, width, height) or ``xyxy`` =
(x_min, y_min, x_max, y_max), in any consistent unit (pixels, grid cells or fractions of the
image). Every function is safe for zero-area boxes: no NaN or Inf in values or gradients.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Unions and enclosing diagonals below this are treated as empty; far smaller than any real box
# (a 1e-3 px box in a 4k image is ~1e-14 in normalised units squared) yet keeps 1/x finite.
_TINY = 1e-20


def _safe_ratio(num: tf.Tensor, den: tf.Tensor) -> tf.Tensor:
    """``num / den`` where ``den > _TINY``, else 0, without NaN/Inf in the gradient."""
    ok = den > _TINY
    return tf.where(ok, num / tf.where(ok, den, tf.ones_like(den)), tf.zeros_like(num))


def xywh_to_xyxy(boxes: tf.Tensor) -> tf.Tensor:
    """``(..., 4)`` (cx, cy, w, h) → ``(..., 4)`` (x_min, y_min, x_max, y_max)."""
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return tf.concat([xy - wh / 2, xy + wh / 2], axis=-1)


def xyxy_to_xywh(boxes: tf.Tensor) -> tf.Tensor:
    """``(..., 4)`` (x_min, y_min, x_max, y_max) → ``(..., 4)`` (cx, cy, w, h)."""
    mins, maxes = boxes[..., :2], boxes[..., 2:4]
    return tf.concat([(mins + maxes) / 2, maxes - mins], axis=-1)


def _overlap(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Intersection and union areas of broadcastable ``xywh`` boxes ``a``, ``b`` → two ``(...)``."""
    a_min, a_max = a[..., :2] - a[..., 2:4] / 2, a[..., :2] + a[..., 2:4] / 2
    b_min, b_max = b[..., :2] - b[..., 2:4] / 2, b[..., :2] + b[..., 2:4] / 2
    inter_wh = tf.maximum(tf.minimum(a_max, b_max) - tf.maximum(a_min, b_min), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter, union


def iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Intersection over union of ``xywh`` boxes, broadcast elementwise.

    Args:
        boxes1, boxes2: broadcastable ``(..., 4)`` boxes as (cx, cy, w, h), same units.
    Returns:
        ``(...)`` IoU in [0, 1]; 0 where the union is empty.
    """
    inter, union = _overlap(boxes1, boxes2)
    return _safe_ratio(inter, union)


def pairwise_iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """IoU of every box in ``boxes1`` ``(..., N, 4)`` with every box in ``boxes2`` ``(..., M, 4)``.

    Returns:
        ``(..., N, M)`` IoU in [0, 1]. Boxes are ``xywh``; leading dims must broadcast.
    """
    return iou(boxes1[..., :, None, :], boxes2[..., None, :, :])


def anchor_wh_iou(wh: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
    """IoU of box sizes and anchor sizes with both centred at the origin (YOLOv2/v3 matching).

    Args:
        wh: ``(N, 2)`` box widths and heights.
        anchors: ``(K, 2)`` anchor widths and heights, same units.
    Returns:
        ``(N, K)`` IoU in [0, 1].
    """
    inter_wh = tf.minimum(wh[:, None, :], anchors[None, :, :])
    inter = tf.maximum(inter_wh[..., 0], 0.0) * tf.maximum(inter_wh[..., 1], 0.0)
    union = (wh[:, None, 0] * wh[:, None, 1]) + (anchors[None, :, 0] * anchors[None, :, 1]) - inter
    return _safe_ratio(inter, union)


def _enclosing_wh(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``(..., 2)`` size of the smallest box enclosing ``xywh`` boxes ``a`` and ``b``."""
    lo = tf.minimum(a[..., :2] - a[..., 2:4] / 2, b[..., :2] - b[..., 2:4] / 2)
    hi = tf.maximum(a[..., :2] + a[..., 2:4] / 2, b[..., :2] + b[..., 2:4] / 2)
    return hi - lo


def giou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Generalized IoU (Rezatofighi et al. 2019, Alg. 1): IoU − (|C| − |A∪B|) / |C|.

    Args:
        boxes1, boxes2: broadcastable ``(..., 4)`` boxes as (cx, cy, w, h), same units.
    Returns:
        ``(...)`` GIoU in [-1, 1]; C is the smallest enclosing box.
    """
    inter, union = _overlap(boxes1, boxes2)
    enclosing = _enclosing_wh(boxes1, boxes2)
    area_c = enclosing[..., 0] * enclosing[..., 1]
    return _safe_ratio(inter, union) - _safe_ratio(area_c - union, area_c)


def _centre_distance_term(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """ρ²/c²: squared centre distance over the squared diagonal of the enclosing box."""
    rho2 = tf.reduce_sum(tf.square(boxes1[..., :2] - boxes2[..., :2]), axis=-1)
    c2 = tf.reduce_sum(tf.square(_enclosing_wh(boxes1, boxes2)), axis=-1)
    return _safe_ratio(rho2, c2)


def diou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Distance IoU (Zheng et al. 2020, eq. 6): IoU − ρ²/c².

    Args:
        boxes1, boxes2: broadcastable ``(..., 4)`` boxes as (cx, cy, w, h), same units.
    Returns:
        ``(...)`` DIoU in [-1, 1].
    """
    return iou(boxes1, boxes2) - _centre_distance_term(boxes1, boxes2)


def ciou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Complete IoU (Zheng et al. 2020, eq. 10-11): IoU − ρ²/c² − αv.

    ``v = 4/π² (atan(w₂/h₂) − atan(w₁/h₁))²`` measures aspect-ratio disagreement and
    ``α = v / ((1 − IoU) + v)``. α is a constant for the gradient (``stop_gradient``), as in the
    paper and in YOLOv5.

    Args:
        boxes1, boxes2: broadcastable ``(..., 4)`` boxes as (cx, cy, w, h), same units; boxes2 is
            conventionally the ground truth (v is symmetric, so the order does not matter).
    Returns:
        ``(...)`` CIoU in [-1.5, 1].
    """
    iou_ = iou(boxes1, boxes2)
    v = (4 / math.pi**2) * tf.square(
        _safe_atan_ratio(boxes2[..., 2], boxes2[..., 3])
        - _safe_atan_ratio(boxes1[..., 2], boxes1[..., 3])
    )
    alpha = tf.stop_gradient(_safe_ratio(v, (1 - iou_) + v))
    return iou_ - _centre_distance_term(boxes1, boxes2) - alpha * v


def _safe_atan_ratio(w: tf.Tensor, h: tf.Tensor) -> tf.Tensor:
    """atan(w / h) for w, h ≥ 0 (π/2 at h = 0); an empty box gives 0 with a finite gradient."""
    empty = (w <= 0) & (h <= 0)
    return tf.math.atan2(w, tf.where(empty, tf.ones_like(h), h))
