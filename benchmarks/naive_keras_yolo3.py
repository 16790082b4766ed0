"""Baseline: a naive TF2 graph port of qqwweee/keras-yolo3's ``yolo_loss`` (``yolo3/model.py``).

This is what one gets by replacing ``keras.backend`` calls with their TF2 equivalents and
nothing more: the ignore mask still walks the batch with ``tf.while_loop`` + ``TensorArray`` and
gathers each image's positives with ``tf.boolean_mask``, exactly as the reference does. The
boolean mask has a data-dependent shape, so this port runs eagerly and under ``tf.function``
but cannot be compiled with XLA (``jit_compile=True``).

It exists only as the speed baseline of ``benchmarks/loss_speed.py``; ``check_parity`` asserts
it agrees with ``kyolo.compat.keras_yolo3.yolo_loss`` before anything is timed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

ANCHOR_MASKS = {3: [[6, 7, 8], [3, 4, 5], [0, 1, 2]], 2: [[3, 4, 5], [1, 2, 3]]}


def yolo_head(
    feats: tf.Tensor, anchors: np.ndarray, num_classes: int, input_shape: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """keras-yolo3 ``yolo_head(..., calc_loss=True)``: ``grid, raw feats, box_xy, box_wh``."""
    num_anchors = len(anchors)
    anchors_tensor = tf.reshape(tf.constant(anchors, tf.float32), [1, 1, 1, num_anchors, 2])
    grid_shape = tf.shape(feats)[1:3]
    grid_y = tf.tile(tf.reshape(tf.range(grid_shape[0]), [-1, 1, 1, 1]), [1, grid_shape[1], 1, 1])
    grid_x = tf.tile(tf.reshape(tf.range(grid_shape[1]), [1, -1, 1, 1]), [grid_shape[0], 1, 1, 1])
    grid = tf.cast(tf.concat([grid_x, grid_y], axis=-1), feats.dtype)
    feats = tf.reshape(feats, [-1, grid_shape[0], grid_shape[1], num_anchors, num_classes + 5])
    box_xy = (tf.sigmoid(feats[..., :2]) + grid) / tf.cast(grid_shape[::-1], feats.dtype)
    box_wh = tf.exp(feats[..., 2:4]) * anchors_tensor / tf.cast(input_shape[::-1], feats.dtype)
    return grid, feats, box_xy, box_wh


def box_iou(b1: tf.Tensor, b2: tf.Tensor) -> tf.Tensor:
    """keras-yolo3 ``box_iou``: ``b1 (..., 4)`` xywh vs ``b2 (j, 4)`` xywh → ``(..., j)``."""
    b1 = tf.expand_dims(b1, -2)
    b1_xy, b1_wh = b1[..., :2], b1[..., 2:4]
    b1_mins, b1_maxes = b1_xy - b1_wh / 2.0, b1_xy + b1_wh / 2.0
    b2 = tf.expand_dims(b2, 0)
    b2_xy, b2_wh = b2[..., :2], b2[..., 2:4]
    b2_mins, b2_maxes = b2_xy - b2_wh / 2.0, b2_xy + b2_wh / 2.0
    intersect_wh = tf.maximum(tf.minimum(b1_maxes, b2_maxes) - tf.maximum(b1_mins, b2_mins), 0.0)
    intersect_area = intersect_wh[..., 0] * intersect_wh[..., 1]
    b1_area = b1_wh[..., 0] * b1_wh[..., 1]
    b2_area = b2_wh[..., 0] * b2_wh[..., 1]
    return intersect_area / (b1_area + b2_area - intersect_area)


def bce(target: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """``K.binary_crossentropy(target, logits, from_logits=True)``."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)


