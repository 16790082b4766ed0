"""Validation of the ground truth the encoders take: named errors, inside ``tf.data`` too."""

from __future__ import annotations

import tensorflow as tf

from kyolo.config import YoloConfig

# check_boxes' rules on a real box, in the order they are reported.
_RULES = (
    "box coordinates must be finite (NaN/Inf found)",
    "box height must be > 0",
    "box centre must lie inside the image (normalised x, y in [0, 1])",
    "box width and height must not exceed the image (normalised w, h <= 1)",
    "class id must be a whole number (float ids are not truncated)",
    "class id must be in [0, {num_classes})",
)

# (boxes, classes) shapes in words, by batched.
_SHAPES = {False: ("(n, 4)", "(n,)"), True: ("(b, n, 4)", "(b, n)")}


def check_box_shapes(
    boxes: tf.Tensor, classes: tf.Tensor, batched: bool, where: str = "kyolo.encode"
) -> None:
    """Raise ``ValueError`` naming the argument and the shapes unless the static shapes fit
    ``boxes (n, 4)`` and ``classes (n,)`` (batched: ``(b, n, 4)`` and ``(b, n)``).

    Checked when tracing, so free at run time; unknown dimensions pass (see
    :func:`checked_shapes`).

    Args:
        where: the caller, for the messages.
    """
    rank = 3 if batched else 2
    want, want_classes = _SHAPES[batched]
    got, got_classes = tf.TensorShape(boxes.shape), tf.TensorShape(classes.shape)
    if got.rank is not None and (got.rank != rank or got[-1] not in (None, 4)):
        hint = ""
        if got.rank == rank and got[-1] == 5:
            hint = (
                ": rows with a class column? boxes hold x, y, w, h, classes are their own argument"
            )
        elif got.rank == rank - 1 and got.num_elements() == 0:
            hint = f": an image without boxes is {want.replace('n', '0')}"
        raise ValueError(f"{where}: boxes must be {want} x, y, w, h, got shape {tuple(got)}{hint}")
    if got_classes.rank is not None and got_classes.rank != rank - 1:
        raise ValueError(
            f"{where}: classes must be {want_classes}, one id per box, got shape "
            f"{tuple(got_classes)}"
        )
    if got.rank is not None and not got[:-1].is_compatible_with(got_classes):
        raise ValueError(
            f"{where}: classes shape {tuple(got_classes)} does not match boxes shape "
            f"{tuple(got)}: one class id per box"
        )


