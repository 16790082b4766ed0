"""Image geometry shared by training, export and prediction: the letterbox, forward and back.

Boxes are ``(n, 4)`` float32 ``(x_min, y_min, x_max, y_max)`` in pixels of the image they belong
to, with continuous coordinates: pixel ``(row i, col j)`` covers ``[j, j + 1) x [i, i + 1)``.
Geometry is resampled with one exact affine map, ``x_out = s * x_in + t`` on both axes
(``tf.raw_ops.ScaleAndTranslate``, the op behind ``tf.image.resize(..., antialias=True)``), and the
same ``s, t`` move the boxes, so boxes and pixels never drift apart through rounding of sizes.
Canvas area not covered by the image is grey (:data:`PAD_VALUE`).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

PAD_VALUE = 0.5
"""Grey level (in [0, 1]) of letterbox bars and of canvas uncovered by jitter, as keras-yolo3."""


def letterbox_ratio(height: float, width: float, size: Sequence[int]) -> float:
    """The letterbox's resize factor ``min(H / h, W / w)`` of an ``h x w`` image into ``size``."""
    return min(size[0] / height, size[1] / width)


def letterbox(
    image: tf.Tensor, boxes: tf.Tensor, size: Sequence[int]
) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, tf.Tensor, tf.Tensor]]:
    """Fit ``image`` into a ``size`` canvas keeping its aspect ratio, centred on grey bars.

    ``s = min(H / h, W / w)``; ``pad_y = floor((H - round(h s)) / 2)``, ``pad_x`` likewise; a point
    moves as ``x' = s x + pad_x``, ``y' = s y + pad_y``.

    Args:
        image: ``(h, w, 3)`` uint8 (or float in [0, 1]).
        boxes: ``(n, 4)`` xyxy in image pixels.
        size: ``(H, W)`` canvas size.

    Returns:
        ``(canvas, boxes, (ratio, pad_y, pad_x))``: ``(H, W, 3)`` float32 in [0, 1], ``(n, 4)``
        float32 xyxy in canvas pixels, and float32 scalars for :func:`unletterbox_boxes`.
    """
    out_h, out_w = (int(v) for v in size)
    image = tf.image.convert_image_dtype(image, tf.float32)
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w = shape[0], shape[1]
    ratio = tf.minimum(out_h / h, out_w / w)
    # Pads come from the rounded size so they are whole pixels and never negative; the image and
    # the boxes still use the exact ``ratio``.
    pad_y = tf.floor((out_h - tf.round(h * ratio)) / 2)
    pad_x = tf.floor((out_w - tf.round(w * ratio)) / 2)
    canvas = resample(image, (out_h, out_w), ratio, pad_y, pad_x)
    boxes = affine_boxes(boxes, ratio, pad_y, pad_x)
    return canvas, clip_boxes(boxes, out_h, out_w), (ratio, pad_y, pad_x)


def unletterbox_boxes(
    boxes: tf.Tensor, ratio: tf.Tensor, pad_y: tf.Tensor, pad_x: tf.Tensor
) -> tf.Tensor:
    """Inverse of :func:`letterbox` on boxes: ``x = (x' - pad_x) / s``, ``y = (y' - pad_y) / s``.

    Args:
        boxes: ``(..., 4)`` xyxy in canvas pixels.
        ratio, pad_y, pad_x: the letterbox parameters (scalars, or shaped to broadcast against
            ``boxes[..., 0]``, e.g. ``(batch, 1)``).

    Returns:
        ``(..., 4)`` float32 xyxy in original image pixels.
    """
    boxes = tf.cast(boxes, tf.float32)
    ratio = tf.cast(ratio, tf.float32)[..., None]
    pad_y = tf.cast(pad_y, tf.float32)
    pad_x = tf.cast(pad_x, tf.float32)
    shift = tf.stack([pad_x, pad_y, pad_x, pad_y], axis=-1)
    return (boxes - shift) / ratio


def resample(
    image: tf.Tensor,
    size: tuple[int | tf.Tensor, int | tf.Tensor],
    factor: tf.Tensor,
    t_y: tf.Tensor,
    t_x: tf.Tensor,
) -> tf.Tensor:
    """``(h, w, 3)`` float → ``size`` canvas with ``out(s y + t_y, s x + t_x) = image(y, x)``.

    Bilinear (triangle kernel) with antialiasing when shrinking. ScaleAndTranslate writes 0 where
    no input pixel reaches and renormalises partial kernels at the image border, so resampling
    ``image - PAD_VALUE`` and adding it back gives grey outside and no grey halo inside.
    ``size`` may hold int32 tensors: with ``t`` shifted by a whole number of pixels ``o``, the
    output is the window at ``o`` of the larger output, bit for bit (the sample positions
    ``(x + 0.5 - t) / s`` are then the same floats).
    """
    out = tf.raw_ops.ScaleAndTranslate(
        images=image[None] - PAD_VALUE,
        size=tf.stack([tf.cast(v, tf.int32) for v in size]),
        scale=tf.stack([factor, factor]),
        translation=tf.stack([t_y, t_x]),
        kernel_type="triangle",
        antialias=True,
    )
    # Rounding in the renormalised weights can step a hair outside [0, 1].
    out = tf.clip_by_value(out[0] + PAD_VALUE, 0.0, 1.0)
    return tf.ensure_shape(out, [v if isinstance(v, int) else None for v in size] + [3])


def affine_boxes(boxes: tf.Tensor, factor: tf.Tensor, t_y: tf.Tensor, t_x: tf.Tensor) -> tf.Tensor:
    """``(n, 4)`` xyxy boxes under :func:`resample`'s map ``x' = s x + t_x``, ``y' = s y + t_y``."""
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    return boxes * factor + tf.stack([t_x, t_y, t_x, t_y])


def clip_boxes(boxes: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """``(n, 4)`` xyxy boxes clipped to a ``height x width`` canvas."""
    upper = tf.constant([width, height, width, height], tf.float32)
    return tf.minimum(tf.maximum(boxes, 0.0), upper)


def big_enough(boxes: tf.Tensor, min_size: float) -> tf.Tensor:
    """``(n,)`` bool: the ``(n, 4)`` xyxy box is at least ``min_size`` wide and high."""
    return (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
