"""The public target encoders, one per input form, and the registry of assigners.

* :func:`encode_targets`: one image's boxes, in ``tf.data.Dataset.map``;
* :func:`encode_batch`: a batch of padded images, in ``Dataset.batch(b).map``;
* :func:`encode_rows`: a batch given as one list of ``(image, class, box)`` rows (YOLOv5's
  ``targets``), XLA-compatible.

Each picks the assigner named by ``cfg.assigner`` from :data:`ASSIGNERS` and writes ``y_true`` in
the format of :mod:`kyolo.targets` through :mod:`kyolo.encode.scatter`. A new assigner is one
candidates function (see :data:`Candidates`), one :data:`ASSIGNERS` line and its test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from kyolo.boxes import xyxy_to_xywh
from kyolo.config import YoloConfig
from kyolo.encode.best_anchor import anchor_iou_candidates
from kyolo.encode.ratio import ratio_candidates
from kyolo.encode.scatter import (
    box_list_entries,
    candidate_entries,
    image_ranks,
    known_classes,
    scatter_max,
    slot_ranks,
    sort_by_slot,
)
from kyolo.encode.validate import check_boxes, check_row_shapes, checked_shapes
from kyolo.targets import (
    batch_index,
    box_list,
    box_list_index,
    slot_rows,
    target_shape,
    target_width,
)

Candidates = Callable[[tf.Tensor, YoloConfig], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]
"""An assigner: ``(boxes (n, 4), cfg)`` → ``slot, keep, row``, each ``(S, k)``, one row per scale.

