"""tf.data input pipeline: decode, letterbox, augment, then encode or pad, and batch.

Every function on a single example is made of TensorFlow ops, so it runs inside
``tf.data.Dataset.map`` (graph mode) as well as eagerly. Boxes are ``(n, 4)`` float32 ``xyxy``
pixels; the letterbox and every geometric augmentation are exact affine maps of pixels and boxes
together (:mod:`kyolo.geometry`).

Random augmentation uses stateless ops seeded per example from
``tf.data.Dataset.random(seed, rerandomize_each_iteration=True)``: the same ``seed`` gives the same
stream of epochs, and each epoch draws new augmentations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.data.annotations import Annotation, AnnotationError
from kyolo.data.augment import Augmentation
from kyolo.data.mix import random_example
from kyolo.geometry import letterbox

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Encoded PNG / JPEG / BMP / GIF bytes → ``(h, w, 3)`` uint8.

    Grey images are repeated to 3 channels, alpha is dropped, 16-bit PNG is scaled to 8 bits
    (high byte), and an animated GIF gives its first frame.
    """
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def make_dataset(
    annotations: Sequence[Annotation],
    cfg: YoloConfig,
    *,
    batch_size: int,
    training: bool,
    seed: int = 0,
    augment: bool | Augmentation = True,
    encode: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[Any, Any]] | None = None,
    cache: bool = False,
    input_context: tf.distribute.InputContext | None = None,
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
        ratio, pad_y, pad_x  (B,) float32 letterbox parameters
                   (:func:`kyolo.geometry.unletterbox_boxes`);
                   they describe the letterbox only, not the training augmentation.

    The last batch may be smaller. Element order and content depend only on ``seed``
    (``options.deterministic`` is set).

    With ``input_context`` (``strategy.distribute_datasets_from_function``), this is the shard
    of worker ``input_pipeline_id`` of ``num_input_pipelines``: every worker draws the same
    seeded order and per-example augmentation seeds, and keeps every ``num_input_pipelines``-th
    example of it (:func:`shard_order`), so the workers see different images, one epoch covers
    the dataset once, and each global batch holds the images a single process would batch.

    Args:
        annotations: from a reader.
        cfg: uses ``input_size`` and ``max_boxes``.
        batch_size: examples per batch; with ``input_context``, the global batch, which is
            split evenly over the replicas.
        training: shuffle and augment.
        seed: seed of the shuffle and of the augmentation stream.
        augment: True for :class:`Augmentation()` defaults, an :class:`Augmentation`, or False.
        encode: optional target encoder.
        cache: read, decode and letterbox every image once, here, and keep the canvases in
            memory (``len(annotations) · H · W · 3`` float32): every epoch, mosaic tile and mixup
            partner then reads a canvas instead of a file (:func:`_cached`). The elements are
            the same, bit for bit.
        input_context: the worker's ``tf.distribute.InputContext``, or None for all the data.

    Raises:
        ValueError: no annotations, or (without ``encode``) an image with more than
            ``cfg.max_boxes`` boxes (named).
        AnnotationError: with ``cache``, an image that does not decode or whose size differs
            from its annotation (named; without ``cache`` the iterator raises, unnamed).
    """

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

    if cache:
        read = _cached(read, annotations)

    def load(index: tf.Tensor, seed_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        image, boxes, classes, (ratio, pad_y, pad_x) = read(index)
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
            "ratio": ratio,
            "pad_y": pad_y,
            "pad_x": pad_x,
        }

    ds = tf.data.Dataset.range(len(annotations))
    if training:
        ds = ds.shuffle(len(annotations), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip(ds, seeds)
    if input_context is not None:
        ds = shard_order(ds, len(annotations), input_context)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
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


def shard_order(
    ds: tf.data.Dataset, size: int, input_context: tf.distribute.InputContext
) -> tf.data.Dataset:
    """Worker ``input_pipeline_id``'s share of the ``size`` elements of ``ds``: every
    ``num_input_pipelines``-th element, from its own offset.

    When ``size`` is not a multiple of the worker count W, the epoch's first ``-size mod W``
    elements (< W) come twice, as PyTorch's ``DistributedSampler`` pads: every worker then runs
    the same number of steps, which the collective all-reduce needs (a worker short of a batch
    fails the step on every worker).
    """
    workers, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    padding = -size % workers
    if padding:
        # Repeated in place: a second pass over ``ds`` (for padding at the end) would reshuffle.
        ds = ds.enumerate().flat_map(
            lambda i, element: tf.data.Dataset.from_tensors(element).repeat(
                1 + tf.cast(i < padding, tf.int64)
            )
        )
    return ds.shard(workers, index)


def _cached(
    read: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]],
    annotations: Sequence[Annotation],
) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]]:
    """``read`` of every index, computed now in a parallel ``tf.data`` pass, then looked up.

    The lookup slices tensors held in memory: the canvases ``(N, H, W, 3)`` float32, the boxes
    and classes of all images concatenated, and the letterbox parameters ``(N, 3)``.
    """

    def item(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        image, boxes, classes, params = read(index)
        return image, boxes, classes, tf.stack(params)

    ds = tf.data.Dataset.range(len(annotations))
    ds = ds.map(item, num_parallel_calls=AUTOTUNE, deterministic=True)
    try:
        items = list(ds.as_numpy_iterator())
    except tf.errors.InvalidArgumentError:
        check_images(annotations)  # raises, naming the file, for a decoding or size error
        raise
    canvases, boxes, classes, params = (
        tf.constant(np.stack([it[0] for it in items])),
        tf.constant(np.concatenate([it[1] for it in items]).reshape(-1, 4)),
        tf.constant(np.concatenate([it[2] for it in items])),
        tf.constant(np.stack([it[3] for it in items])),
    )
    offsets = tf.constant(np.cumsum([0] + [len(it[1]) for it in items]), tf.int64)

    def lookup(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]:
        start, end = offsets[index], offsets[index + 1]
        return (
            canvases[index],
            boxes[start:end],
            classes[start:end],
            tuple(tf.unstack(params[index])),
        )

    return lookup


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
