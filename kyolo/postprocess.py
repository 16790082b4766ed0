"""Raw model outputs → scored boxes → non-maximum suppression (``tf.image``)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from kyolo.boxes import xywh_to_xyxy
from kyolo.config import YoloConfig
from kyolo.decode import check_head_channels, decode_xywh


def decode_outputs(outputs: Sequence[tf.Tensor], cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Every scale's slots as candidate boxes with per-class scores.

    Args:
        outputs: per scale the raw ``(b, gh, gw, A * (5 + C))`` model output; other channel
            counts are a ``ValueError`` (:func:`kyolo.decode.check_head_channels`).
    Returns:
        ``boxes (b, N, 4)`` xyxy normalised to the network input and ``scores (b, N, C)`` =
        σ(objectness) · σ(class), ``N`` = all slots of all scales.
    """
    check_head_channels([output.shape for output in outputs], cfg)
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
    """:func:`candidates` then :func:`non_max_suppression`; boxes in input pixels."""
    return non_max_suppression(*candidates(outputs, cfg), **nms_args)


def candidates(outputs: Sequence[tf.Tensor], cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`decode_outputs` with boxes in network-input pixels, clipped to the input.

    Returns:
        ``boxes (b, N, 4)`` xyxy pixels, ``scores (b, N, C)``: what NMS takes.
    """
    boxes, scores = decode_outputs(outputs, cfg)
    height, width = _input_hw(outputs, cfg)
    size = tf.stack([width, height, width, height])
    return tf.clip_by_value(boxes, 0.0, 1.0) * size, scores


def _input_hw(outputs: Sequence[tf.Tensor], cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.shape(outputs[0])
    stride = float(cfg.strides[0])
    return tf.cast(shape[1], tf.float32) * stride, tf.cast(shape[2], tf.float32) * stride


def class_offset_nms(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    *,
    max_detections: int = DEFAULT_NMS["max_detections"],
    iou_threshold: float | tf.Tensor = DEFAULT_NMS["iou_threshold"],
    score_threshold: float | tf.Tensor = DEFAULT_NMS["score_threshold"],
) -> dict[str, tf.Tensor]:
    """:func:`non_max_suppression` of one image with ops that TFLite and ONNX have built in.

    Every ``(slot, class)`` pair is a candidate box. Shifting a candidate by ``class · span``
    (``span`` > twice the largest coordinate) puts boxes of different classes apart (IoU 0), so
    one class-agnostic greedy NMS (``NonMaxSuppressionV4``, score order) keeps per class what
    per-class NMS keeps, and the first ``max_detections`` of it are combined NMS's top scores.

    Args:
        boxes: ``(N, 4)`` xyxy in any units; ``scores``: ``(N, C)``.
    Returns:
        ``boxes (D, 4)``, ``scores (D,)``, ``classes (D,)`` int32 and ``count ()`` int32 valid rows
        (the rest is zero), ``D = max_detections``, best score first.
    """
    num_classes = scores.shape[-1]
    span = 2.0 * tf.reduce_max(tf.abs(boxes)) + 1.0
    shift = tf.range(num_classes, dtype=tf.float32)[None, :, None] * span
    candidates = tf.reshape(boxes[:, None, :] + shift, [-1, 4])
    flat_scores = tf.reshape(scores, [-1])
    selected, count = tf.raw_ops.NonMaxSuppressionV4(
        boxes=candidates,
        scores=flat_scores,
        max_output_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        pad_to_max_output_size=True,
    )
    valid = tf.range(max_detections) < count
    return {
        "boxes": tf.where(valid[:, None], tf.gather(boxes, selected // num_classes), 0.0),
        "scores": tf.where(valid, tf.gather(flat_scores, selected), 0.0),
        "classes": tf.where(valid, selected % num_classes, 0),
        "count": count,
    }