def checked_shapes(
    boxes: tf.Tensor, classes: tf.Tensor, batched: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """``boxes`` and ``classes`` as tensors whose shapes :func:`check_box_shapes` checked.

    Dimensions unknown when tracing (``n`` in a ``tf.data`` map over images of any box count)
    are left to one assert, an ``InvalidArgumentError`` naming both shapes; none when the shapes
    are static.
    """
    boxes, classes = tf.convert_to_tensor(boxes), tf.convert_to_tensor(classes)
    check_box_shapes(boxes, classes, batched)
    if boxes.shape.is_fully_defined() and classes.shape.is_fully_defined():
        return boxes, classes
    rank = 3 if batched else 2
    if boxes.shape.rank is None:
        boxes = tf.ensure_shape(boxes, [None] * rank)
    if classes.shape.rank is None:
        classes = tf.ensure_shape(classes, [None] * (rank - 1))
    box_shape, class_shape = tf.shape(boxes), tf.shape(classes)
    fits = tf.reduce_all(tf.equal(box_shape[:-1], class_shape))
    if boxes.shape[-1] is None:
        fits &= tf.equal(box_shape[-1], 4)
    want, want_classes = _SHAPES[batched]
    check = tf.debugging.Assert(
        fits,
        [
            f"kyolo.encode: boxes must be {want} x, y, w, h and classes {want_classes}, one id "
            "per box; got boxes shape",
            box_shape,
            "classes shape",
            class_shape,
        ],
    )
    # Every op that combines boxes and classes (the first that could fail) waits for the check.
    with tf.control_dependencies([check]):
        return tf.ensure_shape(boxes, [*[None] * (rank - 1), 4]), classes


def check_row_shapes(image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor) -> None:
    """:func:`check_box_shapes` for :func:`kyolo.encode.encode_rows`, whose ``image (n,)`` names
    each row's image; static shapes only (it runs under XLA, which drops asserts)."""
    where = "kyolo.encode.encode_rows"
    check_box_shapes(boxes, classes, batched=False, where=where)
    got, got_classes = tf.TensorShape(image.shape), tf.TensorShape(classes.shape)
    if not got.is_compatible_with(got_classes):
        raise ValueError(
            f"{where}: image shape {tuple(got)} and classes shape {tuple(got_classes)} do not "
            "match: one image index and one class id per row"
        )


def check_boxes(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """Validate one image's boxes, or a batch of padded images'; return the real boxes' mask.

    Rows with ``w <= 0`` are padding (keras-yolo3's convention) and are ignored. Every other row
    must be finite with ``h > 0``, a centre inside the image, ``w, h <= 1`` (a box larger than
    the image is an error, not clipped: keras-yolo3's loss weight ``2 − w·h`` would turn
    negative) and a class in ``[0, C)``; an image
    may carry at most ``cfg.max_boxes`` real boxes. A violation raises ``InvalidArgumentError``
    naming the rule, the first offending box index (and its image, for a batch) and its value —
    also inside ``Dataset.map``. With several, the first rule of that list is reported.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image, or ``(b, n, 4)``.
        classes: ``(n,)`` (or ``(b, n)``) class ids, any integer or float dtype: they are checked
            in it, before the encoder casts them to int32 (which would wrap int64 ids and
            truncate float ones).
    Returns:
        ``(n,)`` (or ``(b, n)``) bool, True for real boxes.
    """
    boxes = tf.convert_to_tensor(boxes)
    classes = tf.convert_to_tensor(classes)
    batched = boxes.shape.rank == 3
    if batched:
        # (images, rows per image): a reshape to [-1, 0] would fail for (b, 0, 4) boxes.
        batch_shape = tf.shape(boxes)[:2]
        boxes, classes = tf.reshape(boxes, [-1, 4]), tf.reshape(classes, [-1])
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    valid = finite & (boxes[:, 2] > 0)
    centre = boxes[:, :2]
    fraction, outside = class_faults(classes, cfg.num_classes)
    broken = tf.stack(
        [
            ~finite,
            valid & ~(boxes[:, 3] > 0),
            valid & ~tf.reduce_all((centre >= 0) & (centre <= 1), axis=-1),
            valid & tf.reduce_any(boxes[:, 2:] > 1, axis=-1),
            tf.zeros_like(valid) if fraction is None else valid & fraction,
            valid & outside,
        ],
        axis=1,
    )  # (n, rules)
    # The messages are built for every image: a tf.cond that builds them only on failure costs
    # more (in tf.data, about as much as encoding a small image).
    check = tf.debugging.Assert(
        ~tf.reduce_any(broken),
        [_first_broken_rule(broken, boxes, classes, cfg, batch_shape[1] if batched else None)],
    )
    limit = f"more than max_boxes={cfg.max_boxes}"
    if batched:
        counts = tf.reduce_sum(tf.reshape(tf.cast(valid, tf.int32), batch_shape), axis=1)
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
        return tf.reshape(valid, batch_shape) if batched else tf.identity(valid)


def class_faults(classes: tf.Tensor, num_classes: int) -> tuple[tf.Tensor | None, tf.Tensor]:
    """Elementwise ``(fraction, outside)``: the id is not a whole number (None for an integer
    dtype: never), the id is outside ``[0, C)``.

    Compared in the ids' own dtype: an int32 cast would wrap int64 ids (2**32 + 1 → 1) and
    truncate float ones (1.7 → 1). NaN is a fraction (and outside).
    """
    if classes.dtype.is_integer:
        unsigned = tf.dtypes.as_dtype(f"uint{8 * classes.dtype.size}")
        return None, tf.cast(classes, unsigned) >= num_classes  # negative ids wrap
    return tf.not_equal(classes, tf.floor(classes)), ~((classes >= 0) & (classes < num_classes))


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
        # Rows exist when a rule is broken; the guard keeps images without rows defined.
        per_image = tf.maximum(per_image, 1)
        where = (first // per_image, first % per_image)
        value = tf.strings.format("; image {}, box index {}, xywh {}, class {}", (*where, *row))
    return tf.strings.join([tf.gather(rules, rule), value])
