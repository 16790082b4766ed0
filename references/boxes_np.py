"""Plain-numpy (float64) box geometry used as golden values by kyolo's tests.

Independent of tensorflow, keras and kyolo. Boxes are ``(..., 4)`` arrays of ``(cx, cy, w, h)``
unless a function says otherwise; all math is done in float64.

References:
    GIoU: Rezatofighi et al., "Generalized Intersection over Union", CVPR 2019.
    DIoU / CIoU: Zheng et al., "Distance-IoU Loss: Faster and Better Learning for Bounding Box
    Regression", AAAI 2020.
"""

from __future__ import annotations

import numpy as np


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, and 0 where ``den == 0`` (no warnings)."""
    num, den = np.broadcast_arrays(_f64(num), _f64(den))
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def xywh_to_xyxy(boxes) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``(x_min, y_min, x_max, y_max)``."""
    b = _f64(boxes)
    half = b[..., 2:4] / 2.0
    return np.concatenate([b[..., 0:2] - half, b[..., 0:2] + half], axis=-1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    """``(x_min, y_min, x_max, y_max)`` -> ``(cx, cy, w, h)``."""
    b = _f64(boxes)
    return np.concatenate([(b[..., 0:2] + b[..., 2:4]) / 2.0, b[..., 2:4] - b[..., 0:2]], axis=-1)


def _geometry(a, b):
    """Shared pieces of the IoU family for broadcastable ``(..., 4)`` xywh boxes.

    Returns ``(iou, union, enclose_wh, centre_dist_sq)`` where ``enclose_wh`` is the size of the
    smallest axis-aligned box containing both boxes.
    """
    a = _f64(a)
    b = _f64(b)
    a_min, a_max = np.split(xywh_to_xyxy(a), 2, axis=-1)
    b_min, b_max = np.split(xywh_to_xyxy(b), 2, axis=-1)

    inter_wh = np.maximum(np.minimum(a_max, b_max) - np.maximum(a_min, b_min), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    iou_ = _safe_div(inter, union)  # zero union (two empty boxes) -> IoU 0

    enclose_wh = np.maximum(a_max, b_max) - np.minimum(a_min, b_min)
    centre_dist_sq = np.sum((a[..., 0:2] - b[..., 0:2]) ** 2, axis=-1)
    return iou_, union, enclose_wh, centre_dist_sq


def iou(a, b) -> np.ndarray:
    """Elementwise IoU of broadcastable ``(..., 4)`` xywh boxes -> ``(...)``. 0 for zero union."""
    return _geometry(a, b)[0]


def giou(a, b) -> np.ndarray:
    """Generalized IoU: ``IoU - (|C| - |A u B|) / |C|``, C the smallest enclosing box."""
    iou_, union, enclose_wh, _ = _geometry(a, b)
    enclose_area = enclose_wh[..., 0] * enclose_wh[..., 1]
    return iou_ - _safe_div(enclose_area - union, enclose_area)


def diou(a, b) -> np.ndarray:
    """Distance IoU: ``IoU - rho^2 / c^2``.

    ``rho`` is the distance between the box centres, ``c`` the diagonal of the enclosing box.
    """
    iou_, _, enclose_wh, rho_sq = _geometry(a, b)
    c_sq = np.sum(enclose_wh**2, axis=-1)
    return iou_ - _safe_div(rho_sq, c_sq)


def ciou(a, b) -> np.ndarray:
    """Complete IoU: ``IoU - rho^2 / c^2 - alpha * v`` (symmetric in ``a`` and ``b``).

    ``v = 4 / pi^2 * (atan(w_b / h_b) - atan(w_a / h_a))^2`` and
    ``alpha = v / ((1 - IoU) + v)``; alpha is taken as 0 when its denominator is 0
    (identical boxes). ``arctan2(w, h)`` equals ``atan(w / h)`` for ``h > 0`` and stays finite for
    ``h == 0``.
    """
    a = _f64(a)
    b = _f64(b)
    iou_, _, enclose_wh, rho_sq = _geometry(a, b)
    c_sq = np.sum(enclose_wh**2, axis=-1)
    angle_a = np.arctan2(a[..., 2], a[..., 3])
    angle_b = np.arctan2(b[..., 2], b[..., 3])
    v = (4.0 / np.pi**2) * (angle_b - angle_a) ** 2
    alpha = _safe_div(v, (1.0 - iou_) + v)
    return iou_ - _safe_div(rho_sq, c_sq) - alpha * v


def pairwise_iou(a, b) -> np.ndarray:
    """IoU of every box in ``a`` ``(N, 4)`` with every box in ``b`` ``(M, 4)`` -> ``(N, M)``."""
    a = _f64(a).reshape(-1, 4)
    b = _f64(b).reshape(-1, 4)
    return iou(a[:, None, :], b[None, :, :])


def anchor_wh_iou(wh, anchors) -> np.ndarray:
    """IoU of sizes ``wh`` ``(N, 2)`` with ``anchors`` ``(K, 2)``, all centred on one point.

    Returns ``(N, K)``. The intersection of two centred boxes is ``min(w) * min(h)`` (clamped at 0
    like keras-yolo3's min/max formulation); zero union gives 0.
    """
    wh = _f64(wh).reshape(-1, 2)[:, None, :]
    anchors = _f64(anchors).reshape(-1, 2)[None, :, :]
    inter_wh = np.maximum(np.minimum(wh, anchors), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = wh[..., 0] * wh[..., 1] + anchors[..., 0] * anchors[..., 1] - inter
    return _safe_div(inter, union)
