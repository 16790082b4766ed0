"""The ``y_true`` format: the one contract between the encoder (writer) and the loss (reader).

Per scale ``s`` with grid ``(gh, gw)`` and ``A`` anchors there are ``S = gh * gw * A`` prediction
slots; slot ``(gj, gi, a)`` has the flat index ``slot = (gj * gw + gi) * A + a``. A slot's target
row is ``x, y, w, h`` (box centre and size normalised to the input image), objectness (1 at
assigned slots, the *positives*) and a multi-hot class vector: ``5 + C`` values.

``cfg.target_layout="dense"`` (keras-yolo3's layout) stores every slot. One image's target is

* ``ignore_against="scale"``: ``(gh, gw, A, 5 + C)``;
* ``ignore_against="image"``: ``(S + max_boxes, 5 + C)`` — the same grid flattened, followed by
  the image's box list padded to ``max_boxes`` rows: ``x, y, w, h, valid, 0, ...``, real boxes
  first (:func:`box_list_index`). The loss
  needs every box of the image for the ignore mask and a Keras loss only sees its own output's
  ``y_true``, so the boxes travel inside it.

``cfg.target_layout="sparse"`` stores only the positives, in ``R = cfg.max_positives(s)`` rows
(YOLOv3 at 416x416 with 80 classes: 103 kB per image instead of 3.6 MB):

* ``ignore_against="scale"``: ``(R, 6 + C)``. Row ``r`` is ``x, y, w, h, obj, c_0 .. c_{C-1},
  slot``: the dense row of a positive slot followed by that slot's flat index as float32 (exact,
  slots are < 2**24). Positive rows come first, by ascending slot; the other rows are zeros.
  Scattering the rows with ``obj > 0`` to their slots in a zero grid gives the dense target.
* ``ignore_against="image"``: ``(R + max_boxes, 6 + C)`` — the same rows followed by the dense
  layout's box list, with a last column of zeros.

This module defines those shapes and the views the loss reads (:func:`target_rows`,
:func:`target_boxes`); :mod:`kyolo.encode` writes them.
"""

from __future__ import annotations

import tensorflow as tf

from kyolo.config import YoloConfig

BOX_LIST_COLUMNS = 5
"""Columns a box-list row uses: ``x, y, w, h, valid``; the rest of the row is zeros."""


def target_width(cfg: YoloConfig) -> int:
    """Values per target row: ``5 + C``, plus the slot column in the sparse layout."""
    return 5 + cfg.num_classes + (cfg.target_layout == "sparse")


def slot_rows(cfg: YoloConfig, scale: int) -> int:
    """Rows of one image's flat target at ``scale`` before the box list: ``S``, or ``R``."""
    if cfg.target_layout == "dense":
        return cfg.cells(scale)
    if cfg.cells(scale) > 2**24:
        raise ValueError(f"scale {scale} has {cfg.cells(scale)} slots: float32 holds < 2**24")
    return cfg.max_positives(scale)


def target_shape(cfg: YoloConfig, scale: int) -> list[int]:
    """One image's ``y_true`` shape at ``scale`` in ``cfg``'s layout (the module docstring's)."""
    if cfg.target_layout == "dense" and cfg.ignore_against == "scale":
        return [*cfg.grid_size(scale), cfg.anchors_per_scale, target_width(cfg)]
    box_list = cfg.max_boxes if cfg.ignore_against == "image" else 0
    return [slot_rows(cfg, scale) + box_list, target_width(cfg)]


def layout_name(cfg: YoloConfig) -> str:
    """The batched shape of ``cfg``'s layout in words, for error messages."""
    return {
        ("dense", "scale"): "(batch, grid_h, grid_w, A, 5 + C)",
        ("dense", "image"): "(batch, grid_h · grid_w · A + max_boxes, 5 + C)",
        ("sparse", "scale"): "(batch, max_positives, 5 + C + 1)",
        ("sparse", "image"): "(batch, max_positives + max_boxes, 5 + C + 1)",
    }[cfg.target_layout, cfg.ignore_against]


def box_list(boxes: tf.Tensor, valid: tf.Tensor, width: int) -> tf.Tensor:
    """``(n, width)`` float32 box-list rows ``x, y, w, h, valid, 0, ...``: zeros for padding."""
    keep = valid[:, None]
    rows = tf.concat(
        [tf.where(keep, tf.cast(boxes, tf.float32), 0.0), tf.cast(keep, tf.float32)], axis=-1
    )
    return tf.pad(rows, [[0, 0], [0, width - BOX_LIST_COLUMNS]])


def box_list_index(valid: tf.Tensor) -> tf.Tensor:
    """``(..., n)`` int32 row of each box in its image's box list: the real boxes (``valid``)
    packed first, in their order, so that padding rows beyond ``max_boxes`` need no row; a
    padding box gets row 0, where its all-zero :func:`box_list` row changes nothing."""
    rows = tf.math.cumsum(tf.cast(valid, tf.int32), axis=-1) - 1
    return tf.where(valid, rows, 0)


def target_grid(y_true: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """The slot grid ``(b, S, 5 + C)``, ``S = gh*gw*A``, of a batch of dense ``y_true``."""
    y_true = tf.cast(y_true, tf.float32)
    if cfg.ignore_against == "image":
        return y_true[:, : tf.shape(y_true)[1] - cfg.max_boxes]
    return tf.reshape(y_true, [tf.shape(y_true)[0], -1, 5 + cfg.num_classes])


def target_boxes(y_true: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """The image's box list carried by a batch of one scale's ``y_true`` (either layout).

    Only ``ignore_against="image"`` targets carry it; a ``"scale"`` target's ground truths are
    its positive rows (:func:`target_rows`).

    Returns:
        ``boxes (b, K, 4)`` xywh and ``valid (b, K)`` bool, ``K = max_boxes``.
    """
    if cfg.ignore_against != "image":
        raise ValueError("target_boxes: only ignore_against='image' targets carry a box list")
    rows = tf.cast(y_true, tf.float32)[:, -cfg.max_boxes :, :BOX_LIST_COLUMNS]
    return rows[..., :4], rows[..., 4] > 0


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
    (checked eagerly and in graphs; XLA drops asserts, so :class:`kyolo.losses.YoloLoss` also
    makes that image's loss NaN).

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

    Box and class terms only count at the assigned (positive) slots, at most
    ``P = cfg.max_positives(scale)`` per image: the loss reads these rows, never the dense
    ``(b, S, 5 + C)`` class block (99.9 % empty slots).

    Args:
        y_true: one scale's batched target.
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