def yolo_loss(
    args: Sequence[tf.Tensor], anchors: np.ndarray, num_classes: int, ignore_thresh: float = 0.5
) -> tf.Tensor:
    """keras-yolo3 ``yolo_loss``: ``args = [*yolo_outputs, *y_true]`` → scalar total loss."""
    anchors = np.asarray(anchors, np.float32)
    num_layers = len(anchors) // 3
    yolo_outputs, y_true = args[:num_layers], args[num_layers:]
    anchor_mask = ANCHOR_MASKS[num_layers]
    input_shape = tf.cast(tf.shape(yolo_outputs[0])[1:3] * 32, y_true[0].dtype)
    grid_shapes = [
        tf.cast(tf.shape(yolo_outputs[i])[1:3], y_true[0].dtype) for i in range(num_layers)
    ]
    loss = 0.0
    m = tf.shape(yolo_outputs[0])[0]
    mf = tf.cast(m, yolo_outputs[0].dtype)

    for layer in range(num_layers):
        object_mask = y_true[layer][..., 4:5]
        true_class_probs = y_true[layer][..., 5:]
        grid, raw_pred, pred_xy, pred_wh = yolo_head(
            yolo_outputs[layer], anchors[anchor_mask[layer]], num_classes, input_shape
        )
        pred_box = tf.concat([pred_xy, pred_wh], axis=-1)

        raw_true_xy = y_true[layer][..., :2] * grid_shapes[layer][::-1] - grid
        raw_true_wh = tf.math.log(
            y_true[layer][..., 2:4] / anchors[anchor_mask[layer]] * input_shape[::-1]
        )
        object_mask_bool = tf.cast(object_mask, tf.bool)
        # K.switch: avoid log(0) = -inf at empty slots.
        raw_true_wh = tf.where(object_mask_bool, raw_true_wh, tf.zeros_like(raw_true_wh))
        box_loss_scale = 2 - y_true[layer][..., 2:3] * y_true[layer][..., 3:4]

        def loop_body(b, ignore_mask, layer=layer, object_mask_bool=object_mask_bool, pb=pred_box):
            true_box = tf.boolean_mask(y_true[layer][b, ..., 0:4], object_mask_bool[b, ..., 0])
            iou = box_iou(pb[b], true_box)
            best_iou = tf.reduce_max(iou, axis=-1)
            ignore_mask = ignore_mask.write(b, tf.cast(best_iou < ignore_thresh, true_box.dtype))
            return b + 1, ignore_mask

        ignore_mask = tf.TensorArray(y_true[0].dtype, size=1, dynamic_size=True)
        _, ignore_mask = tf.while_loop(lambda b, *_: b < m, loop_body, [0, ignore_mask])
        ignore_mask = tf.expand_dims(ignore_mask.stack(), -1)

        xy_loss = object_mask * box_loss_scale * bce(raw_true_xy, raw_pred[..., 0:2])
        wh_loss = object_mask * box_loss_scale * 0.5 * tf.square(raw_true_wh - raw_pred[..., 2:4])
        confidence_loss = (
            object_mask * bce(object_mask, raw_pred[..., 4:5])
            + (1 - object_mask) * bce(object_mask, raw_pred[..., 4:5]) * ignore_mask
        )
        class_loss = object_mask * bce(true_class_probs, raw_pred[..., 5:])

        loss += (
            tf.reduce_sum(xy_loss) / mf
            + tf.reduce_sum(wh_loss) / mf
            + tf.reduce_sum(confidence_loss) / mf
            + tf.reduce_sum(class_loss) / mf
        )
    return loss


def check_parity(
    outputs: Sequence[np.ndarray],
    y_true: Sequence[np.ndarray],
    anchors: np.ndarray,
    num_classes: int,
    max_boxes: int = 100,
    rel: float = 1e-4,
) -> tuple[float, float]:
    """Assert this port and ``kyolo.compat.keras_yolo3.yolo_loss`` agree; return both values."""
    from kyolo.compat import keras_yolo3

    args = [tf.constant(a) for a in [*outputs, *y_true]]
    naive = float(yolo_loss(args, anchors, num_classes))
    kyolo = float(keras_yolo3.yolo_loss(args, anchors, num_classes, 0.5, max_boxes))
    if not abs(naive - kyolo) <= rel * abs(kyolo):
        raise AssertionError(f"naive port {naive!r} != kyolo {kyolo!r} (rel {rel})")
    return naive, kyolo