Candidate ``[s, i]`` proposes box ``row[s, i]`` for flat slot ``slot[s, i] = (gj * gw + gi) * A +
a`` of scale ``s``'s grid (for ``cfg.input_size``) when ``keep[s, i]``; padding rows need not be
dropped. Where candidates share a slot the later one wins
(:func:`kyolo.encode.scatter.sort_by_slot`), so their order is part of the assigner's definition.
All scales come at once because encoding an image costs mostly per TF op, little per value.
"""

ASSIGNERS: dict[str, Candidates] = {
    "best_anchor": anchor_iou_candidates,
    "best_anchor_per_scale": anchor_iou_candidates,
    "multi_anchor": anchor_iou_candidates,
    "ratio": ratio_candidates,
}
"""``cfg.assigner`` → its candidates function (see :class:`kyolo.config.YoloConfig`)."""


def encode_targets(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, ...]:
    """One image's boxes → per-scale ``y_true`` in ``cfg``'s layout (:mod:`kyolo.targets`).

    Pure TF with fixed output shapes, for ``tf.data.Dataset.map``. Boxes are validated by
    :func:`kyolo.encode.validate.check_boxes` (errors name the box index and value).

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; rows with ``w <= 0``
            are padding.
        classes: ``(n,)`` class ids in ``[0, C)``, integers or whole floats.
    Returns:
        One target per scale, shape :func:`kyolo.targets.target_shape`.
    """
    boxes, classes = checked_shapes(boxes, classes, batched=False)
    boxes = tf.cast(boxes, tf.float32)
    valid = check_boxes(boxes, classes, cfg)
    classes = tf.cast(classes, tf.int32)
    slot, keep, row = ASSIGNERS[cfg.assigner](boxes, cfg)
    sentinel = max(cfg.cells(s) for s in range(cfg.num_scales))
    order = sort_by_slot(slot, keep & tf.gather(valid, row), sentinel)
    row = tf.gather(row, order.perm, batch_dims=1)
    boxes_of, classes_of = tf.gather(boxes, row), tf.gather(classes, row)
    width = target_width(cfg)
    if cfg.target_layout == "dense":
        position, values = candidate_entries(order, boxes_of, classes_of, order.slot, width)
    else:
        # A positive slot's row is the number of positive slots before it: rows sorted by slot,
        # positives first. There are at most max_positives: check_boxes caps the boxes at
        # max_boxes and each assigner proposes at most max_positives / max_boxes slots per box.
        position, values = candidate_entries(
            order, boxes_of, classes_of, slot_ranks(order), width, order.slot
        )
    if cfg.ignore_against == "image":
        # The box list takes the rows after the slots' and goes into the same scatter.
        first_rows = [slot_rows(cfg, s) for s in range(cfg.num_scales)]
        box_position, box_values = box_list_entries(boxes, valid, first_rows, width)
        position = tf.concat([position, box_position], axis=1)
        values = tf.concat([values, box_values], axis=1)
    return tuple(
        scatter_max(target_shape(cfg, scale), scale_position, scale_values)
        for scale, (scale_position, scale_values) in enumerate(
            zip(tf.unstack(position), tf.unstack(values), strict=True)
        )
    )


def encode_rows(
    image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, batch: int, cfg: YoloConfig
) -> tuple[tf.Tensor, ...]:
    """Encode the boxes of a whole batch given as one list of rows (YOLOv5's ``targets``).

    Fixed shapes and no string ops, so it compiles under XLA; it runs no
    :func:`~kyolo.encode.validate.check_boxes` (rows whose image is outside ``[0, batch)`` or
    whose ``w <= 0`` are dropped; a class id that is not a whole number in ``[0, C)`` sets no
    class). Candidates keep the assigner's order across the whole list, as
    YOLOv5's ``build_targets`` does. Used by :mod:`kyolo.compat.yolov5`.

    Args:
        image: ``(n,)`` image index of each row; ``boxes``: ``(n, 4)`` normalised ``xywh``;
            ``classes``: ``(n,)`` class ids.
        batch: number of images ``b``.
    Returns:
        Per scale, without box list whatever ``ignore_against``: ``"dense"``: the
        ``(b, gh, gw, A, 5 + C)`` float32 grids (the ``"scale"`` layout); ``"sparse"``: the
        ``(b, R, 6 + C)`` rows of each image. An image with more positives than ``R``
        (possible here: nothing caps its boxes at ``max_boxes``) raises
        ``InvalidArgumentError``, except under XLA, which drops asserts.
    """
    image, boxes, classes = (tf.convert_to_tensor(v) for v in (image, boxes, classes))
    check_row_shapes(image, boxes, classes)
    image = tf.cast(image, tf.int32)
    boxes = tf.cast(boxes, tf.float32)
    valid = (image >= 0) & (image < batch) & (boxes[:, 2] > 0)
    slot, keep, row = ASSIGNERS[cfg.assigner](boxes, cfg)
    scales = range(cfg.num_scales)
    # Slots flat over the batch: image b's grid follows image b - 1's.
    cells = np.array([[cfg.cells(s)] for s in scales], np.int32)  # (S, 1)
    slot = slot + tf.gather(tf.where(valid, image, 0), row) * cells
    order = sort_by_slot(slot, keep & tf.gather(valid, row), batch * int(cells.max()), False)
    row = tf.gather(row, order.perm, batch_dims=1)
    # Unchecked classes: an unknown id sets no class, as a one-hot encoding would.
    boxes, classes = tf.gather(boxes, row), tf.gather(known_classes(classes, cfg.num_classes), row)
    width = target_width(cfg)
    if cfg.target_layout == "dense":
        position, values = candidate_entries(order, boxes, classes, order.slot, width)
        shapes = [[batch, *cfg.grid_size(s), cfg.anchors_per_scale, width] for s in scales]
    else:
        num_rows = np.array([[slot_rows(cfg, s)] for s in scales], np.int32)  # (S, 1)
        owner, rank, positives = image_ranks(order, batch, cells)
        position, values = candidate_entries(
            order, boxes, classes, owner * num_rows + rank, width, order.slot - owner * cells
        )
        shapes = [[batch, int(rows), width] for rows in num_rows[:, 0]]
        # Nothing caps the boxes of an image at max_boxes here, so its positives at R.
        message = (
            "kyolo.encode: an image has more positive slots at a scale than max_positives "
            f"{num_rows[:, 0].tolist()} (more than max_boxes={cfg.max_boxes} boxes?)"
        )
        check = tf.debugging.assert_less_equal(positives, num_rows[:, 0], message=message)
        with tf.control_dependencies([check]):
            position = tf.identity(position)
    return tuple(scatter_max(shapes[s], position[s], values[s]) for s in scales)


def encode_batch(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, ...]:
    """A batch of padded images' boxes → the batched per-scale ``y_true``, equal to stacking
    :func:`encode_targets` of each image.

    For ``dataset.batch(b, drop_remainder=True).map(...)``: one call per batch shares the
    per-call costs of ``tf.data`` and of the validation (the same rules and messages, naming the
    image) over the batch; the assignment is :func:`encode_rows`'. 2.3× the images per second of
    :func:`encode_targets` for YOLOv3 with sparse targets and 10 boxes per image; no faster for
    dense targets or 100 boxes (BENCHMARKS.md).

    Args:
        boxes: ``(b, n, 4)`` float ``x, y, w, h`` normalised to the input image, ``b`` static;
            rows with ``w <= 0`` are padding.
        classes: ``(b, n)`` class ids in ``[0, C)``, integers or whole floats.
    Returns:
        Per scale, ``(b, ...)`` ``y_true`` in ``cfg``'s layout.
    """
    boxes, classes = checked_shapes(boxes, classes, batched=True)
    boxes = tf.cast(boxes, tf.float32)
    batch = boxes.shape[0]
    if batch is None:
        raise ValueError(
            "kyolo.encode: encoding a batch needs a static batch size: "
            "Dataset.batch(b, drop_remainder=True) before the map"
        )
    valid = check_boxes(boxes, classes, cfg)  # (b, n)
    classes = tf.cast(classes, tf.int32)
    image = tf.repeat(tf.range(batch), tf.shape(boxes)[1])
    # encode_rows drops rows with w <= 0: padding rows (and NaN ones, rejected above) are zeroed.
    rows = tf.where(tf.reshape(valid, [-1, 1]), tf.reshape(boxes, [-1, 4]), 0.0)
    targets = encode_rows(image, rows, tf.reshape(classes, [-1]), batch, cfg)
    if cfg.ignore_against == "scale":
        return targets
    width = target_width(cfg)
    box_rows = tf.reshape(box_list(rows, tf.reshape(valid, [-1]), width), [batch, -1, width])
    box_rows = tf.scatter_nd(
        batch_index(box_list_index(valid)), box_rows, [batch, cfg.max_boxes, width]
    )
    return tuple(
        tf.concat([tf.reshape(target, [batch, -1, width]), box_rows], axis=1) for target in targets
    )


def target_encoder(
    cfg: YoloConfig,
) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tuple[tf.Tensor, ...]]]:
    """``encode(image, boxes, classes) -> (image, y_true per scale)`` for
    :func:`kyolo.data.pipeline.make_dataset`.

    ``boxes`` are ``(n, 4)`` xyxy in network-input pixels (the pipeline's frame); the encoder
    wants them as ``xywh`` normalised to the input.
    """
    height, width = cfg.input_size
    size = tf.constant([width, height, width, height], tf.float32)

    def encode(image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor):
        return image, encode_targets(xyxy_to_xywh(boxes) / size, classes, cfg)

    return encode
