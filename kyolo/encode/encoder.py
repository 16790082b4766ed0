"""Target encoding by ``cfg.assigner``: one image in ``tf.data``, or a whole batch of rows."""

from __future__ import annotations

import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.encode import targets
from kyolo.encode.best_anchor import anchor_iou_candidates
from kyolo.encode.ratio import ratio_candidates

CANDIDATES: dict[str, targets.Candidates] = {
    "best_anchor": anchor_iou_candidates,
    "best_anchor_per_scale": anchor_iou_candidates,
    "multi_anchor": anchor_iou_candidates,
    "ratio": ratio_candidates,
}


def encode_targets(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, ...]:
    """One image's boxes → per-scale ``y_true`` in ``cfg.target_layout`` (dense or sparse, see
    :mod:`kyolo.encode.targets`).

    Pure TF with fixed output shapes, for ``tf.data.Dataset.map``. Boxes are validated by
    :func:`kyolo.encode.targets.check_boxes`.

    Args:
        boxes: ``(n, 4)`` float ``x, y, w, h`` normalised to the input image; ``w <= 0`` rows
            are padding.
        classes: ``(n,)`` integer class ids in ``[0, C)``.
    """
    return targets.encode_image(boxes, classes, cfg, CANDIDATES[cfg.assigner])


def encode_images(boxes: tf.Tensor, classes: tf.Tensor, cfg: YoloConfig) -> tuple[tf.Tensor, ...]:
    """A batch of padded images' boxes → the batched per-scale ``y_true``, equal to stacking
    :func:`encode_targets` of each image; for ``Dataset.batch(b, drop_remainder=True).map``.

    One call per batch instead of per image (:func:`kyolo.encode.targets.encode_images`):
    2.3× the images per second of :func:`encode_targets` for YOLOv3 with sparse targets and 10
    boxes per image; no faster for dense targets or 100 boxes (BENCHMARKS.md).

    Args:
        boxes: ``(b, n, 4)`` float ``x, y, w, h``, ``b`` static; ``w <= 0`` rows are padding.
        classes: ``(b, n)`` integer class ids in ``[0, C)``.
    """
    return targets.encode_images(boxes, classes, cfg, CANDIDATES[cfg.assigner])


def encode_targets_batch(
    image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, batch: int, cfg: YoloConfig
) -> tuple[tf.Tensor, ...]:
    """A batch's boxes as rows (image index, box, class) → per scale ``(b, gh, gw, A, 5 + C)``
    grids, or ``(b, R, 6 + C)`` rows with ``cfg.target_layout="sparse"`` (no box list).

    XLA-compatible (see :func:`kyolo.encode.targets.encode_batch`); used by
    :mod:`kyolo.compat.yolov5`.
    """
    return targets.encode_batch(image, boxes, classes, batch, cfg, CANDIDATES[cfg.assigner])
