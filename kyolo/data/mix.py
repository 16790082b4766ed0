"""Mosaic and MixUp: training examples made of several images, boxes exactly where pixels go.

Both work on letterboxed canvases (``(H, W, 3)`` float32 in [0, 1], boxes ``(n, 4)`` xyxy canvas
pixels, see :mod:`kyolo.data.pipeline`) and keep the canvas size, so batches keep fixed shapes.

Mosaic (Bochkovskiy et al. 2020, YOLOv4 §3.3; YOLOv5 ``load_mosaic``). YOLOv5 pastes four images
around a centre drawn in ``[0.5, 1.5] s`` of a ``2s`` canvas, then its random affine shrinks the
result back to ``s``. Here the same picture is made at the output size directly: tile ``k`` (a whole
letterboxed canvas) is halved and placed with one corner on the integer centre ``(c_y, c_x)``,
drawn in ``[H/4, 3H/4] x [W/4, 3W/4]``::

    x' = x / 2 + t_x,   t_x = c_x - W/2 (left tiles) or c_x (right tiles)
    y' = y / 2 + t_y,   t_y = c_y - H/2 (top tiles)  or c_y (bottom tiles)

with the resampling of :func:`~kyolo.geometry.letterbox` (one exact affine map, pixels and
boxes moved by the same numbers). Each tile owns its quadrant: ``[0, c_x) x [0, c_y)`` for the top
left, and so on. Its pixels are kept there only, its boxes are clipped to it and those then less
than ``min_box_size`` pixels wide or high are removed (the policy of
:func:`~kyolo.data.augment.zoom_shift`). The centre is a whole pixel so the quadrant edges are
pixel edges and the clipped boxes are exactly the kept pixels. Canvas a tile does not reach is grey.

MixUp (Zhang et al. 2018; YOLOv5 ``mixup``): ``image = r a + (1 - r) b`` with ``r ~ Beta(32, 32)``;
the boxes and classes are the union of both, unchanged.

Capacity policy: the targets hold at most ``cfg.max_boxes`` boxes per image. A mosaic or a mixup
whose boxes would exceed that is not applied: the example passes unmixed (with all its boxes).
Boxes are never dropped to make room, because a visible object whose box is dropped would be
trained as background. On data where four images often hold more than ``max_boxes`` boxes, raise
``max_boxes`` or mosaic is mostly skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from kyolo.data.augment import Augmentation, random_augment
from kyolo.geometry import affine_boxes, big_enough, resample

MIXUP_BETA = 32.0
"""α = β of the Beta distribution of MixUp's ratio (YOLOv5 ``np.random.beta(32.0, 32.0)``)."""
TILE_SCALE = 0.5
"""Each mosaic tile is its canvas at half size (YOLOv5's 2s mosaic shrunk back to s)."""

Example = tuple[tf.Tensor, tf.Tensor, tf.Tensor]
"""``(image (H, W, 3) float32, boxes (n, 4) float32 xyxy canvas pixels, classes (n,) int32)``."""


def mosaic_offsets(
    centre_y: tf.Tensor, centre_x: tf.Tensor, height: int, width: int
) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """``(t_y, t_x)`` of the four tiles in the order top-left, top-right, bottom-left, bottom-right.

    A tile point moves as ``(y, x) → (y / 2 + t_y, x / 2 + t_x)``; the half-size tile then has one
    corner on the centre.
    """
    top, left = centre_y - TILE_SCALE * height, centre_x - TILE_SCALE * width
    return [(top, left), (top, centre_x), (centre_y, left), (centre_y, centre_x)]


