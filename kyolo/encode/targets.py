"""The ``y_true`` layout shared by every assigner and by the loss, and the checks on its input.

Per scale ``s`` with grid ``(gh, gw)`` and ``A`` anchors, one image's target is

* ``ignore_against="scale"``: ``(gh, gw, A, 5 + C)`` — per slot ``x, y, w, h`` (box centre and
  size normalised to the input image), objectness (1 at assigned slots) and a multi-hot class
  vector;
* ``ignore_against="image"``: ``(gh * gw * A + max_boxes, 5 + C)`` — the same grid flattened,
  followed by the image's box list padded to ``max_boxes`` rows: ``x, y, w, h, valid, 0, ...``.
  The loss needs every box of the image for the ignore mask and a Keras loss only sees its own
  output's ``y_true``, so the boxes travel inside it.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from kyolo.config import YoloConfig


def check_boxes(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """Validate one image's boxes; return the mask of real (non-padding) boxes.

    Rows with ``w <= 0`` are padding (keras-yolo3's convention) and are ignored. Every other row
    must be finite with ``h > 0``, a centre inside the image and a class in ``[0, C)``; the image
    may carry at most ``cfg.max_boxes`` real boxes. A violation raises ``InvalidArgumentError``
    naming the rule, the first offending box index and its value — also inside ``Dataset.map``.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image.
        classes: ``(n,)`` integer class ids.
    Returns:
        ``(n,)`` bool, True for real boxes.
    """
    boxes = tf.convert_to_tensor(boxes)
    classes = tf.cast(classes, tf.int32)
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    valid = finite & (boxes[:, 2] > 0)
    rules = [
        (~finite, "box coordinates must be finite (NaN/Inf found)"),
        (valid & ~(boxes[:, 3] > 0), "box height must be > 0"),
        (
            valid & ((boxes[:, 0] < 0) | (boxes[:, 0] > 1) | (boxes[:, 1] < 0) | (boxes[:, 1] > 1)),
            "box centre must lie inside the image (normalised x, y in [0, 1])",
        ),
        (
            valid & ((classes < 0) | (classes >= cfg.num_classes)),
            f"class id must be in [0, {cfg.num_classes})",
        ),
    ]
    # One zero row appended so the "first offender" lookup is defined for images without boxes.
    padded_boxes = tf.pad(boxes, [[0, 1], [0, 0]])
    padded_classes = tf.pad(classes, [[0, 1]])
    checks = []
    for bad, rule in rules:
        first = tf.argmax(tf.pad(tf.cast(bad, tf.int32), [[0, 1]]), output_type=tf.int32)
        detail = tf.strings.format(
            "kyolo.encode: "
            + rule.replace("{", "{{").replace("}", "}}")
            + "; box index {}, xywh {}, class {}",
            (first, tf.gather(padded_boxes, first), tf.gather(padded_classes, first)),
        )
        checks.append(tf.debugging.Assert(~tf.reduce_any(bad), [detail]))
    count = tf.reduce_sum(tf.cast(valid, tf.int32))
    checks.append(
        tf.debugging.Assert(
            count <= cfg.max_boxes,
            [
                tf.strings.format(
                    f"kyolo.encode: image has {{}} boxes, more than max_boxes={cfg.max_boxes}",
                    count,
                )
            ],
        )
    )
    with tf.control_dependencies(checks):
        return tf.identity(valid)


def scatter_to_grid(
    slot: tf.Tensor,
    keep: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    num_slots: int,
    num_classes: int,
) -> tf.Tensor:
    """Write candidate targets into a flat grid; later candidates win shared slots.

    When several candidates land on one slot, the one with the largest index supplies ``xywh``
    and every candidate's class is set (keras-yolo3's numpy loop does exactly this). Scatter
    order in TF is unspecified, so the winner is picked explicitly, which keeps the result
    deterministic.

    Args:
        slot: ``(k,)`` int32 flat slot ``(gj * gw + gi) * A + a`` of each candidate.
        keep: ``(k,)`` bool, False for candidates that are not written.
        boxes: ``(k, 4)`` float ``xywh`` of each candidate's box.
        classes: ``(k,)`` int class of each candidate.
    Returns:
        ``(num_slots, 5 + num_classes)`` float32 grid.
    """
    order = tf.range(1, tf.shape(slot)[0] + 1, dtype=tf.int32)
    # Dropped candidates go to an extra row that is cut off at the end.
    index = tf.where(keep, tf.cast(slot, tf.int32), num_slots)[:, None]
    winner = tf.tensor_scatter_nd_max(
        tf.zeros([num_slots + 1], tf.int32), index, tf.where(keep, order, 0)
    )
    wins = keep & tf.equal(tf.gather_nd(winner, index), order)
    boxes = tf.cast(boxes, tf.float32)
    rows = tf.concat([boxes, tf.ones_like(boxes[:, :1])], axis=-1)
    rows = tf.where(wins[:, None], rows, 0.0)
    onehot = tf.one_hot(classes, num_classes, dtype=tf.float32) * tf.cast(keep, tf.float32)[:, None]
    box_part = tf.scatter_nd(index, rows, [num_slots + 1, 5])
    cls_part = tf.minimum(tf.scatter_nd(index, onehot, [num_slots + 1, num_classes]), 1.0)
    return tf.concat([box_part, cls_part], axis=-1)[:num_slots]


def pack_target(
    grid: tf.Tensor, boxes: tf.Tensor, valid: tf.Tensor, cfg: YoloConfig, scale: int
) -> tf.Tensor:
    """Shape one scale's flat grid ``(S, 5 + C)`` into the ``y_true`` layout of ``cfg``."""
    gh, gw = cfg.grid_size(scale)
    if cfg.ignore_against == "scale":
        return tf.reshape(grid, [gh, gw, cfg.anchors_per_scale, 5 + cfg.num_classes])
    keep = valid[:, None]
    rows = tf.concat(
        [tf.where(keep, tf.cast(boxes, tf.float32), 0.0), tf.cast(keep, tf.float32)], axis=-1
    )
    rows = tf.pad(rows, [[0, cfg.max_boxes - tf.shape(rows)[0]], [0, cfg.num_classes]])
    return tf.concat([grid, rows], axis=0)


