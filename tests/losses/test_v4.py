"""YOLOv4 preset: grid-sensitive decoding and the CIoU loss, by hand."""

import math

import numpy as np
import pytest

from kyolo.config import YOLOV4
from kyolo.decode import decode_xywh
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from tests.helpers import TOY as V3_TOY

LOG2 = math.log(2.0)


def test_grid_sensitive_decode_by_hand():
    # Scale 0 of YOLOv4 (s = 1.2, stride 8, anchor (12, 16)) on a 64x64 input: 8x8 grid.
    cfg = YOLOV4.replace(input_size=(64, 64))
    logits = np.zeros((1, 8, 8, 3, 85), np.float32)
    logits[0, 5, 2, 0, :4] = [math.log(3.0), 50.0, math.log(2.0), 0.0]  # σ = 0.75, ≈ 1
    got = decode_xywh(logits, cfg, 0).numpy().reshape(1, 8, 8, 3, 4)
    # x: 1.2 · 0.75 − 0.1 = 0.8 cells from column 2; y: 1.2 · 1 − 0.1 = 1.1 (beyond the cell,
    # which plain σ cannot reach); w = 2 · 12 px, h = 16 px.
    np.testing.assert_allclose(got[0, 5, 2, 0], [2.8 / 8, 6.1 / 8, 24 / 64, 16 / 64], rtol=1e-6)
    # σ = 0.5 decodes to the cell centre for every s.
    np.testing.assert_allclose(got[0, 0, 0, 1, :2], [0.5 / 8, 0.5 / 8], rtol=1e-6)
    # Scale 2 (s = 1.05): t = −50 → −0.025 cells.
    logits = np.full((1, 2, 2, 3, 85), -50.0, np.float32)
    got = decode_xywh(logits, cfg, 2).numpy()  # slot (row 1 · 2 + col 1) · 3 + anchor 0 = 9
    np.testing.assert_allclose(got[0, 9, :2], 0.975 / 2)


# One class, 64x64 input, stride 32 (2x2 grid), one 32x32 anchor, the YOLOv4 loss and scale_x_y.
TOY = V3_TOY.replace(
    ignore_against="image", assigner="multi_anchor", scale_xy=1.2, loss=YOLOV4.loss
)


def test_ciou_loss_by_hand():
    # Truth (0.3, 0.25, 0.5, 0.5) → cell (0, 0); in cells (0.6, 0.5, 1, 1). All logits 0: the
    # prediction is (0.5, 0.5, 1, 1) cells. IoU = 0.9 / 1.1; ρ² = 0.01; enclosing 1.1 x 1 →
    # c² = 2.21; equal aspect ratios → v = 0.
    y_true = encode_targets(np.array([[0.3, 0.25, 0.5, 0.5]], np.float32), [0], TOY)[0][None]
    parts = YoloLoss(TOY, 0).components(y_true, np.zeros((1, 2, 2, 6), np.float32))
    ciou = 0.9 / 1.1 - 0.01 / 2.21
    assert float(parts["box"][0]) == pytest.approx(0.07 * (1 - ciou), rel=1e-5)
    # Objectness target 1, all four slots count (best IoU of a negative, cell (1, 0): 0.1 / 1.9).
    assert float(parts["obj"][0]) == pytest.approx(4 * LOG2, rel=1e-6)
    assert float(parts["cls"][0]) == pytest.approx(LOG2, rel=1e-6)


def test_ignore_thresh_uses_grid_sensitive_boxes_of_the_whole_image():
    # Truth (0.35, 0.25, 0.5, 0.5): (0.7, 0.5, 1, 1) in cells. Cell (1, 0)'s box, pushed left by
    # t_x = −50 to x = 1 − 0.1 = 0.9 cells, overlaps it by 0.8 / 1.2 = 0.667 IoU: ignored at 0.6,
    # not at 0.7. With plain σ (s = 1) it stops at x = 1.0: 0.7 / 1.3 = 0.538, never ignored.
    y_true = encode_targets(np.array([[0.35, 0.25, 0.5, 0.5]], np.float32), [0], TOY)[0][None]
    logits = np.zeros((1, 2, 2, 6), np.float32)
    logits[0, 0, 1, 0] = -50.0

    def obj(thresh, scale_xy=1.2):
        cfg = TOY.replace(scale_xy=scale_xy).with_loss(ignore_thresh=thresh)
        return float(YoloLoss(cfg, 0).components(y_true, logits)["obj"][0])

    assert obj(0.7) == pytest.approx(4 * LOG2, rel=1e-6)
    assert obj(0.6) == pytest.approx(3 * LOG2, rel=1e-6)
    assert obj(0.6, scale_xy=1.0) == pytest.approx(4 * LOG2, rel=1e-6)
    assert obj(0.53, scale_xy=1.0) == pytest.approx(3 * LOG2, rel=1e-6)
