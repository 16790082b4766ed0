"""Per-example training augmentation: flip, zoom and shift, HSV jitter; boxes move with pixels.

Every function takes a letterboxed canvas (``(H, W, 3)`` float32 in [0, 1], static shape) and its
boxes (``(n, 4)`` xyxy canvas pixels); geometry is one exact affine map of pixels and boxes
(:mod:`kyolo.geometry`). Random draws are stateless, from a per-example seed.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kyolo.geometry import affine_boxes, big_enough, clip_boxes, resample


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation settings; every box moves with its pixels.

    Attributes:
        flip_prob: probability of a horizontal flip.
        zoom: zoom about the canvas centre drawn from ``[1 - zoom, 1 + zoom]``.
        translate: shift drawn from ``[-translate, translate]`` times the canvas height / width.
        min_box_size: after the zoom and shift, boxes are clipped to the canvas, and a box less
            than this many pixels wide or high is removed. This is the augmentation's policy for
            objects pushed off the canvas, not a data error: nothing is logged.
        hue: hue shift, in turns, drawn from ``[-hue, hue]``.
        saturation: saturation gain drawn from ``[1 - saturation, 1 + saturation]``.
        value: brightness gain drawn from ``[1 - value, 1 + value]``.
        mosaic_prob: probability that an example is a mosaic of itself and three random others,
            before the flip, zoom/shift and HSV (:func:`kyolo.data.mix.mosaic`).
        mixup_prob: probability that an (augmented) example is mixed with another
            (:func:`kyolo.data.mix.mixup`). Mixes beyond ``cfg.max_boxes`` boxes are skipped,
            never truncated (:mod:`kyolo.data.mix`).
    """

    flip_prob: float = 0.5
    zoom: float = 0.25
    translate: float = 0.1
    min_box_size: float = 2.0
    hue: float = 0.015
    saturation: float = 0.7
    value: float = 0.4
    mosaic_prob: float = 0.0
    mixup_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip_prob", "mosaic_prob", "mixup_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.zoom < 1:
            raise ValueError(f"zoom must be in [0, 1), got {self.zoom}")
        for name in ("translate", "min_box_size", "hue", "saturation", "value"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def flip_horizontal(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror left-right: ``x' = W - x`` (so ``x_min' = W - x_max``)."""
    width = tf.cast(tf.shape(image)[1], tf.float32)
    x_min, y_min, x_max, y_max = tf.unstack(tf.cast(boxes, tf.float32), num=4, axis=-1)
    flipped = tf.stack([width - x_max, y_min, width - x_min, y_max], axis=-1)
    return tf.reverse(image, axis=[1]), flipped


def zoom_shift(
    image: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    zoom: tf.Tensor | float,
    shift_y: tf.Tensor | float,
    shift_x: tf.Tensor | float,
    *,
    min_box_size: float = 2.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Zoom by ``zoom`` about the canvas centre, then shift by ``(shift_y, shift_x)`` pixels.

    ``x' = zoom (x - W/2) + W/2 + shift_x`` (``y`` likewise); the canvas keeps its size. Boxes are
    clipped to the canvas; those then narrower or lower than ``min_box_size`` pixels are removed
    with their classes (documented augmentation policy, not logged).

    Args:
        image: ``(H, W, 3)`` float32 in [0, 1].
        boxes: ``(n, 4)`` xyxy canvas pixels; classes: ``(n,)``.

    Returns:
        ``(image, boxes (m, 4), classes (m,))`` with ``m <= n``.
    """
    height, width = image.shape[0], image.shape[1]
    zoom = tf.cast(zoom, tf.float32)
    t_y = (1.0 - zoom) * (height / 2) + tf.cast(shift_y, tf.float32)
    t_x = (1.0 - zoom) * (width / 2) + tf.cast(shift_x, tf.float32)
    image = resample(image, (height, width), zoom, t_y, t_x)
    boxes = clip_boxes(affine_boxes(boxes, zoom, t_y, t_x), height, width)
    keep = big_enough(boxes, min_box_size)
    return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)


def hsv_jitter(
    image: tf.Tensor,
    hue_shift: tf.Tensor | float,
    saturation_gain: tf.Tensor | float,
    value_gain: tf.Tensor | float,
) -> tf.Tensor:
    """``h' = (h + hue_shift) mod 1``, ``s' = min(s * saturation_gain, 1)``, ``v'`` likewise.

    Args:
        image: ``(H, W, 3)`` float32 RGB in [0, 1]. Boxes do not change.
    """
    hue, sat, val = tf.unstack(tf.image.rgb_to_hsv(image), num=3, axis=-1)
    hue = tf.math.floormod(hue + tf.cast(hue_shift, tf.float32), 1.0)
    sat = tf.clip_by_value(sat * tf.cast(saturation_gain, tf.float32), 0.0, 1.0)
    val = tf.clip_by_value(val * tf.cast(value_gain, tf.float32), 0.0, 1.0)
    return tf.image.hsv_to_rgb(tf.stack([hue, sat, val], axis=-1))


def random_augment(
    image: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    seed: tf.Tensor,
    config: Augmentation | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Random flip, zoom/shift and HSV jitter of one canvas, reproducible from ``seed``.

    Args:
        image: ``(H, W, 3)`` float32 in [0, 1] with a static shape (a letterboxed canvas).
        boxes: ``(n, 4)`` xyxy canvas pixels; classes: ``(n,)``.
        seed: ``(2,)`` int32/int64 stateless seed.
        config: settings; default :class:`Augmentation()`.
    """
    config = config or Augmentation()
    height, width = image.shape[0], image.shape[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    flip_draw, zoom, shift_y, shift_x = tf.unstack(
        tf.random.stateless_uniform([4], seeds[0], minval=-1.0, maxval=1.0)
    )
    image, boxes = tf.cond(
        (flip_draw + 1.0) / 2.0 < config.flip_prob,
        lambda: flip_horizontal(image, boxes),
        lambda: (image, tf.cast(boxes, tf.float32)),
    )
    image, boxes, classes = zoom_shift(
        image,
        boxes,
        classes,
        1.0 + config.zoom * zoom,
        config.translate * height * shift_y,
        config.translate * width * shift_x,
        min_box_size=config.min_box_size,
    )
    hue, sat, val = tf.unstack(tf.random.stateless_uniform([3], seeds[1], minval=-1.0, maxval=1.0))
    image = hsv_jitter(
        image, config.hue * hue, 1.0 + config.saturation * sat, 1.0 + config.value * val
    )
    return image, boxes, classes
