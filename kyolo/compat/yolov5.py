"""Front-end with ultralytics/yolov5's ``ComputeLoss`` signature (``utils/loss.py``).

A thin adapter: it builds the :data:`kyolo.config.YOLOV5` configuration the arguments imply,
encodes YOLOv5's target rows with kyolo's ``"ratio"`` assigner and sums :class:`YoloLoss` over
scales. The only code here is layout: YOLOv5's ``[image, class, x, y, w, h]`` rows; its
``(b, na, ny, nx, 5 + nc)`` predictions are read in place (``head_layout="anchors"``).

Equality with ``ComputeLoss`` holds when no two target rows share a slot (image, anchor, cell):
kyolo's targets keep one box per slot, YOLOv5 averages over its rows (``docs/losses.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from kyolo.config import YOLOV5, YoloConfig
from kyolo.encode import encode_rows
from kyolo.losses import YoloLoss


def yolov5_balance(num_scales: int) -> tuple[float, ...]:
    """YOLOv5's per-scale objectness weights, ``{3: [4.0, 1.0, 0.4]}.get(nl, [4.0, 1.0, 0.25,
    0.06, 0.02])`` (the first ``nl``)."""
    balance = (4.0, 1.0, 0.4) if num_scales == 3 else (4.0, 1.0, 0.25, 0.06, 0.02)
    return balance[:num_scales]


def yolov5_config(
    shapes: Sequence[Sequence[int]],
    anchors: np.ndarray,
    strides: Sequence[int],
    hyp: Mapping[str, float],
) -> YoloConfig:
    """The :class:`YoloConfig` of a YOLOv5 head.

    Args:
        shapes: per scale the prediction shape ``(b, na, ny, nx, 5 + nc)``.
        anchors: ``(nl, na, 2)`` anchor ``(w, h)`` in pixels.
        strides: per scale, pixels per cell.
        hyp: YOLOv5 hyper-parameters ``box, obj, cls, cls_pw, obj_pw, fl_gamma, anchor_t`` and
            optionally ``label_smoothing``.
    """
    anchors = np.asarray(anchors, np.float64).reshape(len(shapes), -1, 2)
    count = anchors.shape[1]
    _, _, ny, nx, depth = (int(v) for v in shapes[0])
    input_size = (ny * int(strides[0]), nx * int(strides[0]))
    for shape, stride in zip(shapes, strides, strict=True):
        if tuple(int(v) for v in shape[2:4]) != (input_size[0] // stride, input_size[1] // stride):
            raise ValueError(
                f"grid {tuple(shape[2:4])} does not match stride {stride} of input {input_size}"
            )
    loss = YOLOV5.loss.replace(
        box_gain=hyp["box"],
        obj_gain=hyp["obj"],
        cls_gain=hyp["cls"],
        cls_pos_weight=hyp["cls_pw"],
        obj_pos_weight=hyp["obj_pw"],
        focal_gamma=hyp["fl_gamma"],
        label_smoothing=hyp.get("label_smoothing", 0.0),
        balance=yolov5_balance(len(shapes)),
    )
    return YOLOV5.replace(
        num_classes=depth - 5,
        input_size=input_size,
        anchors=tuple(map(tuple, anchors.reshape(-1, 2).tolist())),
        masks=tuple(tuple(range(s * count, (s + 1) * count)) for s in range(len(shapes))),
        strides=tuple(int(s) for s in strides),
        anchor_t=hyp["anchor_t"],
        loss=loss,
    )


def yolov5_arguments(cfg: YoloConfig) -> tuple[np.ndarray, list[int], dict[str, float]]:
    """``anchors (nl, na, 2)`` pixels, ``strides`` and ``hyp`` of a YOLOv5-style ``cfg``.

    The inverse of :func:`yolov5_config`: ``compute_loss(p, targets, *yolov5_arguments(cfg))``
    scores a preset such as :data:`kyolo.config.YOLOV5` through this front-end.
    """
    spec = cfg.loss
    anchors = np.stack([cfg.scale_anchors(s) for s in range(cfg.num_scales)]).astype(np.float64)
    hyp = {
        "box": spec.box_gain,
        "obj": spec.obj_gain,
        "cls": spec.cls_gain,
        "cls_pw": spec.cls_pos_weight,
        "obj_pw": spec.obj_pos_weight,
        "fl_gamma": spec.focal_gamma,
        "label_smoothing": spec.label_smoothing,
        "anchor_t": cfg.anchor_t,
    }
    return anchors, list(cfg.strides), hyp


def compute_loss(
    p: Sequence[tf.Tensor],
    targets: tf.Tensor,
    anchors: np.ndarray,
    strides: Sequence[int],
    hyp: Mapping[str, float],
) -> tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """YOLOv5's ``ComputeLoss(model)(p, targets)``.

    Args:
        p: per scale raw predictions ``(b, na, ny, nx, 5 + nc)`` with static shapes (channel
            order x, y, w, h, obj, classes).
        targets: ``(n, 6)`` rows ``[image, class, x, y, w, h]``, xywh normalised to the input
            (another shape is a ``ValueError``; a NaN or ±Inf anywhere makes the loss NaN).
        anchors: ``(nl, na, 2)`` anchors in pixels (constants, like ``strides`` and ``hyp``).
        strides: e.g. ``[8, 16, 32]``.
        hyp: see :func:`yolov5_config`.
    Returns:
        ``(lbox + lobj + lcls) · b`` and ``(lbox, lobj, lcls)`` (gains applied, not multiplied by
        the batch size; no gradient), float32 scalars. Differentiable with respect to ``p`` and
        compilable with ``tf.function(jit_compile=True)``, encoding included. Call it outside
        ``tf.distribute`` replica contexts (there the batch factor would be the global batch).
    """
    shapes = [tuple(pi.shape) for pi in p]
    targets = tf.cast(targets, tf.float32)
    if not targets.shape.is_compatible_with([None, 6]):
        raise ValueError(
            "compute_loss: targets must be (n, 6) rows [image, class, x, y, w, h], got shape "
            f"{tuple(targets.shape)}"
        )
    targets = tf.ensure_shape(targets, [None, 6])
    cfg = yolov5_config(shapes, anchors, strides, hyp)
    if targets.shape[0] is not None:
        # Only the assigned slots, as YOLOv5 keeps them; an image cannot hold more boxes than the
        # batch has rows, so the sparse rows never truncate (also under XLA, which drops asserts).
        cfg = cfg.replace(target_layout="sparse", max_boxes=max(1, targets.shape[0]))
    batch = shapes[0][0]
    y_true = encode_rows(targets[:, 0], targets[:, 2:6], targets[:, 1], batch, cfg)
    totals = {"box": 0.0, "obj": 0.0, "cls": 0.0}
    for scale, pi in enumerate(p):
        parts = YoloLoss(cfg, scale, head_layout="anchors").components(y_true[scale], pi)
        for key, value in parts.items():
            totals[key] += tf.reduce_mean(value)
    # A non-finite row would drop out of the assignment (NaN compares false) and leave a finite
    # loss; YOLOv5 gives NaN for a NaN x or y (the IoU of a NaN box), kyolo for any such row.
    poison = tf.where(tf.reduce_all(tf.math.is_finite(targets)), 0.0, float("nan"))
    loss = totals["box"] + totals["obj"] + totals["cls"] + poison
    items = tuple(tf.stop_gradient(totals[key]) / batch + poison for key in ("box", "obj", "cls"))
    return loss, items