def mosaic(
    tiles: Sequence[Example],
    centre_y: tf.Tensor | int,
    centre_x: tf.Tensor | int,
    *,
    min_box_size: float = 2.0,
) -> Example:
    """Four canvases → one mosaic canvas of the same size around ``(centre_y, centre_x)``.

    Args:
        tiles: four ``(image, boxes, classes)`` of ``(H, W, 3)`` float32 canvases with static
            shapes, ``(n_k, 4)`` xyxy canvas pixels and ``(n_k,)`` classes, in the order
            top-left, top-right, bottom-left, bottom-right.
        centre_y, centre_x: whole-pixel centre, in ``[0, H]`` and ``[0, W]``.
        min_box_size: clipped boxes narrower or lower than this many pixels are removed.

    Returns:
        ``(image (H, W, 3), boxes (m, 4), classes (m,))``, ``m <= Σ n_k``, boxes in tile order.
    """
    if len(tiles) != 4:
        raise ValueError(f"mosaic takes 4 tiles, got {len(tiles)}")
    height, width = tiles[0][0].shape[0], tiles[0][0].shape[1]
    centre_y = tf.cast(centre_y, tf.float32)
    centre_x = tf.cast(centre_x, tf.float32)
    # Quadrant k is [x_lo, x_hi) x [y_lo, y_hi): tile k is resampled into that window only (its
    # whole-pixel origin keeps the pixels those of the full-canvas resampling, bit for bit).
    x_edges = [(0.0, centre_x), (centre_x, float(width))]
    y_edges = [(0.0, centre_y), (centre_y, float(height))]
    quadrants, boxes, classes = [], [], []
    for k, ((tile, tile_boxes, tile_classes), (t_y, t_x)) in enumerate(
        zip(tiles, mosaic_offsets(centre_y, centre_x, height, width), strict=True)
    ):
        (x_lo, x_hi), (y_lo, y_hi) = x_edges[k % 2], y_edges[k // 2]
        rows_k, cols_k = tf.cast(y_hi - y_lo, tf.int32), tf.cast(x_hi - x_lo, tf.int32)
        # ScaleAndTranslate needs a non-empty output: an empty quadrant is a 1-pixel one cut off.
        window = (tf.maximum(rows_k, 1), tf.maximum(cols_k, 1))
        moved = resample(tile, window, tf.constant(TILE_SCALE), t_y - y_lo, t_x - x_lo)
        quadrants.append(moved[:rows_k, :cols_k])
        moved_boxes = affine_boxes(tile_boxes, TILE_SCALE, t_y, t_x)
        lower = tf.stack([x_lo, y_lo, x_lo, y_lo])
        upper = tf.stack([x_hi, y_hi, x_hi, y_hi])
        moved_boxes = tf.minimum(tf.maximum(moved_boxes, lower), upper)
        boxes.append(moved_boxes)
        classes.append(tf.cast(tile_classes, tf.int32))
    rows = [tf.concat(quadrants[:2], axis=1), tf.concat(quadrants[2:], axis=1)]
    image = tf.ensure_shape(tf.concat(rows, axis=0), [height, width, 3])
    boxes, classes = tf.concat(boxes, axis=0), tf.concat(classes, axis=0)
    keep = big_enough(boxes, min_box_size)
    return image, tf.boolean_mask(boxes, keep), tf.boolean_mask(classes, keep)


def mixup(a: Example, b: Example, ratio: tf.Tensor | float) -> Example:
    """``image = ratio · a + (1 − ratio) · b``; boxes, classes: ``a``'s then ``b``'s, unchanged.

    Args:
        a, b: ``(image (H, W, 3) float32, boxes (n, 4), classes (n,))`` on same-size canvases.
        ratio: weight of ``a`` in [0, 1].
    """
    ratio = tf.cast(ratio, tf.float32)
    image = ratio * a[0] + (1.0 - ratio) * b[0]
    boxes = tf.concat([tf.cast(a[1], tf.float32), tf.cast(b[1], tf.float32)], axis=0)
    classes = tf.concat([tf.cast(a[2], tf.int32), tf.cast(b[2], tf.int32)], axis=0)
    return image, boxes, classes


def sample_mixup_ratio(seed: tf.Tensor, alpha: float = MIXUP_BETA) -> tf.Tensor:
    """``r ~ Beta(alpha, alpha)`` from a stateless ``(2,)`` seed: ``X / (X + Y)``, X, Y ~ Γ(α)."""
    x, y = tf.unstack(tf.random.stateless_gamma([2], seed, alpha=alpha))
    return x / (x + y)


def random_example(
    example: Example,
    read: Callable[[tf.Tensor], Example],
    seed: tf.Tensor,
    num_examples: int,
    config: Augmentation,
    max_boxes: int,
) -> Example:
    """The training recipe on one example: maybe mosaic, :func:`random_augment`, maybe mixup.

    With probability ``config.mosaic_prob`` the example is the top-left tile of a mosaic with three
    images drawn uniformly (with replacement) from the dataset; then the flip, zoom/shift and HSV
    of :func:`random_augment`; then, with probability ``config.mixup_prob``, it is mixed with
    another example drawn and augmented the same way (which may itself be a mosaic), as YOLOv5
    mixes two mosaics. Mixes that would exceed ``max_boxes`` are skipped (module docstring). With
    both probabilities 0 this is ``random_augment(*example, seed, config)``.

    Args:
        example: the letterboxed example ``(image, boxes, classes)``.
        read: ``index → letterboxed (image, boxes, classes)`` of any example of the dataset.
        seed: ``(2,)`` stateless seed; everything drawn here derives from it.
        num_examples: partners are drawn from ``range(num_examples)``.
        config: probabilities and augmentation settings.
        max_boxes: the targets' capacity.
    """
    seed = tf.cast(seed, tf.int64)
    if config.mixup_prob == 0:
        return _random_view(example, read, seed, num_examples, config, max_boxes)
    view_seed, draw_seed, partner_seed = _split(seed, 3)
    view = _random_view(example, read, view_seed, num_examples, config, max_boxes)
    draw, partner, ratio_seed = _draws(draw_seed, 1, num_examples)

    def mix() -> Example:
        other = _random_view(read(partner[0]), read, partner_seed, num_examples, config, max_boxes)
        return _within_capacity(mixup(view, other, sample_mixup_ratio(ratio_seed)), view, max_boxes)

    return _maybe(draw < config.mixup_prob, mix, view)


def _random_view(
    example: Example,
    read: Callable[[tf.Tensor], Example],
    seed: tf.Tensor,
    num_examples: int,
    config: Augmentation,
    max_boxes: int,
) -> Example:
    """Maybe a mosaic with ``example`` top-left, then :func:`random_augment` seeded by ``seed``."""
    if config.mosaic_prob > 0:
        mosaic_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        draw, partners, centre_seed = _draws(mosaic_seed, 3, num_examples)
        height, width = example[0].shape[0], example[0].shape[1]

        def tile() -> Example:
            # A whole pixel uniform in [size // 4, 3 size // 4] on each axis.
            low = tf.constant([height // 4, width // 4], tf.float32)
            count = tf.constant([3 * height // 4 + 1, 3 * width // 4 + 1], tf.float32) - low
            centre = low + tf.floor(tf.random.stateless_uniform([2], centre_seed) * count)
            tiles = [example, *(read(partners[k]) for k in range(3))]
            mixed = mosaic(tiles, centre[0], centre[1], min_box_size=config.min_box_size)
            return _within_capacity(mixed, example, max_boxes)

        example = _maybe(draw < config.mosaic_prob, tile, example)
    return random_augment(*example, seed, config)


def _draws(
    seed: tf.Tensor, partners: int, num_examples: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(u ~ U[0, 1), partners indices ~ U{0..n-1}, a seed for more)`` from one seed."""
    draw_seed, index_seed, more = _split(seed, 3)
    draw = tf.random.stateless_uniform([], draw_seed)
    indices = tf.random.stateless_uniform(
        [partners], index_seed, minval=0, maxval=num_examples, dtype=tf.int64
    )
    return draw, indices, more


def _split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=num))


def _maybe(condition: tf.Tensor, apply: Callable[[], Example], example: Example) -> Example:
    """``apply()`` when ``condition``, else ``example``; only the taken branch reads images."""
    image, boxes, classes = example
    return tf.cond(
        condition,
        apply,
        lambda: (image, tf.cast(boxes, tf.float32), tf.cast(classes, tf.int32)),
    )


def _within_capacity(mixed: Example, fallback: Example, max_boxes: int) -> Example:
    """``mixed`` if it has at most ``max_boxes`` boxes, else ``fallback`` (the capacity policy)."""
    return _maybe(tf.shape(mixed[1])[0] <= max_boxes, lambda: mixed, fallback)
