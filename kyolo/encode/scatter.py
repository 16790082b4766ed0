"""How the encoders write candidates into ``y_true``: sort by slot, pick winners, max-scatter.

The assigner proposes candidate slots for every box on every scale at once
(:data:`kyolo.encode.encoder.Candidates`), :func:`sort_by_slot` orders them by slot and picks the
winner of each shared slot, and one ``tf.tensor_scatter_nd_max`` onto zeros per scale writes
their values (:func:`candidate_entries`, :func:`scatter_max`). Encoding an image costs mostly
per TF op, not per value, hence few, scale-batched ops.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kyolo.encode.validate import class_faults
from kyolo.targets import BOX_LIST_COLUMNS, box_list, box_list_index


class SortedCandidates(NamedTuple):
    """Candidates in the order of :func:`sort_by_slot`, each ``(S, K)``.

    ``perm``: the original index of the candidate at each position; ``slot``: int32, ascending,
    the sentinel for dropped candidates (last); ``kept``: not dropped; ``first``: the first of a
    run of equal slots; ``wins``: kept and the last of its run, the candidate that supplies the
    slot's ``xywh``.
    """

    perm: tf.Tensor
    slot: tf.Tensor
    kept: tf.Tensor
    first: tf.Tensor
    wins: tf.Tensor


def sort_by_slot(
    slot: tf.Tensor, keep: tf.Tensor, sentinel: int, truncate: bool = True
) -> SortedCandidates:
    """The kept candidates of each scale ordered by slot, stably.

    A stable sort keeps the assigner's order among the candidates of one slot, so the last of a
    run is the later candidate, which wins the slot (keras-yolo3's numpy loop overwrites in
    order). TF's scatter order is unspecified, so the winner is picked explicitly, which keeps
    the result deterministic.

    Args:
        slot: ``(S, k)`` int flat slot of each candidate, in ``[0, sentinel)``.
        keep: ``(S, k)`` bool, False for candidates that are not written.
        sentinel: an int above every slot.
        truncate: return only the first ``K`` = the most kept candidates of any scale: most
            candidates are dropped (e.g. 8 of a box's 9 anchors) and every later op costs per
            candidate. ``K`` is data-dependent, which XLA would treat as a compile-time constant
            (a recompilation per batch): False keeps all ``k``.
    Returns:
        ``(S, K)`` tensors; a scale with fewer than ``K`` kept candidates ends with dropped ones.
    """
    # top_k sorts descending and puts equal values in index order: negate for a stable ascent.
    descending = tf.where(keep, -tf.cast(slot, tf.int32), -sentinel)
    if truncate:
        count = tf.reduce_max(tf.reduce_sum(tf.cast(keep, tf.int32), axis=-1))
    else:
        count = descending.shape[-1] if descending.shape[-1] is not None else tf.shape(slot)[-1]
    negated, perm = tf.math.top_k(descending, k=count)
    slot = -negated
    kept = slot < sentinel
    # Runs of equal slots: compare with both neighbours, -1 (no slot) beyond either end.
    padded = tf.pad(slot, [[0, 0], [1, 1]], constant_values=-1)
    first = tf.not_equal(slot, padded[:, :-2])
    wins = kept & tf.not_equal(slot, padded[:, 2:])
    return SortedCandidates(perm, slot, kept, first, wins)


def slot_ranks(order: SortedCandidates) -> tf.Tensor:
    """``(S, K)`` int32: the number of distinct slots before each candidate's, per scale."""
    return tf.math.cumsum(tf.cast(order.first, tf.int32), axis=-1) - 1


def candidate_entries(
    order: SortedCandidates,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    row: tf.Tensor,
    width: int,
    slot: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The values the candidates write into their target rows, as scalar max-scatter updates.

    Each candidate writes ``E`` values of its row: ``x, y, w, h`` and objectness 1 if it wins
    the slot (zeros otherwise), a 1 in its class's column and, in the sparse layout, the slot
    in the last column. Every target value is >= 0, so the maximum at a shared slot gives the
    winner's box and the union of the classes, and a zero changes nothing (dropped candidates
    write zeros to position 0). Single values avoid ``(S, K, C)`` one-hot tensors.

    Args:
        order: :func:`sort_by_slot` of the candidates; boxes ``(S, K, 4)`` float32 and classes
            ``(S, K)`` int32 are in its order. A class of -1 sets no class: its 1 lands on the
            objectness column, which the slot's winner sets to 1 anyway.
        row: ``(S, K)`` int32 target row of each kept candidate; width: values per row.
        slot: ``(S, K)`` int32 value of the slot column, None in the dense layout (no column).
    Returns:
        ``position (S, K * E, 1)`` int32 ``row * width + column`` in the flattened target, and
        ``values (S, K * E)`` float32.
    """
    wins, kept = tf.expand_dims(order.wins, -1), tf.expand_dims(order.kept, -1)
    values = [tf.where(wins, boxes, 0.0), tf.cast(wins, tf.float32), tf.cast(kept, tf.float32)]
    columns = [0, 1, 2, 3, 4, 5]  # the class column is 5 + class
    if slot is not None:
        values.append(tf.cast(tf.where(kept, tf.expand_dims(slot, -1), 0), tf.float32))
        columns.append(width - 1)
    class_offset = np.array(columns) == 5
    position = tf.expand_dims(row * width, -1) + columns
    position = tf.where(kept, position + tf.expand_dims(classes, -1) * class_offset, 0)
    scales = order.slot.shape[0]
    values = tf.reshape(tf.concat(values, axis=-1), [scales, -1])
    return tf.reshape(position, [scales, -1, 1]), values


def box_list_entries(
    boxes: tf.Tensor, valid: tf.Tensor, first_rows: list[int], width: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """The image's box list as scalar updates (see :func:`candidate_entries`).

    Real box ``i`` writes ``x, y, w, h, 1`` to row ``first_rows[s] + box_list_index(valid)[i]``
    of each scale ``s``'s target; a padding box writes zeros (:func:`kyolo.targets.box_list_index`).

    Returns:
        ``position (S, n * 5, 1)`` int32 and ``values (S, n * 5)`` float32.
    """
    values = box_list(boxes, valid, BOX_LIST_COLUMNS)
    position = box_list_index(valid)[:, None] * width + np.arange(BOX_LIST_COLUMNS)
    first = np.array(first_rows, np.int32)[:, None, None] * width  # (S, 1, 1)
    scales = len(first_rows)
    position = tf.reshape(position + first, [scales, -1, 1])
    return position, tf.tile(tf.reshape(values, [1, -1]), [scales, 1])


def known_classes(classes: tf.Tensor, num_classes: int) -> tf.Tensor:
    """``classes`` as int32, -1 (no class, as in a one-hot encoding) for an id that is not a whole
    number in ``[0, C)``; compared in the ids' own dtype, so int64 ids do not wrap and float ones
    are not truncated."""
    classes = tf.convert_to_tensor(classes)
    fraction, outside = class_faults(classes, num_classes)
    unknown = outside if fraction is None else outside | fraction
    return tf.where(unknown, -1, tf.cast(classes, tf.int32))


def scatter_max(shape: list[int], position: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """A zero float32 target of ``shape`` with ``values`` max-scattered to it.

    Args:
        position: ``(m, 1)`` int32 flat position of each value; values: ``(m,)`` float32 >= 0.
    """
    size = int(np.prod(shape))
    flat = tf.tensor_scatter_nd_max(tf.zeros([size], tf.float32), position, values)
    return tf.reshape(flat, shape)


def image_ranks(
    order: SortedCandidates, batch: int, cells: np.ndarray
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Image and rank in its image of each candidate sorted by batch-flat slot.

    Args:
        order: :func:`sort_by_slot` of slots ``image * cells + slot``; cells: ``(S, 1)``.
    Returns:
        ``owner (S, k)``: image (0 for dropped candidates); ``rank (S, k)``: the number of
        positive slots before the candidate's in its image; ``positives (S,)``: the most
        positive slots of an image.
    """
    scales = cells.shape[0]
    owner = tf.where(order.kept, order.slot // cells, 0)
    rank = slot_ranks(order)  # over the whole batch
    segment = owner + np.arange(scales, dtype=np.int32)[:, None] * batch  # (scale, image)
    start = tf.math.unsorted_segment_min(
        tf.where(order.kept, rank, tf.int32.max), segment, scales * batch
    )
    rank = rank - tf.gather(start, segment)
    count = tf.math.unsorted_segment_max(tf.where(order.kept, rank + 1, 0), segment, scales * batch)
    return owner, rank, tf.reduce_max(tf.reshape(count, [scales, batch]), axis=1)
