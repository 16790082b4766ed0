"""What the loss reads of one scale's head: every slot's objectness, all logits of the positives.

Box and class terms only count at the assigned (positive) slots, at most
``P = cfg.max_positives(scale)`` per image (:func:`kyolo.targets.target_rows` gives them);
objectness counts at all ``S = gh · gw · A`` slots. So the loss takes ``(b, P, 5 + C)`` rows of
the head and its ``(b, S)`` objectness logits — never the dense ``(b, S, 5 + C)`` class block.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kyolo.targets import batch_index


def head_rows(y_pred: tf.Tensor, slot: tf.Tensor, depth: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Objectness logits of every slot and all logits of the given slots, float32.

    The gradient with respect to ``y_pred`` is written by hand: the objectness gradient padded
    into a ``(b, S, depth)`` buffer, the rows' gradients added at their slots, one reshape to the
    head's shape. Autodiff gives the same values but builds them from pads of strided slices that
    XLA:CPU fuses into a loop rooted at the 4-D head shape, which it emits as a slow scalar loop
    (2.5× the loss's whole time at 416; BENCHMARKS.md).

    Args:
        y_pred: ``(b, gh, gw, A · depth)`` raw head output, any float dtype.
        slot: ``(b, P)`` int32 slots in ``[0, gh · gw · A)``.
        depth: ``5 + C``.
    Returns:
        ``objectness (b, S)`` and ``rows (b, P, depth)``.
    """

    @tf.custom_gradient
    def view(head: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], Any]:
        shape = tf.shape(head)
        flat = tf.reshape(tf.cast(head, tf.float32), [shape[0], -1, depth])
        objectness, rows = flat[..., 4], tf.gather(flat, slot, batch_dims=1)

        def grad(d_objectness: tf.Tensor | None, d_rows: tf.Tensor | None) -> tf.Tensor:
            d_objectness = tf.zeros_like(objectness) if d_objectness is None else d_objectness
            full = tf.pad(d_objectness[..., None], [[0, 0], [0, 0], [4, depth - 5]])
            if d_rows is not None:
                full = tf.tensor_scatter_nd_add(full, batch_index(slot), d_rows)
            return tf.cast(tf.reshape(full, shape), head.dtype)

        return (objectness, rows), grad

    return view(y_pred)
