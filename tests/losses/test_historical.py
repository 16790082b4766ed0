"""YOLOv1 / YOLOv2 presets (historical, on the YOLOv3 anchor head): a 1-box toy by hand."""

import math

import numpy as np
import pytest

from kyolo.config import YOLOV1, YOLOV2
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from tests.helpers import TOY

E = math.e


def toy_parts(preset, **loss_changes):
    # Truth (0.3, 0.25, 0.5, 0.5) → cell (0, 0), (0.6, 0.5, 1, 1) in cells. Logits 0 except
    # t_w = t_h = 1: every prediction is an e x e cell box at its cell centre (σ(0) = 0.5).
    # TOY: one class, 64x64 input, stride 32 (2x2 grid), one 32x32 anchor.
    cfg = TOY.replace(loss=preset.loss.replace(**loss_changes))
    y_true = encode_targets(np.array([[0.3, 0.25, 0.5, 0.5]], np.float32), [0], cfg)[0][None]
    logits = np.zeros((1, 2, 2, 6), np.float32)
    logits[..., 2:4] = 1.0
    parts = YoloLoss(cfg, 0).components(y_true, logits)
    return {key: float(value[0]) for key, value in parts.items()}


# The positive's e x e box covers the 1 x 1 truth: IoU = 1 / e². Negatives' IoUs with the truth:
# cell (1, 0) box x [1.5 − e/2, ..] ∩ [0.1, 1.1] = 0.959, y covers → 0.959 / (e² + 1 − 0.959);
# cell (0, 1): 0.859 / (e² + 1 − 0.859); cell (1, 1): 0.959 · 0.859 / (e² + 1 − 0.959 · 0.859).
IOU_POS = 1 / E**2
OVERLAP_X, OVERLAP_Y = 1.1 - (1.5 - E / 2), 1.0 - (1.5 - E / 2)
IOU_NEG = [o / (E**2 + 1 - o) for o in (OVERLAP_X, OVERLAP_Y, OVERLAP_X * OVERLAP_Y)]


def test_yolov1_sum_squared_error_by_hand():
    parts = toy_parts(YOLOV1)
    # λcoord (x̂ − x)²: 5 · (0.5 − 0.6)²; √ sizes as fractions of the image: √(e/2) vs √(1/2).
    assert parts["xy"] == pytest.approx(5 * 0.01, rel=1e-5)
    assert parts["wh"] == pytest.approx(5 * 2 * (math.sqrt(E / 2) - math.sqrt(0.5)) ** 2, rel=1e-5)
    # Confidence target = IoU; every other slot: λnoobj · σ² (no ignore threshold in YOLOv1).
    assert parts["obj"] == pytest.approx((0.5 - IOU_POS) ** 2 + 0.5 * 3 * 0.25, rel=1e-5)
    assert parts["cls"] == pytest.approx((0.5 - 1.0) ** 2, rel=1e-6)


def test_yolov2_by_hand():
    parts = toy_parts(YOLOV2)
    # Size in log space: (t_w − log(w / anchor))² = (1 − 0)², twice.
    assert parts["xy"] == pytest.approx(0.01, rel=1e-5)
    assert parts["wh"] == pytest.approx(2.0, rel=1e-6)
    # object_scale 5 on the positive, noobject_scale 1 (= 5 · 0.2) on negatives below 0.6 IoU.
    assert max(IOU_NEG) < 0.6
    assert parts["obj"] == pytest.approx(5 * (0.5 - IOU_POS) ** 2 + 3 * 0.25, rel=1e-5)
    assert parts["cls"] == pytest.approx(0.25, rel=1e-6)
    # A threshold between the negatives' IoUs ignores the best-overlapping one only.
    thresh = (IOU_NEG[0] + IOU_NEG[1]) / 2
    assert IOU_NEG[0] > thresh > IOU_NEG[1] > IOU_NEG[2]
    ignored = toy_parts(YOLOV2, ignore_thresh=thresh)
    assert ignored["obj"] == pytest.approx(5 * (0.5 - IOU_POS) ** 2 + 2 * 0.25, rel=1e-5)
