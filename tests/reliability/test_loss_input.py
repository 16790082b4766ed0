"""YoloLoss against bad input: shapes that do not fit the config fail at trace time with expected
versus got, and non-finite inputs make the image's loss NaN instead of being hidden."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.losses import YoloLoss
from tests.helpers import head_shapes, nano_config, stack_targets

ONE_BOX = (np.array([[0.4, 0.5, 0.5, 0.6]], np.float32), np.array([1], np.int32))
LAYOUTS = ["yolov3", "yolov4"]  # y_true layouts: ignore_against "scale" and "image"


def targets(cfg, batch=2):
    return stack_targets(cfg, [ONE_BOX] * batch)


def logits(cfg, batch=2, value=0.0):
    return [np.full(shape, value, np.float32) for shape in head_shapes(cfg, batch)]


@pytest.mark.parametrize("name", LAYOUTS)
def test_y_pred_with_the_wrong_channel_count(name):
    cfg = nano_config(name)
    y_pred = logits(cfg)[0][..., :-3]  # a head built for 2 classes
    with pytest.raises(ValueError, match=r"y_pred has 21 channels, expected .* = 24"):
        YoloLoss(cfg, 0)(targets(cfg)[0], y_pred)


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_output_of_another_scale(name):
    cfg = nano_config(name)
    with pytest.raises(ValueError, match=r"y_pred grid \(8, 8\) is not the \(4, 4\) grid"):
        YoloLoss(cfg, 0)(targets(cfg)[0], logits(cfg)[1])
    with pytest.raises(ValueError, match=r"y_true shape .* is not .* \(grid \(4, 4\) at stride 16"):
        YoloLoss(cfg, 0)(targets(cfg)[1], logits(cfg)[0])


@pytest.mark.parametrize("name", LAYOUTS)
def test_targets_encoded_for_another_class_count(name):
    cfg = nano_config(name)
    other = nano_config(name, 5)
    with pytest.raises(ValueError, match=r"y_true shape .*num_classes=3"):
        YoloLoss(cfg, 0)(targets(other)[0], logits(cfg)[0])


def test_y_pred_of_the_wrong_rank():
    cfg = nano_config()
    with pytest.raises(ValueError, match=r"y_pred must be \(batch, grid_h, grid_w, channels\)"):
        YoloLoss(cfg, 0)(targets(cfg)[0], logits(cfg)[0][0])


def test_losses_in_the_wrong_order_fail_in_fit_before_training():
    cfg = nano_config()
    inputs = keras.Input((64, 64, 3))
    depth = cfg.anchors_per_scale * (5 + cfg.num_classes)
    outputs = [keras.layers.Conv2D(depth, 1, strides=s)(inputs) for s in cfg.strides]
    model = keras.Model(inputs, outputs)
    model.compile("sgd", loss=[YoloLoss(cfg, 1), YoloLoss(cfg, 0)])
    before = [w.copy() for w in model.get_weights()]
    y_true = targets(cfg)
    with pytest.raises(ValueError, match=r"YoloLoss\(scale=1\): y_pred grid \(4, 4\)"):
        model.fit(np.zeros((2, 64, 64, 3), np.float32), tuple(y_true), epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def nan_slot(cfg, y_true, positive):
    """``(scale, row, col, anchor)`` of a positive (or negative) slot of image 0."""
    for scale, target in enumerate(y_true):
        gh, gw = cfg.grid_size(scale)
        flat = target.numpy()[0, : gh * gw * cfg.anchors_per_scale].reshape(gh, gw, -1)
        objectness = flat.reshape(gh, gw, cfg.anchors_per_scale, -1)[..., 4]
        found = np.argwhere(objectness > 0 if positive else objectness == 0)
        if len(found):
            return (scale, *found[0])
    raise AssertionError("no such slot")


@pytest.mark.parametrize("positive", [True, False], ids=["positive slot", "negative slot"])
@pytest.mark.parametrize("channel", [0, 2, 4, 5], ids=["x", "w", "objectness", "class"])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_nan_logit_makes_that_image_loss_nan(name, channel, positive):
    # Before the guard, IoU-based presets returned a finite loss for NaN x/y logits: the IoU of
    # a NaN box is 0 by the safe division.
    cfg = nano_config(name)
    y_true = targets(cfg)
    scale, row, col, anchor = nan_slot(cfg, y_true, positive)
    y_pred = logits(cfg)[scale].reshape(2, *cfg.grid_size(scale), cfg.anchors_per_scale, -1)
    y_pred[0, row, col, anchor, channel] = np.nan
    per_image = YoloLoss(cfg, scale).call(y_true[scale], y_pred.reshape(2, *y_pred.shape[1:3], -1))
    assert np.isnan(per_image[0]) and np.isfinite(per_image[1])


@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("name", LAYOUTS)
def test_a_non_finite_target_makes_that_image_loss_nan(name, value):
    cfg = nano_config(name)
    y_true = targets(cfg)[0].numpy()
    y_true[1].reshape(-1)[-1] = value  # the encoder never writes this: a hand-made target
    per_image = YoloLoss(cfg, 0).call(tf.constant(y_true), logits(cfg)[0])
    assert np.isfinite(per_image[0]) and np.isnan(per_image[1])


def twelve_boxes_on_one_scale():
    """12 small boxes (the stride-8 scale's anchor (6, 8) px) in 12 cells of its 8x8 grid."""
    cells = np.array([(row, col) for row in range(0, 8, 2) for col in range(0, 6, 2)])
    centres = (cells[:, ::-1] + 0.5) / 8
    sizes = np.tile([6 / 64, 8 / 64], (12, 1))
    return np.concatenate([centres, sizes], axis=1).astype(np.float32), np.zeros(12, np.int32)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("name", LAYOUTS)
def test_targets_with_more_positives_than_the_loss_allows_never_truncate_under_xla(name, layout):
    # Targets encoded with max_boxes=16 (12 boxes on one scale), the loss built with max_boxes=8.
    # Before: eager raised, but under jit_compile=True (XLA drops asserts) the dense "scale"
    # layout's loss silently dropped 4 positives.
    cfg = nano_config(name, 3, 64, f"target_layout={layout}")
    y_true = stack_targets(cfg.replace(max_boxes=16), [twelve_boxes_on_one_scale()] * 2)
    scale = 1  # stride 8
    loss = YoloLoss(cfg, scale)
    y_pred = logits(cfg)[scale]
    compiled = tf.function(loss.call, jit_compile=True)
    if (layout, cfg.ignore_against) != ("dense", "scale"):
        # The target's shape holds max_boxes: a ValueError when tracing, XLA or not.
        with pytest.raises(ValueError, match=r"y_true shape .* max_boxes=8"):
            compiled(y_true[scale], y_pred)
        return
    assert np.sum(y_true[scale].numpy()[..., 4] > 0) == 24  # 12 per image: best anchor, one slot
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 8 positive slots"):
        loss.call(y_true[scale], y_pred)
    per_image = compiled(y_true[scale], y_pred).numpy()
    assert per_image.shape == (2,) and np.all(np.isnan(per_image)), per_image


def test_targets_within_the_bound_give_the_same_loss_under_xla():
    cfg = nano_config()
    boxes, classes = twelve_boxes_on_one_scale()
    y_true = stack_targets(cfg.replace(max_boxes=16), [(boxes[:8], classes[:8])] * 2)
    y_pred = logits(cfg, value=0.3)[1]
    loss = YoloLoss(cfg, 1)
    want = loss.call(y_true[1], y_pred).numpy()
    got = tf.function(loss.call, jit_compile=True)(y_true[1], y_pred).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def yolov5_inputs(batch=2):
    from kyolo.compat.yolov5 import yolov5_arguments

    cfg = nano_config("yolov5")
    p = [np.zeros((batch, 3, *cfg.grid_size(s), 8), np.float32) for s in range(cfg.num_scales)]
    return p, yolov5_arguments(cfg)


@pytest.mark.parametrize("shape", [(1, 5), (2, 7), (6,), (1, 1, 6)])
def test_yolov5_compute_loss_names_targets_of_another_shape(shape):
    # Before: (n, 5) and (6,) rows were silently reshaped to (·, 6) rows of other boxes.
    from kyolo.compat.yolov5 import compute_loss

    p, arguments = yolov5_inputs()
    targets = np.full(shape, 0.5, np.float32)
    message = f"targets must be (n, 6) rows [image, class, x, y, w, h], got shape {shape}"
    with pytest.raises(ValueError, match=re.escape(message)):
        compute_loss(p, targets, *arguments)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("column", [2, 3, 4], ids=["x", "y", "w"])
def test_yolov5_compute_loss_is_nan_for_a_non_finite_target(column, jit):
    # Before: a NaN x or y gave a finite loss (the row fell out of the assignment); YOLOv5's
    # ComputeLoss gives NaN (its IoU of a NaN box). A NaN w, which YOLOv5's ratio filter drops,
    # is made NaN too: no non-finite input gives a finite loss.
    from kyolo.compat.yolov5 import compute_loss

    p, arguments = yolov5_inputs()
    targets = np.array([[0, 1, 0.5, 0.5, 0.2, 0.3], [1, 2, 0.3, 0.6, 0.1, 0.2]], np.float32)

    def loss_of(rows):
        return compute_loss(p, rows, *arguments)

    run = tf.function(loss_of, jit_compile=True) if jit else loss_of
    loss, items = run(targets)
    assert np.isfinite(float(loss)) and float(loss) > 0
    targets[1, column] = np.nan
    loss, items = run(targets)
    assert np.isnan(float(loss)) and all(np.isnan(float(item)) for item in items)
