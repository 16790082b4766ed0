"""The ``y_true`` layouts shared by every assigner and by the loss, and the checks on its input.

Per scale ``s`` with grid ``(gh, gw)`` and ``A`` anchors there are ``S = gh * gw * A`` prediction
slots; slot ``(gj, gi, a)`` has the flat index ``slot = (gj * gw + gi) * A + a``. A slot's target
row is ``x, y, w, h`` (box centre and size normalised to the input image), objectness (1 at
assigned slots, the *positives*) and a multi-hot class vector: ``5 + C`` values.

``cfg.target_layout="dense"`` (keras-yolo3's layout) stores every slot. One image's target is

* ``ignore_against="scale"``: ``(gh, gw, A, 5 + C)``;
* ``ignore_against="image"``: ``(S + max_boxes, 5 + C)`` — the same grid flattened, followed by
  the image's box list padded to ``max_boxes`` rows: ``x, y, w, h, valid, 0, ...``. The loss
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

Both layouts come from the same steps: the assigner proposes candidate slots for every box on
every scale at once (:data:`Candidates`), :func:`sort_by_slot` orders them by slot and picks the
winner of each shared slot, and one ``tf.tensor_scatter_nd_max`` onto zeros per scale writes
their values (:func:`candidate_entries`). Encoding an image costs mostly per TF op, not per
value, hence few, scale-batched ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig

# check_boxes' rules on a real box, in the order they are reported.
_RULES = (
    "box coordinates must be finite (NaN/Inf found)",
    "box height must be > 0",
    "box centre must lie inside the image (normalised x, y in [0, 1])",
    "class id must be in [0, {num_classes})",
)


def check_boxes(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """Validate one image's boxes, or a batch of padded images'; return the real boxes' mask.

    Rows with ``w <= 0`` are padding (keras-yolo3's convention) and are ignored. Every other row
    must be finite with ``h > 0``, a centre inside the image and a class in ``[0, C)``; an image
    may carry at most ``cfg.max_boxes`` real boxes. A violation raises ``InvalidArgumentError``
    naming the rule, the first offending box index (and its image, for a batch) and its value —
    also inside ``Dataset.map``. With several, the first rule of that list is reported.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image, or ``(b, n, 4)``.
        classes: ``(n,)`` (or ``(b, n)``) integer class ids.
    Returns:
        ``(n,)`` (or ``(b, n)``) bool, True for real boxes.
    """
    boxes = tf.convert_to_tensor(boxes)
    classes = tf.cast(classes, tf.int32)
    batched = boxes.shape.rank == 3
    if batched:
        per_image = tf.shape(boxes)[1]
        boxes, classes = tf.reshape(boxes, [-1, 4]), tf.reshape(classes, [-1])
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    valid = finite & (boxes[:, 2] > 0)
    centre = boxes[:, :2]
    broken = tf.stack(
        [
            ~finite,
            valid & ~(boxes[:, 3] > 0),
            valid & ~tf.reduce_all((centre >= 0) & (centre <= 1), axis=-1),
            valid & ~(tf.cast(classes, tf.uint32) < cfg.num_classes),  # negative ids wrap
        ],
        axis=1,
    )  # (n, rules)
    # The messages are built for every image: a tf.cond that builds them only on failure costs
    # more (in tf.data, about as much as encoding a small image).
    check = tf.debugging.Assert(
        ~tf.reduce_any(broken),
        [_first_broken_rule(broken, boxes, classes, cfg, per_image if batched else None)],
    )
    limit = f"more than max_boxes={cfg.max_boxes}"
    if batched:
        counts = tf.reduce_sum(tf.reshape(tf.cast(valid, tf.int32), [-1, per_image]), axis=1)
        image = tf.argmax(tf.pad(counts, [[0, 1]]), output_type=tf.int32)
        count = tf.reduce_max(tf.pad(counts, [[0, 1]]))
        message = tf.strings.format(
            f"kyolo.encode: image {{}} has {{}} boxes, {limit}", (image, count)
        )
    else:
        count = tf.reduce_sum(tf.cast(valid, tf.int32))
        message = tf.strings.format(f"kyolo.encode: image has {{}} boxes, {limit}", count)
    with tf.control_dependencies([check]):
        check = tf.debugging.Assert(count <= cfg.max_boxes, [message])
    with tf.control_dependencies([check]):
        return tf.reshape(valid, [-1, per_image]) if batched else tf.identity(valid)


def _first_broken_rule(
    broken: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    cfg: YoloConfig,
    per_image: tf.Tensor | None = None,
) -> tf.Tensor:
    """The message naming the first broken rule, its first offending box and that box's value.

    Args:
        broken: ``(n, rules)`` bool, whether box ``i`` breaks rule ``r`` of :data:`_RULES`.
        per_image: for the rows of a batch of padded images, the rows per image: the message
            then names the image and the box index in it.
    """
    # One zero row appended so that the lookups are defined for images without boxes.
    broken = tf.pad(broken, [[0, 1], [0, 0]])
    rule = tf.argmax(tf.reduce_any(broken, axis=0), output_type=tf.int32)
    first = tf.argmax(tf.cast(tf.gather(broken, rule, axis=1), tf.int32), output_type=tf.int32)
    rules = ["kyolo.encode: " + r.format(num_classes=cfg.num_classes) for r in _RULES]
    row = (
        tf.gather(tf.pad(boxes, [[0, 1], [0, 0]]), first),
        tf.gather(tf.pad(classes, [[0, 1]]), first),
    )
    if per_image is None:
        value = tf.strings.format("; box index {}, xywh {}, class {}", (first, *row))
    else:
        where = (first // per_image, first % per_image)
        value = tf.strings.format("; image {}, box index {}, xywh {}, class {}", (*where, *row))
    return tf.strings.join([tf.gather(rules, rule), value])


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

    Box ``i`` writes ``x, y, w, h, valid`` (zeros for a padding box) to row ``first_rows[s] + i``
    of each scale ``s``'s target.

    Returns:
        ``position (S, n * 5, 1)`` int32 and ``values (S, n * 5)`` float32.
    """
    keep = valid[:, None]
    values = tf.where(keep, tf.concat([boxes, tf.ones_like(boxes[:, :1])], axis=-1), 0.0)
    position = tf.range(tf.shape(boxes)[0])[:, None] * width + np.arange(5)  # (n, 5)
    first = np.array(first_rows, np.int32)[:, None, None] * width  # (S, 1, 1)
    scales = len(first_rows)
    position = tf.reshape(position + first, [scales, -1, 1])
    return position, tf.tile(tf.reshape(values, [1, -1]), [scales, 1])


def box_list(boxes: tf.Tensor, valid: tf.Tensor, width: int) -> tf.Tensor:
    """``(n, width)`` float32 rows ``x, y, w, h, valid, 0, ...``: zeros for padding boxes."""
    keep = valid[:, None]
    rows = tf.concat(
        [tf.where(keep, tf.cast(boxes, tf.float32), 0.0), tf.cast(keep, tf.float32)], axis=-1
    )
    return tf.pad(rows, [[0, 0], [0, width - 5]])


def known_classes(classes: tf.Tensor, num_classes: int) -> tf.Tensor:
    """``classes`` as int32, -1 outside ``[0, C)`` (no class, as in a one-hot encoding)."""
    classes = tf.cast(classes, tf.int32)
    return tf.where((classes >= 0) & (classes < num_classes), classes, -1)


def scatter_max(shape: list[int], position: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """A zero float32 target of ``shape`` with ``values`` max-scattered to it.

    Args:
        position: ``(m, 1)`` int32 flat position of each value; values: ``(m,)`` float32 >= 0.
    """
    size = int(np.prod(shape))
    flat = tf.tensor_scatter_nd_max(tf.zeros([size], tf.float32), position, values)
    return tf.reshape(flat, shape)


def target_grid(y_true: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """The slot grid ``(b, S, 5 + C)``, ``S = gh*gw*A``, of a batch of dense ``y_true``."""
    y_true = tf.cast(y_true, tf.float32)
    if cfg.ignore_against == "image":
        return y_true[:, : tf.shape(y_true)[1] - cfg.max_boxes]
    return tf.reshape(y_true, [tf.shape(y_true)[0], -1, 5 + cfg.num_classes])


def target_boxes(y_true: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """The image's box list carried by a batch of one scale's ``y_true`` (either layout).

    Only ``ignore_against="image"`` targets carry it; the loss reads a ``"scale"`` target's
    ground truths from its positive rows (:func:`kyolo.losses.head.target_rows`).

    Returns:
        ``boxes (b, K, 4)`` xywh and ``valid (b, K)`` bool, ``K = max_boxes``.
    """
    if cfg.ignore_against != "image":
        raise ValueError("target_boxes: only ignore_against='image' targets carry a box list")
    rows = tf.cast(y_true, tf.float32)[:, -cfg.max_boxes :, :5]
    return rows[..., :4], rows[..., 4] > 0


Candidates = Callable[[tf.Tensor, YoloConfig], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]
"""An assigner: ``(boxes (n, 4), cfg)`` → ``slot, keep, row``, each ``(S, k)``, one row per scale.

Candidate ``[s, i]`` proposes box ``row[s, i]`` for flat slot ``slot[s, i] = (gj * gw + gi) * A +
a`` of scale ``s``'s grid (for ``cfg.input_size``) when ``keep[s, i]``; padding rows need not be
dropped. Where candidates share a slot the later one wins (:func:`sort_by_slot`), so their order
is part of the assigner's definition. All scales come at once because encoding an image costs
mostly per TF op, little per value.
"""


def _slot_rows(cfg: YoloConfig, scale: int) -> int:
    """Rows of one image's flat target at ``scale`` before the box list: ``S``, or ``R``."""
    if cfg.target_layout == "dense":
        return cfg.cells(scale)
    if cfg.cells(scale) > 2**24:
        raise ValueError(f"scale {scale} has {cfg.cells(scale)} slots: float32 holds < 2**24")
    return cfg.max_positives(scale)


def target_width(cfg: YoloConfig) -> int:
    """Values per target row: ``5 + C``, plus the slot column in the sparse layout."""
    return 5 + cfg.num_classes + (cfg.target_layout == "sparse")


def target_shape(cfg: YoloConfig, scale: int) -> list[int]:
    """One image's ``y_true`` shape at ``scale`` in ``cfg``'s layout (the module docstring's)."""
    if cfg.target_layout == "dense" and cfg.ignore_against == "scale":
        return [*cfg.grid_size(scale), cfg.anchors_per_scale, target_width(cfg)]
    box_list = cfg.max_boxes if cfg.ignore_against == "image" else 0
    return [_slot_rows(cfg, scale) + box_list, target_width(cfg)]


def encode_image(
    boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig, candidates: Candidates
) -> tuple[tf.Tensor, ...]:
    """Encode one image's boxes with an assigner: per scale, ``y_true`` in ``cfg``'s layout.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; rows with ``w <= 0``
            are padding (validated by :func:`check_boxes`). With ``ignore_against="image"``,
            ``n <= max_boxes``.
        classes: ``(n,)`` integer class ids in ``[0, C)``.
    """
    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    valid = check_boxes(boxes, classes, cfg)
    slot, keep, row = candidates(boxes, cfg)
    sentinel = max(cfg.cells(s) for s in _scales(cfg))
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
        first_rows = [_slot_rows(cfg, s) for s in _scales(cfg)]
        box_position, box_values = box_list_entries(boxes, valid, first_rows, width)
        position = tf.concat([position, box_position], axis=1)
        values = tf.concat([values, box_values], axis=1)
    return tuple(
        scatter_max(target_shape(cfg, scale), scale_position, scale_values)
        for scale, (scale_position, scale_values) in enumerate(
            zip(tf.unstack(position), tf.unstack(values), strict=True)
        )
    )


def encode_batch(
    image: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    batch: int,
    cfg: YoloConfig,
    candidates: Candidates,
) -> tuple[tf.Tensor, ...]:
    """Encode the boxes of a whole batch given as one list of rows (YOLOv5's ``targets``).

    Fixed shapes and no string ops, so it compiles under XLA; it runs no :func:`check_boxes`
    (rows whose image is outside ``[0, batch)`` or whose ``w <= 0`` are dropped). Candidates
    keep the assigner's order across the whole list, as YOLOv5's ``build_targets`` does.

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
    image = tf.cast(image, tf.int32)
    boxes = tf.cast(boxes, tf.float32)
    valid = (image >= 0) & (image < batch) & (boxes[:, 2] > 0)
    slot, keep, row = candidates(boxes, cfg)
    # Slots flat over the batch: image b's grid follows image b - 1's.
    cells = np.array([[cfg.cells(s)] for s in range(cfg.num_scales)], np.int32)  # (S, 1)
    slot = slot + tf.gather(tf.where(valid, image, 0), row) * cells
    order = sort_by_slot(slot, keep & tf.gather(valid, row), batch * int(cells.max()), False)
    row = tf.gather(row, order.perm, batch_dims=1)
    # Unchecked classes: one outside [0, C) sets no class, as a one-hot encoding would.
    boxes, classes = tf.gather(boxes, row), tf.gather(known_classes(classes, cfg.num_classes), row)
    width = target_width(cfg)
    if cfg.target_layout == "dense":
        position, values = candidate_entries(order, boxes, classes, order.slot, width)
        shapes = [[batch, *cfg.grid_size(s), cfg.anchors_per_scale, width] for s in _scales(cfg)]
    else:
        num_rows = np.array([[_slot_rows(cfg, s)] for s in _scales(cfg)], np.int32)  # (S, 1)
        owner, rank, positives = _image_ranks(order, batch, cells)
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
    return tuple(scatter_max(shapes[s], position[s], values[s]) for s in _scales(cfg))


def encode_images(
    boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig, candidates: Candidates
) -> tuple[tf.Tensor, ...]:
    """Encode a batch of padded images at once: the targets of :func:`encode_image`, stacked.

    For ``dataset.batch(b, drop_remainder=True).map(...)``: one call per batch shares the
    per-call costs of ``tf.data`` and of the validation (the same :func:`check_boxes` rules and
    messages, naming the image) over the batch; the assignment is :func:`encode_batch`'s.

    Args:
        boxes: ``(b, n, 4)`` float ``x, y, w, h`` normalised to the input image, ``b`` static;
            rows with ``w <= 0`` are padding. With ``ignore_against="image"``, ``n <= max_boxes``.
        classes: ``(b, n)`` integer class ids in ``[0, C)``.
    Returns:
        Per scale, ``(b, ...)`` ``y_true`` in ``cfg``'s layout.
    """
    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    batch, per_image = boxes.shape[0], boxes.shape[1]
    if batch is None:
        raise ValueError(
            "kyolo.encode: encoding a batch needs a static batch size: "
            "Dataset.batch(b, drop_remainder=True) before the map"
        )
    if cfg.ignore_against == "image" and per_image is not None and per_image > cfg.max_boxes:
        raise ValueError(f"kyolo.encode: {per_image} box rows per image, more than max_boxes")
    valid = check_boxes(boxes, classes, cfg)  # (b, n)
    image = tf.repeat(tf.range(batch), tf.shape(boxes)[1])
    # encode_batch drops rows with w <= 0: padding rows (and NaN ones, rejected above) are zeroed.
    rows = tf.where(tf.reshape(valid, [-1, 1]), tf.reshape(boxes, [-1, 4]), 0.0)
    targets = encode_batch(image, rows, tf.reshape(classes, [-1]), batch, cfg, candidates)
    if cfg.ignore_against == "scale":
        return targets
    width = target_width(cfg)
    box_rows = tf.reshape(box_list(rows, tf.reshape(valid, [-1]), width), [batch, -1, width])
    box_rows = tf.pad(box_rows, [[0, 0], [0, cfg.max_boxes - tf.shape(box_rows)[1]], [0, 0]])
    return tuple(
        tf.concat([tf.reshape(target, [batch, -1, width]), box_rows], axis=1) for target in targets
    )


def _scales(cfg: YoloConfig) -> range:
    return range(cfg.num_scales)


def _image_ranks(
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
