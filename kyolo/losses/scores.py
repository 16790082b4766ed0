"""Elementwise losses of a sigmoid score (objectness or one class) against a target in [0, 1]."""

from __future__ import annotations

import tensorflow as tf

from kyolo.config import FOCAL_ALPHA

# Floor of (1 − p_t) under the focal power: keeps the gradient of x^γ finite for γ < 1 where a
# logit of ±1e4 saturates the sigmoid; (1e-20)^γ is negligible for any γ in use.
_TINY = 1e-20


def bce_with_logits(
    labels: tf.Tensor, logits: tf.Tensor, pos_weight: float | tf.Tensor = 1.0
) -> tf.Tensor:
    """Binary cross-entropy on logits, ``−(p·z·log σ(x) + (1 − z)·log(1 − σ(x)))``, elementwise.

    ``p`` = ``pos_weight`` weights positive labels as torch's ``BCEWithLogitsLoss(pos_weight=p)``.
    Stable for any finite logit (±1e4 included) and for soft labels ``z`` in [0, 1].
    """
    if isinstance(pos_weight, int | float) and pos_weight == 1:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.nn.weighted_cross_entropy_with_logits(labels, logits, pos_weight)


def focal_factor(
    labels: tf.Tensor, logits: tf.Tensor, gamma: float, alpha: float = FOCAL_ALPHA
) -> tf.Tensor:
    """Focal modulation ``α_t (1 − p_t)^γ`` (Lin et al. 2017, RetinaNet, eq. 5), elementwise.

    ``p_t = z·p + (1 − z)(1 − p)`` and ``α_t = z·α + (1 − z)(1 − α)`` with ``p = σ(x)``, taken
    with the soft label ``z`` as is (YOLOv5's ``FocalLoss`` does the same with smoothed and IoU
    targets). ``1 − p_t`` is written ``z·σ(−x) + (1 − z)·σ(x)`` so that it is exact near 0.
    """
    miss = labels * tf.sigmoid(-logits) + (1.0 - labels) * tf.sigmoid(logits)
    alpha_t = labels * alpha + (1.0 - labels) * (1.0 - alpha)
    return alpha_t * tf.pow(tf.maximum(miss, _TINY), gamma)


def sigmoid_focal_loss(
    labels: tf.Tensor,
    logits: tf.Tensor,
    gamma: float = 2.0,
    alpha: float = FOCAL_ALPHA,
    pos_weight: float | tf.Tensor = 1.0,
) -> tf.Tensor:
    """RetinaNet's sigmoid focal loss ``BCE · α_t (1 − p_t)^γ``, elementwise.

    With ``pos_weight = 1`` it equals ``keras.losses.BinaryFocalCrossentropy(
    apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True)`` before reduction;
    with ``pos_weight`` it is YOLOv5's ``FocalLoss(BCEWithLogitsLoss(pos_weight))``.
    """
    return bce_with_logits(labels, logits, pos_weight) * focal_factor(labels, logits, gamma, alpha)


def score_loss(
    labels: tf.Tensor,
    logits: tf.Tensor,
    kind: str,
    pos_weight: float | tf.Tensor = 1.0,
    focal_gamma: float = 0.0,
) -> tf.Tensor:
    """The score loss a :class:`kyolo.config.LossConfig` selects, elementwise.

    ``kind="mse"``: ``(σ(x) − z)²`` (YOLOv1/v2's sum-squared error on probabilities);
    ``"bce"``: :func:`bce_with_logits`, times :func:`focal_factor` when ``focal_gamma > 0``.
    """
    if kind == "mse":
        return tf.square(tf.sigmoid(logits) - labels)
    if focal_gamma > 0:
        return sigmoid_focal_loss(labels, logits, focal_gamma, pos_weight=pos_weight)
    return bce_with_logits(labels, logits, pos_weight)
