"""Anchor-IoU assigners by hand: Darknet YOLOv4's multi-anchor and the study's per-scale best."""

import numpy as np
import pytest

from kyolo.config import YOLOV4
from kyolo.encode import encode_targets
from kyolo.targets import target_grid

# YOLOv4 anchors (608 input): a 50x40 px box against each, centred IoU = inter / union:
#   (12, 16): 192 / 2000 = 0.096     (19, 36): 684 / 2000 = 0.342    (40, 28): 1120 / 2000 = 0.56
#   (36, 75): 1440 / 3260 = 0.442    (76, 55): 2000 / 4180 = 0.478   (72, 146): 2000 / 10512 = 0.19
#   (142, 110): 0.128  (192, 243): 0.043  (459, 401): 0.011
# Best: anchor 2 (scale 0, slot 2). Above iou_thresh 0.213: anchors 1 (scale 0), 3 and 4 (scale 1).
BOX = np.array([[0.25, 0.75, 50 / 608, 40 / 608]], np.float32)


def grids(cfg, boxes, classes):
    """Per scale the (gh, gw, A, 5 + C) slot grid (YOLOv4's "image" layout appends box rows)."""
    return [
        target_grid(t[None], cfg).numpy().reshape(*cfg.grid_size(s), cfg.anchors_per_scale, -1)
        for s, t in enumerate(encode_targets(boxes, classes, cfg))
    ]


def assigned(cfg):
    """Per scale, the sorted (row, col, slot) of BOX's positives."""
    return [sorted(map(tuple, np.argwhere(g[..., 4] > 0).tolist())) for g in grids(cfg, BOX, [0])]


def cells(cfg, scale):
    gh, gw = cfg.grid_size(scale)
    return int(0.75 * gh), int(0.25 * gw)


def test_multi_anchor_adds_anchors_above_iou_thresh():
    (r0, c0), (r1, c1) = cells(YOLOV4, 0), cells(YOLOV4, 1)
    assert assigned(YOLOV4) == [[(r0, c0, 1), (r0, c0, 2)], [(r1, c1, 0), (r1, c1, 1)], []]
    # 0.442 and 0.478 fall out above 0.45, 0.342 and 0.442 above 0.46: only anchor 4 is left.
    assert assigned(YOLOV4.replace(iou_thresh=0.46)) == [[(r0, c0, 2)], [(r1, c1, 1)], []]


def test_best_anchor_keeps_one_slot_over_all_scales():
    r0, c0 = cells(YOLOV4, 0)
    cfg = YOLOV4.replace(assigner="best_anchor")
    assert assigned(cfg) == [[(r0, c0, 2)], [], []]


def test_best_anchor_per_scale_writes_every_scale():
    # Scale 1's best is (76, 55) at 0.478 (slot 1); scale 2's is (142, 110) at 0.128 (slot 0).
    cfg = YOLOV4.replace(assigner="best_anchor_per_scale")
    expected = [[(*cells(cfg, 0), 2)], [(*cells(cfg, 1), 1)], [(*cells(cfg, 2), 0)]]
    assert assigned(cfg) == expected


@pytest.mark.parametrize("assigner", ["best_anchor", "best_anchor_per_scale", "multi_anchor"])
def test_later_box_wins_a_shared_slot(assigner):
    cfg = YOLOV4.replace(assigner=assigner, num_classes=3)
    boxes = np.concatenate([BOX, BOX * [1, 1, 1.02, 1.01]]).astype(np.float32)
    for grid in grids(cfg, boxes, [0, 2]):
        for index in np.argwhere(grid[..., 4] > 0):
            np.testing.assert_allclose(grid[tuple(index)][:4], boxes[1])
            np.testing.assert_array_equal(grid[tuple(index)][5:], [1, 0, 1])
