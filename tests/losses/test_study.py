"""Variants of the PyTorch YOLOv3 training study, each a config field, on a 1-box toy by hand."""

import math

import numpy as np
import pytest

from kyolo.config import YOLOV3
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from tests.helpers import TOY

LOG2 = math.log(2.0)
# One class, 64x64 input, stride 32 (2x2 grid), one 32x32 anchor, keras-yolo3's loss; truth
# (0.3, 0.25, 0.5, 0.5) → cell (0, 0), (0.6, 0.5, 1, 1) in cells. All logits 0 (obj logit 1):
# predictions are 1 x 1 cell boxes at cell centres; the positive's IoU = 0.9 / 1.1.
IOU = 0.9 / 1.1


def toy_parts(**loss_changes):
    cfg = TOY.with_loss(ignore_thresh=None, **loss_changes)
    y_true = encode_targets(np.array([[0.3, 0.25, 0.5, 0.5]], np.float32), [0], cfg)[0][None]
    logits = np.zeros((1, 2, 2, 6), np.float32)
    logits[..., 4] = 1.0
    parts = YoloLoss(cfg, 0).components(y_true, logits)
    return {key: float(value[0]) for key, value in parts.items()}


def bce(z, x):
    return math.log(1 + math.exp(x)) - z * x


def test_box_loss_mse_versus_one_minus_iou():
    mse = toy_parts(box_loss="mse")
    assert (mse["xy"], mse["wh"]) == pytest.approx((0.01, 0.0), abs=1e-6)
    assert toy_parts(box_loss="iou")["box"] == pytest.approx(1 - IOU, rel=1e-5)


def test_objectness_target_one_versus_iou():
    negatives = 3 * bce(0.0, 1.0)
    assert toy_parts()["obj"] == pytest.approx(bce(1.0, 1.0) + negatives, rel=1e-6)
    assert toy_parts(obj_target="iou")["obj"] == pytest.approx(bce(IOU, 1.0) + negatives, rel=1e-5)


def test_auto_objectness_pos_weight():
    # (n_preds − n_labels) / n_labels · 0.5 = (4 − 1) / 1 · 0.5 = 1.5 on the positive's log σ term.
    parts = toy_parts(obj_pos_weight="auto")
    positive = -1.5 * math.log(1 / (1 + math.exp(-1.0)))
    assert parts["obj"] == pytest.approx(positive + 3 * bce(0.0, 1.0), rel=1e-6)


def test_best_anchor_per_scale_versus_global_best():
    # A 100x60 box: global best anchor (116, 90) of scale 0 only; per scale, one slot each.
    boxes = np.array([[0.5, 0.25, 100 / 416, 60 / 416]], np.float32)
    count = {
        assigner: [int(np.sum(t.numpy()[..., 4])) for t in encode_targets(boxes, [0], cfg)]
        for assigner, cfg in (
            ("best_anchor", YOLOV3),
            ("best_anchor_per_scale", YOLOV3.replace(assigner="best_anchor_per_scale")),
        )
    }
    assert count == {"best_anchor": [1, 0, 0], "best_anchor_per_scale": [1, 1, 1]}