def target_grid(y_true: tf.Tensor, cfg: YoloConfig) -> tf.Tensor:
    """The slot grid of a batch of one scale's ``y_true``: ``(b, S, 5 + C)``, ``S = gh*gw*A``."""
    y_true = tf.cast(y_true, tf.float32)
    if cfg.ignore_against == "image":
        return y_true[:, : tf.shape(y_true)[1] - cfg.max_boxes]
    return tf.reshape(y_true, [tf.shape(y_true)[0], -1, 5 + cfg.num_classes])


def target_boxes(y_true: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """The ground truths the ignore mask compares against, from a batch of one scale's ``y_true``.

    Returns:
        ``boxes (b, K, 4)`` xywh and ``valid (b, K)`` bool, ``K = max_boxes``. For ``"image"``
        they are the image's box list; for ``"scale"`` this grid's assigned slots, gathered into
        ``K`` rows: a scale holds at most one slot per box under the ``"best_anchor"`` assigners,
        and the encoder caps boxes at ``max_boxes``.
    """
    if cfg.ignore_against == "image":
        rows = tf.cast(y_true, tf.float32)[:, -cfg.max_boxes :, :5]
        return rows[..., :4], rows[..., 4] > 0
    grid = target_grid(y_true, cfg)
    positives = tf.reduce_max(tf.reduce_sum(tf.cast(grid[..., 4] > 0, tf.int32), axis=-1))
    # Effective eagerly and in graphs; XLA drops asserts, where the encoder's cap guards instead.
    tf.debugging.assert_less_equal(
        positives,
        cfg.max_boxes,
        message=f"kyolo.losses: a scale holds more positives than max_boxes={cfg.max_boxes}",
    )
    # Pad so that top_k has max_boxes candidates even on grids with fewer slots.
    objectness = tf.pad(grid[..., 4], [[0, 0], [0, cfg.max_boxes]])
    _, index = tf.math.top_k(objectness, k=cfg.max_boxes, sorted=False)
    picked = tf.gather(
        tf.pad(grid[..., :5], [[0, 0], [0, cfg.max_boxes], [0, 0]]), index, batch_dims=1
    )
    return picked[..., :4], picked[..., 4] > 0


Candidates = Callable[[tf.Tensor, YoloConfig, int], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]
"""An assigner: ``(boxes (n, 4), cfg, scale)`` → ``slot, keep, row``, each ``(k,)``.

Candidate ``i`` proposes box ``row[i]`` for flat slot ``slot[i] = (gj * gw + gi) * A + a`` of the
scale's grid (for ``cfg.input_size``) when ``keep[i]``; padding rows need not be dropped. Where
candidates share a slot the later one wins (:func:`scatter_to_grid`), so their order is part of
the assigner's definition.
"""


def encode_image(
    boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig, candidates: Candidates
) -> tuple[tf.Tensor, ...]:
    """Encode one image's boxes with an assigner: per scale, ``y_true`` in ``cfg``'s layout.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; rows with ``w <= 0``
            are padding (validated by :func:`check_boxes`).
        classes: ``(n,)`` integer class ids in ``[0, C)``.
    """
    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    valid = check_boxes(boxes, classes, cfg)
    targets = []
    for scale in range(cfg.num_scales):
        slot, keep, row = candidates(boxes, cfg, scale)
        grid = scatter_to_grid(
            slot,
            keep & tf.gather(valid, row),
            tf.gather(boxes, row),
            tf.gather(classes, row),
            cfg.cells(scale),
            cfg.num_classes,
        )
        targets.append(pack_target(grid, boxes, valid, cfg, scale))
    return tuple(targets)


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
        Per scale ``(b, gh, gw, A, 5 + C)`` float32 grids (the ``"scale"`` layout).
    """
    image = tf.cast(image, tf.int32)
    boxes = tf.cast(boxes, tf.float32)
    classes = tf.cast(classes, tf.int32)
    valid = (image >= 0) & (image < batch) & (boxes[:, 2] > 0)
    targets = []
    for scale in range(cfg.num_scales):
        slot, keep, row = candidates(boxes, cfg, scale)
        cells = cfg.cells(scale)
        grid = scatter_to_grid(
            slot + tf.gather(image, row) * cells,
            keep & tf.gather(valid, row),
            tf.gather(boxes, row),
            tf.gather(classes, row),
            batch * cells,
            cfg.num_classes,
        )
        gh, gw = cfg.grid_size(scale)
        targets.append(tf.reshape(grid, [batch, gh, gw, cfg.anchors_per_scale, -1]))
    return tuple(targets)
