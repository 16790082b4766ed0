"""Online hard-negative mining for the objectness term (SSD, Liu et al. 2016, §2.2)."""

from __future__ import annotations

import tensorflow as tf


def hard_negatives(
    loss: tf.Tensor, eligible: tf.Tensor, positives: tf.Tensor, ratio: float
) -> tf.Tensor:
    """Per image, the ``floor(ratio · positives)`` eligible negatives with the largest loss.

    SSD keeps negatives:positives at most 3:1, so an image without positives keeps no negatives.
    The selection is a constant for the gradient.

    Args:
        loss: ``(b, S)`` objectness loss of every slot.
        eligible: ``(b, S)`` bool, negatives that may be picked (not positive, not ignored).
        positives: ``(b,)`` number of positive slots of each image.
    Returns:
        ``(b, S)`` float32, 1 at the picked negatives (ties broken by slot order).
    """
    score = tf.where(eligible, tf.stop_gradient(loss), -float("inf"))
    rank = tf.argsort(tf.argsort(-score, axis=-1, stable=True), axis=-1, stable=True)
    keep = tf.cast(tf.floor(ratio * tf.cast(positives, tf.float32)), tf.int32)
    return tf.cast(eligible & (rank < keep[:, None]), tf.float32)
