"""tf.data input pipeline: decode, letterbox, augment, then encode or pad, and batch.

Every function on a single example is made of TensorFlow ops, so it runs inside
``tf.data.Dataset.map`` (graph mode) as well as eagerly. Boxes are ``(n, 4)`` float32
``(x_min, y_min, x_max, y_max)`` in pixels of the image they belong to, with continuous
coordinates: pixel ``(row i, col j)`` covers ``[j, j + 1) x [i, i + 1)``.

Geometry is resampled with one exact affine map per step, ``x_out = s * x_in + t`` on both axes
(``tf.raw_ops.ScaleAndTranslate``, the op behind ``tf.image.resize(..., antialias=True)``), and the
same ``s, t`` move the boxes, so boxes and pixels never drift apart through rounding of sizes.
Canvas area not covered by the image is grey (:data:`PAD_VALUE`).

Random augmentation uses stateless ops seeded per example from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``: the same ``seed`` gives the same
stream of epochs, and each epoch draws new augmentations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.data.annotations import Annotation, AnnotationError

AUTOTUNE = tf.data.AUTOTUNE
PAD_VALUE = 0.5
"""Grey level (in [0, 1]) of letterbox bars and of canvas uncovered by jitter, as keras-yolo3."""


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation settings; every box moves with its pixels.

    Attributes:
        flip_prob: probability of a horizontal flip.
        scale: zoom about the canvas centre drawn from ``[1 - scale, 1 + scale]``.
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
    scale: float = 0.25
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
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale must be in [0, 1), got {self.scale}")
        for name in ("translate", "min_box_size", "hue", "saturation", "value"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Encoded PNG / JPEG / BMP / GIF bytes → ``(h, w, 3)`` uint8.

    Grey images are repeated to 3 channels, alpha is dropped, 16-bit PNG is scaled to 8 bits
    (high byte), and an animated GIF gives its first frame.
    """
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


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
        ``(canvas, boxes, (scale, pad_y, pad_x))``: ``(H, W, 3)`` float32 in [0, 1], ``(n, 4)``
        float32 xyxy in canvas pixels, and float32 scalars for :func:`unletterbox_boxes`.
    """
    out_h, out_w = (int(v) for v in size)
    image = tf.image.convert_image_dtype(image, tf.float32)
    shape = tf.cast(tf.shape(image), tf.float32)
    h, w = shape[0], shape[1]
    scale = tf.minimum(out_h / h, out_w / w)
    # Pads come from the rounded size so they are whole pixels and never negative; the image and
    # the boxes still use the exact ``scale``.
    pad_y = tf.floor((out_h - tf.round(h * scale)) / 2)
    pad_x = tf.floor((out_w - tf.round(w * scale)) / 2)
    canvas = _resample(image, (out_h, out_w), scale, pad_y, pad_x)
    boxes = _affine_boxes(boxes, scale, pad_y, pad_x)
    return canvas, _clip_boxes(boxes, out_h, out_w), (scale, pad_y, pad_x)


def unletterbox_boxes(
    boxes: tf.Tensor, scale: tf.Tensor, pad_y: tf.Tensor, pad_x: tf.Tensor
) -> tf.Tensor:
    """Inverse of :func:`letterbox` on boxes: ``x = (x' - pad_x) / s``, ``y = (y' - pad_y) / s``.

    Args:
        boxes: ``(..., 4)`` xyxy in canvas pixels.
        scale, pad_y, pad_x: the letterbox parameters (scalars, or shaped to broadcast against
            ``boxes[..., 0]``, e.g. ``(batch, 1)``).

    Returns:
        ``(..., 4)`` float32 xyxy in original image pixels.
    """
    boxes = tf.cast(boxes, tf.float32)
    scale = tf.cast(scale, tf.float32)[..., None]
    pad_y = tf.cast(pad_y, tf.float32)
    pad_x = tf.cast(pad_x, tf.float32)
    shift = tf.stack([pad_x, pad_y, pad_x, pad_y], axis=-1)
    return (boxes - shift) / scale


def flip_horizontal(image: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror left-right: ``x' = W - x`` (so ``x_min' = W - x_max``)."""
    width = tf.cast(tf.shape(image)[1], tf.float32)
    x_min, y_min, x_max, y_max = tf.unstack(tf.cast(boxes, tf.float32), num=4, axis=-1)
    flipped = tf.stack([width - x_max, y_min, width - x_min, y_max], axis=-1)
    return tf.reverse(image, axis=[1]), flipped


