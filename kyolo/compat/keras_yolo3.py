"""Drop-in front-end with qqwweee/keras-yolo3's signatures (``yolo3/model.py``).

Thin adapters over :mod:`kyolo.encode` and :class:`kyolo.losses.YoloLoss`; the only math here is
keras-yolo3's data layout (pixel ``xyxy`` boxes, box centres floored to whole pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss

_LAYOUTS = {
    9: (((6, 7, 8), (3, 4, 5), (0, 1, 2)), (32, 16, 8)),
    6: (((3, 4, 5), (1, 2, 3)), (32, 16)),
}


def keras_yolo3_config(
    anchors: np.ndarray, num_classes: int, input_shape: Sequence[int], max_boxes: int = 100
) -> YoloConfig:
    """The :class:`YoloConfig` keras-yolo3 implies: masks and strides from the anchor count."""
    anchors = np.asarray(anchors, np.float32).reshape(-1, 2)
    if len(anchors) not in _LAYOUTS:
        raise ValueError(f"keras-yolo3 uses 9 or 6 anchors, got {len(anchors)}")
    masks, strides = _LAYOUTS[len(anchors)]
    return YoloConfig(
        num_classes=int(num_classes),
        input_size=(int(input_shape[0]), int(input_shape[1])),
        anchors=tuple(map(tuple, anchors.tolist())),
        masks=masks,
        strides=strides,
        max_boxes=max_boxes,
    )


def preprocess_true_boxes(
    true_boxes: np.ndarray, input_shape: Sequence[int], anchors: np.ndarray, num_classes: int
) -> list[np.ndarray]:
    """keras-yolo3 target encoding.

    Args:
        true_boxes: ``(m, T, 5)`` absolute pixels ``x_min, y_min, x_max, y_max, class``; rows
            with ``x_max <= x_min`` are padding.
        input_shape: ``(h, w)``, multiples of 32.
        anchors: ``(9, 2)`` or ``(6, 2)`` pixel ``(w, h)``.
    Returns:
        Per scale (strides 32, 16, 8) a float32 ``(m, h//stride, w//stride, 3, 5 + num_classes)``.

    keras-yolo3 enumerates the *valid* boxes but reads rows by that enumeration index, so a
    padding row *between* real boxes shifts its rows; kyolo reads each box's own row. The two
    agree whenever padding rows are trailing, as keras-yolo3's own data loader produces them.
    """
    true_boxes = np.asarray(true_boxes, np.float32)
    if true_boxes.ndim != 3 or true_boxes.shape[-1] != 5:
        hint = ": one image? Pass true_boxes[None]" if true_boxes.ndim == 2 else ""
        raise ValueError(
            "preprocess_true_boxes: true_boxes must be (m, T, 5) x_min, y_min, x_max, y_max, "
            f"class rows for m images, got shape {true_boxes.shape}{hint}"
        )
    height, width = int(input_shape[0]), int(input_shape[1])
    cfg = keras_yolo3_config(anchors, num_classes, (height, width), max(1, true_boxes.shape[1]))
    size = np.array([width, height], np.float32)
    # keras-yolo3 floors the centre to whole pixels: (x_min + x_max) // 2.
    xy = (true_boxes[..., 0:2] + true_boxes[..., 2:4]) // 2
    wh = true_boxes[..., 2:4] - true_boxes[..., 0:2]
    boxes = np.concatenate([xy / size, wh / size], axis=-1).astype(np.float32)
    classes = true_boxes[..., 4].astype(np.int32)
    per_image = [encode_targets(b, c, cfg) for b, c in zip(boxes, classes, strict=True)]
    return [np.stack([t[s].numpy() for t in per_image]) for s in range(cfg.num_scales)]


def yolo_loss(
    args: Sequence[tf.Tensor],
    anchors: np.ndarray,
    num_classes: int,
    ignore_thresh: float = 0.5,
    max_boxes: int = 100,
) -> tf.Tensor:
    """keras-yolo3's total loss: ``args = [*yolo_outputs, *y_true]`` → scalar.

    ``yolo_outputs`` are raw ``(m, gh, gw, 3 * (5 + num_classes))`` for strides 32/16/8 (static
    grid sizes), ``y_true`` as from :func:`preprocess_true_boxes`. ``max_boxes`` (kyolo's only
    addition) bounds the positives one scale of one image may hold; more is an error.
    """
    num_scales = len(args) // 2
    outputs, targets = args[:num_scales], args[num_scales:]
    grid_h, grid_w = outputs[0].shape[1:3]
    cfg = keras_yolo3_config(anchors, num_classes, (grid_h * 32, grid_w * 32), max_boxes)
    cfg = cfg.with_loss(ignore_thresh=ignore_thresh)
    return tf.add_n(
        [YoloLoss(cfg, scale)(targets[scale], outputs[scale]) for scale in range(num_scales)]
    )
