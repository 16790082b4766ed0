"""What the loss reads of one scale's head: every slot's objectness, all logits of the positives.

Box and class terms only count at the assigned (positive) slots, at most
``P = cfg.max_positives(scale)`` per image (:func:`kyolo.targets.target_rows` gives them);
objectness counts at all ``S = gh · gw · A`` slots. So the loss takes ``(b, P, 5 + C)`` rows of
the head and its ``(b, S)`` objectness logits — never the dense ``(b, S, 5 + C)`` class block.

A head may hold its slots in one of :data:`HEAD_LAYOUTS`: Keras' channels-last
``(b, gh, gw, A · (5 + C))`` (``"cells"``, slot ``(row · gw + col) · A + a``, the order of
``y_true``) or YOLOv5's ``Detect`` output ``(b, A, gh, gw, 5 + C)`` (``"anchors"``, anchor-major).
The loss reads either in place: only the positives' rows are gathered at mapped indices and the
``(b, S)`` objectness is permuted, never the whole head (whose transpose and the transpose of its
gradient cost more than the rest of YOLOv5's loss at 640; BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from kyolo.targets import batch_index


@dataclasses.dataclass(frozen=True)
class HeadLayout:
    """Where a scale's raw output keeps its ``S = gh · gw · A`` slots of ``5 + C`` logits.

    Attributes:
        name: the key in :data:`HEAD_LAYOUTS`.
        shape: the output's shape in words, for error messages.
        grid_axes: the axes of ``gh`` and ``gw`` in the output.
        anchor_major: the flat slot of the output is ``a · gh · gw + cell`` rather than the
            targets' ``cell · A + a``.
    """

    name: str
    shape: str
    grid_axes: tuple[int, int]
    anchor_major: bool

    def expected_shape(self, grid: tuple[int, int], count: int, depth: int) -> list[int | None]:
        """The output's shape for a ``grid``, ``count`` anchors and ``depth = 5 + C``, any batch."""
        if self.anchor_major:
            return [None, count, *grid, depth]
        return [None, *grid, count * depth]

    def grid(self, shape: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(gh, gw)`` from the output's shape vector."""
        return shape[self.grid_axes[0]], shape[self.grid_axes[1]]

    def to_cells(self, y_pred: tf.Tensor) -> tf.Tensor:
        """The output as ``(b, gh, gw, A · (5 + C))`` (a transpose for ``"anchors"``)."""
        if not self.anchor_major:
            return y_pred
        shape = tf.shape(y_pred)
        cells = tf.transpose(y_pred, [0, 2, 3, 1, 4])
        return tf.reshape(cells, [shape[0], shape[2], shape[3], shape[1] * shape[4]])


HEAD_LAYOUTS = {
    "cells": HeadLayout("cells", "(batch, grid_h, grid_w, channels)", (1, 2), False),
    "anchors": HeadLayout("anchors", "(batch, anchors, grid_h, grid_w, 5 + C)", (2, 3), True),
}
"""Name → :class:`HeadLayout`: ``"cells"`` (Keras' heads, the default), ``"anchors"`` (YOLOv5)."""


def get_head_layout(name: str) -> HeadLayout:
    """The :class:`HeadLayout` called ``name``; ``ValueError`` naming the valid ones."""
    if name not in HEAD_LAYOUTS:
        raise ValueError(
            f"unknown head_layout {name!r}; valid names: {', '.join(sorted(HEAD_LAYOUTS))}"
        )
    return HEAD_LAYOUTS[name]


def _reorder(values: tf.Tensor, count: int, to_anchor_major: bool) -> tf.Tensor:
    """``(b, S)`` per-slot values from the targets' slot order to anchor-major, or back."""
    shape = tf.shape(values)
    split = [shape[0], -1, count] if to_anchor_major else [shape[0], count, -1]
    return tf.reshape(tf.transpose(tf.reshape(values, split), [0, 2, 1]), shape)


def head_rows(
    y_pred: tf.Tensor,
    slot: tf.Tensor,
    depth: int,
    layout: HeadLayout = HEAD_LAYOUTS["cells"],
    anchors_per_scale: int = 1,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Objectness logits of every slot and all logits of the given slots, float32.

    The gradient with respect to ``y_pred`` is written by hand: the objectness gradient padded
    into a ``(b, S, depth)`` buffer, the rows' gradients added at their slots, one reshape to the
    head's shape. Autodiff gives the same values but builds them from pads of strided slices that
    XLA:CPU fuses into a loop rooted at the 4-D head shape, which it emits as a slow scalar loop
    (2.5× the loss's whole time at 416; BENCHMARKS.md).

    Args:
        y_pred: the raw head output in ``layout`` (``(b, gh, gw, A · depth)`` by default), any
            float dtype.
        slot: ``(b, P)`` int32 slots in ``[0, gh · gw · A)``, in the targets' order
            ``cell · A + a``.
        depth: ``5 + C``.
        layout: how ``y_pred`` holds the slots (:data:`HEAD_LAYOUTS`).
        anchors_per_scale: ``A``; only an anchor-major layout needs it.
    Returns:
        ``objectness (b, S)`` in the targets' slot order and ``rows (b, P, depth)``.
    """
    count = anchors_per_scale

    @tf.custom_gradient
    def view(head: tf.Tensor) -> tuple[tuple[tf.Tensor, tf.Tensor], Any]:
        shape = tf.shape(head)
        flat = tf.reshape(tf.cast(head, tf.float32), [shape[0], -1, depth])
        index, objectness = slot, flat[..., 4]
        if layout.anchor_major:
            cells = tf.shape(flat)[1] // count
            index = (slot % count) * cells + slot // count
            objectness = _reorder(objectness, count, to_anchor_major=False)
        rows = tf.gather(flat, index, batch_dims=1)

        def grad(d_objectness: tf.Tensor | None, d_rows: tf.Tensor | None) -> tf.Tensor:
            d_objectness = tf.zeros_like(objectness) if d_objectness is None else d_objectness
            if layout.anchor_major:
                d_objectness = _reorder(d_objectness, count, to_anchor_major=True)
            full = tf.pad(d_objectness[..., None], [[0, 0], [0, 0], [4, depth - 5]])
            if d_rows is not None:
                full = tf.tensor_scatter_nd_add(full, batch_index(index), d_rows)
            return tf.cast(tf.reshape(full, shape), head.dtype)

        return (objectness, rows), grad

    return view(y_pred)