def scale_translate(
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
    image = _resample(image, (height, width), zoom, t_y, t_x)
    boxes = _clip_boxes(_affine_boxes(boxes, zoom, t_y, t_x), height, width)
    keep = _big_enough(boxes, min_box_size)
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
    image, boxes, classes = scale_translate(
        image,
        boxes,
        classes,
        1.0 + config.scale * zoom,
        config.translate * height * shift_y,
        config.translate * width * shift_x,
        min_box_size=config.min_box_size,
    )
    hue, sat, val = tf.unstack(tf.random.stateless_uniform([3], seeds[1], minval=-1.0, maxval=1.0))
    image = hsv_jitter(
        image, config.hue * hue, 1.0 + config.saturation * sat, 1.0 + config.value * val
    )
    return image, boxes, classes


def make_dataset(
    annotations: Sequence[Annotation],
    cfg: YoloConfig,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augment: bool | Augmentation = True,
    encode: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[Any, Any]] | None = None,
) -> tf.data.Dataset:
    """Batched, prefetched ``tf.data.Dataset`` over ``annotations``.

    Per example: ``tf.io.read_file`` → :func:`decode_image` → :func:`letterbox` to
    ``cfg.input_size``; when ``training``: :func:`kyolo.data.mix.random_example` (mosaic,
    :func:`random_augment`, mixup; unless ``augment`` is False) and a seeded shuffle of the whole
    list each epoch. Mosaic and mixup read their partner images inside the same ``map``, so an
    epoch still has one example per annotation. Then either ``encode(image, boxes, classes)``
    (``(H, W, 3)`` float32, ``(n, 4)`` float32 xyxy input pixels, ``(n,)`` int32) giving the
    ``(x, y)`` pair that is batched, or, without ``encode``, a dict batched as::

        image      (B, H, W, 3) float32 in [0, 1]
        boxes      (B, max_boxes, 4) float32 xyxy input pixels, zero rows after num_boxes
        classes    (B, max_boxes) int32, -1 after num_boxes
        num_boxes  (B,) int32
        index      (B,) int64 position in ``annotations``
        scale, pad_y, pad_x  (B,) float32 letterbox parameters (:func:`unletterbox_boxes`);
                   they describe the letterbox only, not the training augmentation.

    The last batch may be smaller. Element order and content depend only on ``seed``
    (``options.deterministic`` is set).

    Args:
        annotations: from a reader.
        cfg: uses ``input_size`` and ``max_boxes``.
        batch_size: examples per batch.
        training: shuffle and augment.
        seed: seed of the shuffle and of the augmentation stream.
        augment: True for :class:`Augmentation()` defaults, an :class:`Augmentation`, or False.
        encode: optional target encoder.

    Raises:
        ValueError: no annotations, or (without ``encode``) an image with more than
            ``cfg.max_boxes`` boxes (named).
    """
    # Imported here because kyolo.data.mix imports this module's resampling helpers.
    from kyolo.data.mix import random_example

    if not annotations:
        raise ValueError("make_dataset needs at least one annotation")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if encode is None:
        check_box_counts(annotations, cfg.max_boxes, hint=" (or pass an encoder)")
    counts = np.array([len(a.boxes) for a in annotations], np.int64)
    aug_config = None
    if training and augment is not False:
        aug_config = augment if isinstance(augment, Augmentation) else Augmentation()

    paths = tf.constant([a.image_path for a in annotations])
    sizes = tf.constant([[a.height, a.width] for a in annotations], tf.int32)
    offsets = tf.constant(np.concatenate([[0], np.cumsum(counts)]), tf.int64)
    all_boxes = tf.constant(np.concatenate([a.boxes for a in annotations]).reshape(-1, 4))
    all_classes = tf.constant(np.concatenate([a.classes for a in annotations]).astype(np.int32))
    out_h, out_w = cfg.input_size

    def read(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]:
        image = decode_image(tf.io.read_file(paths[index]))
        decoded = tf.shape(image)[:2]
        tf.debugging.Assert(
            tf.reduce_all(decoded == sizes[index]),
            [
                "decoded image size (h, w)",
                decoded,
                "differs from its annotation",
                sizes[index],
                paths[index],
            ],
        )
        boxes = all_boxes[offsets[index] : offsets[index + 1]]
        classes = all_classes[offsets[index] : offsets[index + 1]]
        image, boxes, params = letterbox(image, boxes, (out_h, out_w))
        return image, boxes, classes, params

    def load(index: tf.Tensor, seed_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        image, boxes, classes, (scale, pad_y, pad_x) = read(index)
        if aug_config is not None:
            image, boxes, classes = random_example(
                (image, boxes, classes),
                lambda other: read(other)[:3],
                seed_pair,
                len(annotations),
                aug_config,
                cfg.max_boxes,
            )
        return {
            "image": image,
            "boxes": boxes,
            "classes": classes,
            "index": index,
            "scale": scale,
            "pad_y": pad_y,
            "pad_x": pad_x,
        }

    ds = tf.data.Dataset.range(len(annotations))
    if training:
        ds = ds.shuffle(len(annotations), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip(ds, seeds)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    if encode is not None:
        ds = ds.map(
            lambda ex: encode(ex["image"], ex["boxes"], ex["classes"]),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    else:
        ds = ds.map(
            lambda ex: _pad(ex, cfg.max_boxes), num_parallel_calls=AUTOTUNE, deterministic=True
        )
    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(AUTOTUNE)


def check_box_counts(annotations: Sequence[Annotation], max_boxes: int, hint: str = "") -> None:
    """Raise ``ValueError`` naming the image with the most boxes if it has more than ``max_boxes``.

    The target encoder enforces the same limit inside ``tf.data``, where it cannot name the file;
    call this first to fail early with the path. Augmentation only ever removes boxes, and mosaic
    / mixup are skipped where they would exceed the limit.
    """
    counts = [len(a.boxes) for a in annotations]
    worst = int(np.argmax(counts)) if counts else 0
    if counts and counts[worst] > max_boxes:
        raise ValueError(
            f"{annotations[worst].image_path} has {counts[worst]} boxes, more than "
            f"cfg.max_boxes={max_boxes}; raise max_boxes{hint}"
        )


def check_images(annotations: Sequence[Annotation]) -> None:
    """Decode every image as :func:`make_dataset` does; raise for the first that fails.

    A truncated or corrupt file passes the readers (they read headers only) and then fails inside
    ``tf.data`` with an error that cannot name the file. This full decoding pass names it; it costs
    one epoch of decoding, so run it up front on small datasets, or after a pipeline error.

    Raises:
        AnnotationError: naming the image file and the decoder's message, or the decoded size when
            it differs from the annotation's.
    """
    for ann in annotations:
        try:
            image = decode_image(tf.io.read_file(ann.image_path))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            raise AnnotationError(f"{ann.image_path}: cannot decode the image: {e.message}") from e
        height, width = image.shape[:2]
        if (height, width) != (ann.height, ann.width):
            raise AnnotationError(
                f"{ann.image_path}: decoded size {width}x{height} differs from its annotation's "
                f"{ann.width}x{ann.height}"
            )


def _pad(example: dict[str, tf.Tensor], max_boxes: int) -> dict[str, tf.Tensor]:
    num = tf.shape(example["boxes"])[0]
    boxes = tf.pad(example["boxes"], [[0, max_boxes - num], [0, 0]])
    classes = tf.pad(example["classes"], [[0, max_boxes - num]], constant_values=-1)
    return {
        **example,
        "boxes": tf.ensure_shape(boxes, [max_boxes, 4]),
        "classes": tf.ensure_shape(classes, [max_boxes]),
        "num_boxes": num,
    }


def _resample(
    image: tf.Tensor, size: tuple[int, int], scale: tf.Tensor, t_y: tf.Tensor, t_x: tf.Tensor
) -> tf.Tensor:
    """``(h, w, 3)`` float → ``size`` canvas with ``out(s y + t_y, s x + t_x) = image(y, x)``.

    Bilinear (triangle kernel) with antialiasing when shrinking. ScaleAndTranslate writes 0 where
    no input pixel reaches and renormalises partial kernels at the image border, so resampling
    ``image - PAD_VALUE`` and adding it back gives grey outside and no grey halo inside.
    """
    out = tf.raw_ops.ScaleAndTranslate(
        images=image[None] - PAD_VALUE,
        size=tf.constant(size, tf.int32),
        scale=tf.stack([scale, scale]),
        translation=tf.stack([t_y, t_x]),
        kernel_type="triangle",
        antialias=True,
    )
    # Rounding in the renormalised weights can step a hair outside [0, 1].
    out = tf.clip_by_value(out[0] + PAD_VALUE, 0.0, 1.0)
    return tf.ensure_shape(out, [size[0], size[1], 3])


def _affine_boxes(boxes: tf.Tensor, scale: tf.Tensor, t_y: tf.Tensor, t_x: tf.Tensor) -> tf.Tensor:
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    return boxes * scale + tf.stack([t_x, t_y, t_x, t_y])


def _clip_boxes(boxes: tf.Tensor, height: int, width: int) -> tf.Tensor:
    upper = tf.constant([width, height, width, height], tf.float32)
    return tf.minimum(tf.maximum(boxes, 0.0), upper)


def _big_enough(boxes: tf.Tensor, min_size: float) -> tf.Tensor:
    """``(n,)`` bool: the ``(n, 4)`` xyxy box is at least ``min_size`` wide and high."""
    return (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
