"""Raw model outputs → scored boxes → non-maximum suppression (``tf.image``)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from kyolo.boxes import xywh_to_xyxy
from kyolo.config import YoloConfig
from kyolo.decode import decode_xywh


def decode_outputs(outputs: Sequence[tf.Tensor], cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Every scale's slots as candidate boxes with per-class scores.

    Args:
        outputs: per scale the raw ``(b, gh, gw, A * (5 + C))`` model output.
    Returns:
        ``boxes (b, N, 4)`` xyxy normalised to the network input and ``scores (b, N, C)`` =
        σ(objectness) · σ(class), ``N`` = all slots of all scales.
    """
    all_boxes, all_scores = [], []
    for scale, output in enumerate(outputs):
        shape = tf.shape(output)
        logits = tf.reshape(tf.cast(output, tf.float32), [shape[0], -1, 5 + cfg.num_classes])
        all_boxes.append(xywh_to_xyxy(decode_xywh(output, cfg, scale)))
        all_scores.append(tf.sigmoid(logits[..., 4:5]) * tf.sigmoid(logits[..., 5:]))
    return tf.concat(all_boxes, axis=1), tf.concat(all_scores, axis=1)


# COCO practice: keep low-scoring boxes (mAP integrates over them); clients filter by score.
DEFAULT_NMS = {"max_detections": 100, "iou_threshold": 0.5, "score_threshold": 0.001}


def non_max_suppression(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    *,
    max_detections: int = DEFAULT_NMS["max_detections"],
    iou_threshold: float = DEFAULT_NMS["iou_threshold"],
    score_threshold: float = DEFAULT_NMS["score_threshold"],
) -> dict[str, tf.Tensor]:
    """Per-class NMS with ``tf.image.combined_non_max_suppression``.

    Args:
        boxes: ``(b, N, 4)`` xyxy in any units; ``scores``: ``(b, N, C)``.
    Returns:
        ``boxes (b, D, 4)`` xyxy, ``scores (b, D)``, ``classes (b, D)`` int32 and ``count (b,)``
        int32 valid rows (the rest is zero), ``D = max_detections``.
    """
    # tf.image wants (y_min, x_min, y_max, x_max); NMS is symmetric in x and y, so swapping the
    # two axes in and out gives the same result for xyxy input.
    yx = tf.gather(boxes, [1, 0, 3, 2], axis=-1)[:, :, None, :]
    nms = tf.image.combined_non_max_suppression(
        yx,
        scores,
        max_output_size_per_class=max_detections,
        max_total_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        clip_boxes=False,
    )
    return {
        "boxes": tf.gather(nms.nmsed_boxes, [1, 0, 3, 2], axis=-1),
        "scores": nms.nmsed_scores,
        "classes": tf.cast(nms.nmsed_classes, tf.int32),
        "count": nms.valid_detections,
    }


def detect(
    outputs: Sequence[tf.Tensor], cfg: YoloConfig, **nms_args: float
) -> dict[str, tf.Tensor]:
    """:func:`decode_outputs` then :func:`non_max_suppression`; boxes in input pixels.

    Boxes are clipped to the network input before NMS, so no box leaves the canvas.
    """
    boxes, scores = decode_outputs(outputs, cfg)
    height, width = _input_hw(outputs, cfg)
    size = tf.stack([width, height, width, height])
    return non_max_suppression(tf.clip_by_value(boxes, 0.0, 1.0) * size, scores, **nms_args)


def _input_hw(outputs: Sequence[tf.Tensor], cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.shape(outputs[0])
    stride = float(cfg.strides[0])
    return tf.cast(shape[1], tf.float32) * stride, tf.cast(shape[2], tf.float32) * stride
