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
            valid & ~tf.reduce_all(boxes[:, 2:] <= 1, axis=-1),
            valid & ~whole_numbers(classes),
            valid & ~((classes >= 0) & (classes < cfg.num_classes)),
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


def whole_numbers(values: tf.Tensor) -> tf.Tensor:
    """Elementwise: ``values`` is a whole number (False for NaN, True for any integer dtype)."""
    if not values.dtype.is_floating:
        return tf.ones_like(values, tf.bool)
    return tf.equal(values, tf.floor(values))


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
