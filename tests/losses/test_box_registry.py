"""The box-loss registry: every entry scores a toy case by hand, and bad names/settings fail."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import YOLOV3
from kyolo.losses import YoloLoss
from kyolo.losses.box import BOX_LOSSES, get_box_loss
from tests.helpers import TOY


def one_box_case():
    """TOY's 2x2 grid, one box at (0.3, 0.25) of size 0.5 (cell (0, 0), the anchor's size)."""
    from kyolo.encode import encode_targets

    y_true = encode_targets(np.array([[0.3, 0.25, 0.5, 0.5]], np.float32), [0], TOY)[0][None]
    return y_true, np.zeros((1, 2, 2, 6), np.float32)


@pytest.mark.parametrize("name", sorted(BOX_LOSSES))
def test_each_registered_box_loss_reports_its_components(name):
    cfg = TOY.with_loss(box_loss=name)
    loss = YoloLoss(cfg, 0)
    y_true, logits = one_box_case()
    parts = loss.components(y_true, logits)
    assert tuple(parts) == (*BOX_LOSSES[name].components, "obj", "cls")
    assert all(np.all(np.isfinite(v.numpy())) for v in parts.values())


def test_box_terms_of_a_toy_case_by_hand():
    # All logits 0: the prediction is 0.5x0.5 cells... in cells: centre (0.5, 0.5) of cell (0, 0),
    # size 1x1 (the 32 px anchor at stride 32); the target is centre (0.6, 0.5), size 1x1.
    y_true, logits = one_box_case()

    def box_part(name, key="box"):
        return float(YoloLoss(TOY.with_loss(box_loss=name), 0).components(y_true, logits)[key][0])

    iou = 0.9 / 1.1  # overlap 0.9 x 1 of two unit squares, union 1.1
    enclose = 1.1  # the enclosing box is 1.1 x 1: GIoU's penalty (1.1 - 1.1) / 1.1 = 0
    assert box_part("iou") == pytest.approx(1 - iou, rel=1e-6)
    assert box_part("giou") == pytest.approx(1 - iou + (enclose - 1.1) / enclose, rel=1e-6)
    # DIoU: centre distance² 0.01 over the enclosing diagonal² 1.1² + 1².
    assert box_part("diou") == pytest.approx(1 - iou + 0.01 / (1.21 + 1), rel=1e-6)
    # CIoU adds α·v with v = 0 for equal aspect ratios.
    assert box_part("ciou") == pytest.approx(box_part("diou"), rel=1e-6)
    # MSE: (0.5 − 0.6)² for x, 0 for y and for log(w / anchor) = 0.
    assert box_part("mse", "xy") == pytest.approx(0.01, rel=1e-5)
    assert box_part("mse", "wh") == pytest.approx(0.0, abs=1e-12)
    # keras-yolo3: (2 − w·h) · BCE(0.6, 0) + BCE(0.5, 0) = 1.75 · 2 log 2, wh 0.
    assert box_part("keras_yolo3", "xy") == pytest.approx(1.75 * 2 * math.log(2), rel=1e-6)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (YOLOV3.with_loss(box_loss="l1"), "box_loss must be one of"),
        (
            YOLOV3.with_loss(box_loss="ciou", sqrt_wh=True),
            "sqrt_wh applies to box_loss \\['mse'\\]",
        ),
        (YOLOV3.replace(decode="v5"), "keras_yolo3' needs decode='v3'"),
        (YOLOV3.replace(scale_xy=1.1), "keras_yolo3' needs decode='v3'"),
    ],
)
def test_unknown_or_inconsistent_box_loss_fails_when_the_loss_is_built(cfg, message):
    with pytest.raises(ValueError, match=message):
        get_box_loss(cfg)
    with pytest.raises(ValueError, match=message):
        YoloLoss(cfg, 0)


def test_gradient_of_every_box_loss_is_finite_at_extreme_logits():
    y_true, _ = one_box_case()
    for name in BOX_LOSSES:
        loss = YoloLoss(TOY.with_loss(box_loss=name), 0)
        for value in (1e4, -1e4):
            logits = tf.Variable(tf.fill([1, 2, 2, 6], value))
            with tf.GradientTape() as tape:
                total = loss(y_true, logits)
            grad = tape.gradient(total, logits)
            assert np.isfinite(float(total)) and np.all(np.isfinite(grad.numpy())), (name, value)
