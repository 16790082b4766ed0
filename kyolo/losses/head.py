"""What the loss reads of one scale: the target's positive rows and the head at those slots.

Box and class terms only count at the assigned (positive) slots, at most
``P = cfg.max_positives(scale)`` per image; objectness counts at all ``S = gh · gw · A`` slots. So
the loss takes ``(b, P, 5 + C)`` rows of the target and of the head, and the head's ``(b, S)``
objectness logits — never the dense ``(b, S, 5 + C)`` class block, 99.9 % empty slots.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.encode.targets import target_grid


def batch_index(slot: tf.Tensor) -> tf.Tensor:
    """``(b, P)`` slots → ``(b, P, 2)`` ``(image, slot)`` indices for ``tf.*scatter_nd``."""
    image = tf.broadcast_to(tf.range(tf.shape(slot)[0])[:, None], tf.shape(slot))
    return tf.stack([image, slot], axis=-1)


def rows_to_slots(values: tf.Tensor, slot: tf.Tensor, size: tf.Tensor | int) -> tf.Tensor:
    """Scatter per-row values back to their slots, 0 elsewhere: the inverse of the gather.

    Args:
        values: ``(b, P)``, 0 at rows that are not positive (those may share a slot);
            ``slot``: ``(b, P)`` int32; ``size``: ``S``, the slots of the scale.
    Returns:
        ``(b, S)`` float32.
    """
    shape = tf.stack([tf.shape(slot)[0], size])
    return tf.scatter_nd(batch_index(slot), tf.cast(values, tf.float32), shape)


def positive_slots(objectness: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The slots of each image's positives in a dense target, by ``tf.math.top_k``.

    A fixed ``count`` of rows per image, so it compiles under XLA. ``count`` must bound every
    image's positives (``cfg.max_positives``); more is an error, never a silent truncation
    (checked eagerly and in graphs; XLA drops asserts, where the encoder's cap guards instead).

    Args:
        objectness: ``(b, S)`` target objectness, ``> 0`` at assigned slots.
        count: ``P``, the most positives an image may have.
    Returns:
        ``slot (b, P)`` int32 in ``[0, S)`` and ``ok (b, P)`` bool, True at the positives' rows;
        the other rows point at arbitrary slots and must be masked with ``ok``.
    """
    size = tf.shape(objectness)[1]
    most = tf.reduce_max(tf.reduce_sum(tf.cast(objectness > 0, tf.int32), axis=-1))
    tf.debugging.assert_less_equal(
        most, count, message=f"kyolo.losses: an image holds more than {count} positive slots"
    )
    # Padding gives top_k `count` candidates on grids with fewer slots; padded rows are not ok.
    _, index = tf.math.top_k(tf.pad(objectness, [[0, 0], [0, count]]), k=count, sorted=False)
    slot = tf.minimum(index, size - 1)
    ok = (index < size) & (tf.gather(objectness, slot, batch_dims=1) > 0)
    return slot, ok


def target_rows(
    y_true: tf.Tensor, cfg: YoloConfig, scale: int, size: tf.Tensor | int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The positive rows of a batch of one scale's ``y_true``, in either ``cfg.target_layout``.

    Args:
        y_true: one scale's batched target (layout of :mod:`kyolo.encode.targets`).
        size: ``S``, the scale's slots.
    Returns:
        ``rows (b, P, 5 + C)`` float32 target rows, all 0 at rows that are not positive;
        ``slot (b, P)`` int32, each row's slot; ``objectness (b, S)`` float32, dense.
    """
    depth = 5 + cfg.num_classes
    count = cfg.max_positives(scale)
    y_true = tf.cast(y_true, tf.float32)
    if cfg.target_layout == "sparse":
        rows = y_true[:, :count, :depth]
        slot = tf.cast(y_true[:, :count, depth], tf.int32)
        return rows, slot, rows_to_slots(rows[..., 4], slot, size)
    grid = target_grid(y_true, cfg)
    slot, ok = positive_slots(grid[..., 4], count)
    rows = tf.where(ok[..., None], tf.gather(grid, slot, batch_dims=1), 0.0)
    return rows, slot, grid[..., 4]


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
