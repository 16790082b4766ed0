"""Loss terms shared by every preset, one pure function each, built on :mod:`kyolo.boxes`.

Shapes: ``b`` images, ``S = gh*gw*A`` prediction slots of one scale, ``K = max_boxes`` ground-truth
rows, ``C`` classes, ``P`` the fixed bound on an image's positive slots
(:func:`kyolo.targets.target_rows`).
Box and class terms see only the ``(b, P, ...)`` rows gathered at the positives; objectness is
dense over the ``S`` slots. Every term returns a per-image ``(b,)`` float32 sum; :class:`YoloLoss`
weights and normalises them. Box terms and their registry are in :mod:`kyolo.losses.box`,
elementwise score losses in :mod:`kyolo.losses.scores`.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from kyolo.boxes import iou


def ignore_mask(
    pred_boxes: tf.Tensor, true_boxes: tf.Tensor, valid: tf.Tensor, threshold: float
) -> tf.Tensor:
    """1 where a prediction overlaps no ground truth by ``threshold`` IoU or more, else 0.

    Computed image by image with ``tf.map_fn``; inside, a ``tf.while_loop`` over the image's
    valid ground-truth rows ORs ``IoU ≥ threshold`` into an ``(S,)`` mask.
    Work is ``S`` per valid row (not ``S · K`` per image, ``K = max_boxes`` mostly padding) and
    memory ``O(S)`` per image, never ``(b, S, K)``; every shape is fixed, so it compiles under
    XLA. Equal to ``max_k IoU < threshold`` over valid rows. No gradient flows through the mask
    (as in keras-yolo3, where it is a comparison).

    Args:
        pred_boxes: ``(b, S, 4)`` predicted ``xywh``.
        true_boxes: ``(b, K, 4)`` ground-truth ``xywh`` (same units); ``valid``: ``(b, K)`` bool.
    Returns:
        ``(b, S)`` float32. An image without ground truth ignores nothing.
    """

    def one_image(args: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
        pred, true, ok = args
        # Valid rows first (a stable sort keeps their order), so the loop runs once per valid row
        # wherever the padding rows sit.
        true = tf.gather(true, tf.argsort(tf.cast(~ok, tf.int32), stable=True))
        count = tf.reduce_sum(tf.cast(ok, tf.int32))

        def body(row: tf.Tensor, hit: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return row + 1, hit | (iou(pred, true[row]) >= threshold)

        hit = tf.zeros(tf.shape(pred)[:1], tf.bool)
        _, hit = tf.while_loop(lambda row, _: row < count, body, (0, hit))
        return 1.0 - tf.cast(hit, tf.float32)

    return tf.map_fn(
        one_image,
        (tf.stop_gradient(pred_boxes), true_boxes, valid),
        fn_output_signature=tf.float32,
    )


def objectness_term(positive: tf.Tensor, loss: tf.Tensor, negative_weight: tf.Tensor) -> tf.Tensor:
    """``Σ_P loss + Σ_N w · loss``: positives always count, negatives with weight ``w``.

    ``w`` is the ignore mask (keras-yolo3, Darknet), times λnoobj (YOLOv1) and the OHEM selection.

    Args:
        positive: ``(b, ...)`` float 1 at assigned slots; ``loss``: ``(b, ...)`` elementwise
            objectness loss against the slot's target; ``negative_weight``: broadcastable to it.
    Returns:
        ``(b,)`` summed over slots.
    """
    return per_image(positive * loss + (1.0 - positive) * loss * negative_weight)


def class_term(
    positive: tf.Tensor,
    classes: tf.Tensor,
    logits: tf.Tensor,
    loss_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    label_smoothing: float = 0.0,
) -> tf.Tensor:
    """Class loss at assigned slots (independent sigmoids, multi-label), summed → ``(b,)``.

    Targets are YOLOv5's ``smooth_BCE(ε)``: ``1 − ε/2`` for the slot's classes, ``ε/2`` else.

    Args:
        positive: ``(b, P)`` float 1 at positive rows, 0 at others;
            ``classes``: ``(b, P, C)`` multi-hot; ``logits``: ``(b, P, C)``;
            ``loss_fn(labels, logits)``: elementwise score loss.
    """
    labels = classes * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return per_image(positive[..., None] * loss_fn(labels, logits))


def per_image(values: tf.Tensor) -> tf.Tensor:
    """Sum every axis but the batch axis."""
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)
