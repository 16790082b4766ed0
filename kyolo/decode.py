"""Raw head outputs → boxes. Shared by the loss (box terms, ignore mask) and by post-processing.

The centre of slot ``(row, col, a)`` is ``xy = s·σ(t_xy) − (s − 1)/2`` cells from the cell's
corner (``s`` = ``cfg.xy_scale(scale)``: 1 for YOLOv3, Darknet's ``scale_x_y`` for YOLOv4, 2 for
YOLOv5's ``2σ − 0.5``), its size ``wh = anchor · exp(ρ)`` with ``ρ = log(wh / anchor)`` from
:func:`log_wh_ratio` (``e^t`` for ``decode="v3"``, ``(2σ(t))²`` for ``"v5"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from kyolo.config import YoloConfig

# exp(t) of a v3 size logit is capped at e^10 ≈ 22000 anchors: far beyond any real box, while
# products of such sizes (areas, enclosing diagonals) stay finite in float32 with finite gradients.
# Uncapped, a logit of 1e4 gives an infinite box and NaN gradients through the IoU losses.
MAX_LOG_WH = 10.0


def xy_offset(logits_xy: tf.Tensor, xy_scale: float) -> tf.Tensor:
    """Grid-sensitive centre ``s·σ(t) − (s − 1)/2`` in cells from the cell corner (elementwise).

    Bochkovskiy et al. 2020 (YOLOv4, "eliminate grid sensitivity"); ``s = 1`` is YOLOv3's σ(t)
    exactly (multiplying by 1 and subtracting 0 is exact in floating point).
    """
    return xy_scale * tf.sigmoid(logits_xy) - (xy_scale - 1.0) / 2.0


def log_wh_ratio(logits_wh: tf.Tensor, decode: str) -> tf.Tensor:
    """``log(wh / anchor)`` of the decoded size, elementwise.

    ``"v3"``: ``t``, capped at :data:`MAX_LOG_WH`. ``"v5"``: ``log (2σ(t))²``, i.e.
    ``2 (log 2 + log σ(t))``: at most ``2 log 2`` (4 anchors), finite for any logit.
    """
    if decode == "v3":
        return tf.minimum(logits_wh, MAX_LOG_WH)
    return 2.0 * (math.log(2.0) + tf.math.log_sigmoid(logits_wh))


def decode_cells(logits: tf.Tensor, cfg: YoloConfig, scale: int, anchor: tf.Tensor) -> tf.Tensor:
    """Boxes in grid-cell units, centres relative to their own cell's corner.

    Args:
        logits: ``(..., ≥4)`` float32 raw outputs of slots of ``scale`` (e.g. the positives
            gathered by the loss).
        anchor: ``(...)`` int32 anchor index (in the scale) of each row.
    Returns:
        ``(..., 4)``: ``x, y`` cells from the slot's cell corner, ``w, h`` in cells (input
        pixels / stride). The unit is the same on both axes, so IoU-family losses computed on
        these are those of pixel boxes (YOLOv5 computes its CIoU this way).
    """
    anchors_cells = tf.constant(cfg.scale_anchors(scale) / cfg.strides[scale])
    xy = xy_offset(logits[..., :2], cfg.xy_scale(scale))
    wh = tf.exp(log_wh_ratio(logits[..., 2:4], cfg.decode)) * tf.gather(anchors_cells, anchor)
    return tf.concat([xy, wh], axis=-1)


def slot_cell_anchor(
    slot: tf.Tensor, grid_w: int | tf.Tensor, anchors_per_scale: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cell and anchor of flat slots ``slot = (row · gw + col) · A + a`` of a scale.

    Args:
        slot: ``(...)`` int32 index into the ``(gh · gw · A)`` slots of a scale.
    Returns:
        ``cell (..., 2)`` float32 ``(column, row)``, ``anchor (...)`` int32.
    """
    cell = slot // anchors_per_scale
    column_row = tf.stack([cell % grid_w, cell // grid_w], axis=-1)
    return tf.cast(column_row, tf.float32), slot % anchors_per_scale


def grid_size_wh(shape: tf.Tensor) -> tf.Tensor:
    """``(2,)`` float32 ``(grid_w, grid_h)`` from a ``(b, gh, gw, ...)`` shape vector.

    Built with ``tf.stack``: a reversed slice (``[::-1]``) makes Grappler's layout optimiser fail
    on every step (a logged error, and the optimisation skipped).
    """
    return tf.cast(tf.stack([shape[2], shape[1]]), tf.float32)


def decode_xywh(y_pred: tf.Tensor, cfg: YoloConfig, scale: int) -> tf.Tensor:
    """Every slot of a raw head output as a box normalised to the input image.

    ``xy = (offset + cell) / grid``, ``wh = size in cells / grid``, with :func:`decode_cells`'s
    offset and size; the input image's size is taken as ``grid * stride``, so any input size the
    model accepts decodes correctly. Computed on the ``(b, S, 5 + C)`` view of the head: XLA:CPU
    emits the 5-D ``(b, gh, gw, A, ·)`` view's broadcasts as slow scalar loops.

    Args:
        y_pred: ``(b, gh, gw, A · (5 + C))`` (or ``(b, gh, gw, A, 5 + C)``) raw output of
            ``scale``, any float dtype.
    Returns:
        ``(b, S, 4)`` float32 ``x, y, w, h``, ``S = gh · gw · A`` slots in the order of the
        encoder's flat grid, ``slot = (row · gw + col) · A + a``.
    """
    shape = tf.shape(y_pred)
    flat = tf.reshape(tf.cast(y_pred, tf.float32), [shape[0], -1, 5 + cfg.num_classes])
    cell, anchor = slot_cell_anchor(tf.range(tf.shape(flat)[1]), shape[2], cfg.anchors_per_scale)
    grid_wh = grid_size_wh(shape)
    in_cells = decode_cells(flat, cfg, scale, anchor)
    return tf.concat([(in_cells[..., :2] + cell) / grid_wh, in_cells[..., 2:4] / grid_wh], axis=-1)


def check_head_channels(shapes: Sequence[Sequence[int | None]], cfg: YoloConfig) -> None:
    """Raise ``ValueError`` unless the heads fit ``cfg``: one per scale, ``A · (5 + C)`` channels.

    A config written for another class or anchor count would otherwise decode boxes from
    misaligned channels without an error whenever the reshape to ``5 + C`` happens to divide.
    Checks static shapes (when tracing, or a Keras model's ``outputs``): free at run time.

    Args:
        shapes: per output the ``(b, gh, gw, channels)`` shape; unknown dimensions pass.
    """
    if len(shapes) != cfg.num_scales:
        raise ValueError(
            f"the model has {len(shapes)} outputs, the config {cfg.num_scales} scales (strides "
            f"{cfg.strides}): was the config written for another model?"
        )
    count, classes = cfg.anchors_per_scale, cfg.num_classes
    expected = count * (5 + classes)
    for scale, shape in enumerate(shapes):
        channels = tuple(shape)[-1] if shape is not None and len(tuple(shape)) else None
        if channels is not None and channels != expected:
            raise ValueError(
                f"model output {scale} has {channels} channels, the config expects A·(5 + C) = "
                f"{count}·(5 + {classes}) = {expected} (anchors_per_scale={count}, "
                f"num_classes={classes}): was the config written for another model?"
            )
