"""Tests of the numpy reference (tests/reference) against hand-computed values.

Every expected number here is derived by hand (the arithmetic is written out), so these tests
check the reference itself, not its agreement with kyolo.
"""

import math

import numpy as np
import pytest

from references import boxes_np as bx
from references import keras_yolo3_np as ky

LOG2 = math.log(2.0)
COCO = np.array(
    [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119],
     [116, 90], [156, 198], [373, 326]],
    dtype=np.float64,
)  # fmt: skip


# ------------------------------------------------------------------------------------------
# boxes_np
# ------------------------------------------------------------------------------------------


def test_xywh_xyxy_conversions():
    np.testing.assert_allclose(bx.xywh_to_xyxy([5.0, 6.0, 4.0, 2.0]), [3.0, 5.0, 7.0, 7.0])
    np.testing.assert_allclose(bx.xyxy_to_xywh([3.0, 5.0, 7.0, 7.0]), [5.0, 6.0, 4.0, 2.0])
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-5, 5, (3, 7, 2)), rng.uniform(0, 5, (3, 7, 2))], -1)
    np.testing.assert_allclose(bx.xyxy_to_xywh(bx.xywh_to_xyxy(boxes)), boxes, atol=1e-12)


# a = [0,2]x[0,2], b = [1,3]x[1,3]: intersection 1x1, union 4 + 4 - 1 = 7, enclosing [0,3]x[0,3].
BOX_A = [1.0, 1.0, 2.0, 2.0]
BOX_B = [2.0, 2.0, 2.0, 2.0]


def test_iou_offset_squares():
    assert bx.iou(BOX_A, BOX_B) == pytest.approx(1 / 7)
    assert bx.iou(BOX_A, BOX_A) == pytest.approx(1.0)
    # [0,2]x[0,2] vs [1,3]x[0,2]: intersection 1x2 = 2, union 6.
    assert bx.iou(BOX_A, [2.0, 1.0, 2.0, 2.0]) == pytest.approx(2 / 6)
    # disjoint and zero-union cases
    assert bx.iou(BOX_A, [10.0, 10.0, 2.0, 2.0]) == 0.0
    assert bx.iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]) == 0.0


def test_giou_diou_offset_squares():
    # GIoU = IoU - (|C| - |U|) / |C| = 1/7 - (9 - 7) / 9
    assert bx.giou(BOX_A, BOX_B) == pytest.approx(1 / 7 - 2 / 9)
    # DIoU = IoU - rho^2 / c^2; centres (1,1),(2,2): rho^2 = 2; c^2 = 3^2 + 3^2 = 18
    assert bx.diou(BOX_A, BOX_B) == pytest.approx(1 / 7 - 2 / 18)
    # same aspect ratio -> v = 0 -> CIoU == DIoU
    assert bx.ciou(BOX_A, BOX_B) == pytest.approx(1 / 7 - 2 / 18)
    # disjoint: [0,2]^2 vs [4,6]x[0,2]: IoU 0, enclosing 6x2 = 12, union 8 -> GIoU = -4/12
    far = [5.0, 1.0, 2.0, 2.0]
    assert bx.giou(BOX_A, far) == pytest.approx(-4 / 12)
    # DIoU: rho^2 = 16, c^2 = 36 + 4 = 40
    assert bx.diou(BOX_A, far) == pytest.approx(-16 / 40)
    # identical boxes: all are 1 (CIoU alpha's 0/0 taken as 0)
    for fn in (bx.giou, bx.diou, bx.ciou):
        assert fn(BOX_A, BOX_A) == pytest.approx(1.0)


def test_ciou_different_aspect_ratio():
    s3 = math.sqrt(3.0)
    # a: 2x2 square at the origin (atan(1) = pi/4); b: 2*sqrt(3) x 2 (atan(sqrt 3) = pi/3).
    a = [0.0, 0.0, 2.0, 2.0]
    b = [0.0, 0.0, 2 * s3, 2.0]
    v = 4 / math.pi**2 * (math.pi / 3 - math.pi / 4) ** 2  # = 4/pi^2 * (pi/12)^2 = 1/36
    assert v == pytest.approx(1 / 36)
    iou = 4 / (4 * s3)  # a inside b
    alpha = v / ((1 - iou) + v)
    assert bx.ciou(a, b) == pytest.approx(iou - alpha * v)
    assert bx.ciou(b, a) == pytest.approx(iou - alpha * v)

    # shift b right by 1: b = [1-s3, 1+s3] x [-1, 1]
    b_shift = [1.0, 0.0, 2 * s3, 2.0]
    inter = (1 - (1 - s3)) * 2  # x overlap [1-s3, 1] = s3, y overlap 2
    union = 4 + 4 * s3 - inter
    iou = inter / union
    c_sq = (2 + s3) ** 2 + 2**2  # enclosing x [-1, 1+s3], y [-1, 1]
    rho_sq = 1.0
    alpha = v / ((1 - iou) + v)
    assert bx.iou(a, b_shift) == pytest.approx(s3 / (2 + s3))
    assert bx.diou(a, b_shift) == pytest.approx(iou - rho_sq / c_sq)
    assert bx.ciou(a, b_shift) == pytest.approx(iou - rho_sq / c_sq - alpha * v)
    # enclosing area (2 + s3) * 2
    assert bx.giou(a, b_shift) == pytest.approx(iou - ((2 + s3) * 2 - union) / ((2 + s3) * 2))


def test_elementwise_broadcast_and_pairwise():
    a = np.array([BOX_A, BOX_B])
    b = np.array([BOX_B, BOX_B, [2.0, 1.0, 2.0, 2.0]])
    pair = bx.pairwise_iou(a, b)
    assert pair.shape == (2, 3)
    expected = [[1 / 7, 1 / 7, 2 / 6], [1.0, 1.0, 2 / 6]]
    np.testing.assert_allclose(pair, expected)
    np.testing.assert_allclose(bx.iou(a[:, None], b[None]), expected)


def test_anchor_wh_iou():
    wh = np.array([[2.0, 3.0], [10.0, 10.0]])
    anchors = np.array([[3.0, 2.0], [2.0, 3.0], [5.0, 20.0]])
    out = bx.anchor_wh_iou(wh, anchors)
    assert out.shape == (2, 3)
    # 2x3 vs 3x2 centred: overlap 2x2 = 4, union 6 + 6 - 4 = 8
    # 10x10 vs 5x20: overlap 5x10 = 50, union 100 + 100 - 50 = 150
    # 10x10 vs 3x2: 6 / 100
    np.testing.assert_allclose(out, [[4 / 8, 1.0, 6 / 100], [6 / 100, 6 / 100, 50 / 150]])
    assert bx.anchor_wh_iou([[0.0, 0.0]], [[0.0, 0.0]])[0, 0] == 0.0


# ------------------------------------------------------------------------------------------
# preprocess_true_boxes
# ------------------------------------------------------------------------------------------


def _nonzero_cells(y):
    return [tuple(int(v) for v in idx) for idx in zip(*np.nonzero(y[..., 4]), strict=True)]


def test_preprocess_one_box_coco_64():
    # 64x64 input -> grids 2, 4, 8. Box x 10..41, y 20..51 (31x31), class 1 of 2.
    # Centre uses floor division: (10 + 41) // 2 = 25, (20 + 51) // 2 = 35.
    # Centred IoU with the COCO anchors (31*31 = 961):
    #   (33,23): 31*23 / (961 + 759 - 713) = 713/1007 = 0.708   <- best, anchor 2
    #   (16,30): 16*30 / (961 + 480 - 480) = 480/961  = 0.499
    #   (30,61): 30*31 / (961 + 1830 - 930) = 930/1861 = 0.4997
    # Anchor 2 is in mask [0,1,2] -> layer 2 (stride 8, 8x8 grid), slot k = 2.
    # Cell: i = floor(25/64 * 8) = floor(3.125) = 3, j = floor(35/64 * 8) = floor(4.375) = 4.
    boxes = np.array([[[10, 20, 41, 51, 1], [0, 0, 0, 0, 0]]], dtype=np.float64)
    y = ky.preprocess_true_boxes(boxes, (64, 64), COCO, 2)
    assert [a.shape for a in y] == [(1, 2, 2, 3, 7), (1, 4, 4, 3, 7), (1, 8, 8, 3, 7)]
    assert all(a.dtype == np.float32 for a in y)
    assert not y[0].any() and not y[1].any()
    assert _nonzero_cells(y[2]) == [(0, 4, 3, 2)]
    np.testing.assert_allclose(
        y[2][0, 4, 3, 2], [25 / 64, 35 / 64, 31 / 64, 31 / 64, 1, 0, 1], rtol=1e-7
    )
    assert np.count_nonzero(y[2]) == 6


def test_preprocess_non_square_input():
    # input (h, w) = (64, 128): layer-2 grid is (8, 16). Box 30x25 at centre x = 100, y = 20.
    # Anchor 2 (33,23): 30*23 / (750 + 759 - 690) = 690/819 = 0.84 (anchor 1: 400/950).
    # i = floor(100/128 * 16) = 12, j = floor(20/64 * 8) = 2.
    boxes = np.array([[[85, 8, 115, 33, 0]]], dtype=np.float64)  # centre (100, 20)
    y = ky.preprocess_true_boxes(boxes, (64, 128), COCO, 1)
    assert y[2].shape == (1, 8, 16, 3, 6)
    assert _nonzero_cells(y[2]) == [(0, 2, 12, 2)]
    np.testing.assert_allclose(y[2][0, 2, 12, 2, :4], [100 / 128, 20 / 64, 30 / 128, 25 / 64])


def test_preprocess_overwrite_and_class_accumulation():
    # Two 31x31 boxes, both centred in layer-2 cell (4, 3) with anchor 2: the second box's xywh
    # wins, objectness stays 1, both class indicators are set.
    boxes = np.array([[[10, 20, 41, 51, 0], [11, 21, 42, 52, 2]]], dtype=np.float64)
    y = ky.preprocess_true_boxes(boxes, (64, 64), COCO, 3)
    assert _nonzero_cells(y[2]) == [(0, 4, 3, 2)]
    # second box centre: (11 + 42) // 2 = 26, (21 + 52) // 2 = 36
    np.testing.assert_allclose(
        y[2][0, 4, 3, 2], [26 / 64, 36 / 64, 31 / 64, 31 / 64, 1, 1, 0, 1], rtol=1e-7
    )


def test_preprocess_padding_rows_and_own_row():
    # Padding rows (width <= 0) anywhere are skipped; the box after a padding row is read from
    # its own row (keras-yolo3 would read row 0 here: its filtered-index bug).
    boxes = np.array(
        [
            [[0, 0, 0, 0, 0], [10, 20, 41, 51, 1], [5, 5, 5, 40, 0]],  # w = 0 with h > 0: padding
            [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
        ],
        dtype=np.float64,
    )
    y = ky.preprocess_true_boxes(boxes, (64, 64), COCO, 2)
    assert _nonzero_cells(y[2]) == [(0, 4, 3, 2)]
    assert not y[0].any() and not y[1].any() and not y[2][1].any()


def test_preprocess_zero_height_box_goes_to_anchor_0():
    # w > 0, h = 0 is not padding: IoU 0 with every anchor -> argmax = anchor 0 (layer 2, k 0).
    boxes = np.array([[[8, 8, 24, 8, 0]]], dtype=np.float64)  # centre (16, 8)
    y = ky.preprocess_true_boxes(boxes, (64, 64), COCO, 1)
    # i = floor(16/64*8) = 2, j = floor(8/64*8) = 1
    assert _nonzero_cells(y[2]) == [(0, 1, 2, 0)]
    assert not y[0].any() and not y[1].any()


def test_preprocess_anchor_tie_takes_first():
    # anchors 0 and 1 are 8x4 and 4x8: a 4x4 box has IoU 16/32 = 0.5 with both -> anchor 0.
    anchors = np.array([[8, 4], [4, 8], [40, 40], [50, 50], [60, 60], [70, 70], [80, 80],
                        [90, 90], [99, 99]], dtype=np.float64)  # fmt: skip
    boxes = np.array([[[30, 30, 34, 34, 0]]], dtype=np.float64)  # centre (32, 32)
    y = ky.preprocess_true_boxes(boxes, (64, 64), anchors, 1)
    assert _nonzero_cells(y[2]) == [(0, 4, 4, 0)]


def test_preprocess_tiny_anchor_masks():
    tiny = np.array([[10, 14], [23, 27], [37, 58], [81, 82], [135, 169], [344, 319]], float)
    boxes = np.array(
        [
            [
                [0, 0, 81, 82, 0],  # exactly anchor 3 -> both layers (masks [3,4,5] and [1,2,3])
                [40, 40, 50, 54, 1],  # exactly anchor 0 -> in no mask: dropped
            ]
        ],
        dtype=np.float64,
    )
    y = ky.preprocess_true_boxes(boxes, (64, 64), tiny, 2)
    assert [a.shape for a in y] == [(1, 2, 2, 3, 7), (1, 4, 4, 3, 7)]
    # centre (81 // 2, 82 // 2) = (40, 41): layer 0 cell (floor(40/64*2), floor(41/64*2)) = (1, 1),
    # slot 0; layer 1 cell (floor(2.5), floor(2.5625)) = (2, 2), slot 2.
    assert _nonzero_cells(y[0]) == [(0, 1, 1, 0)]
    assert _nonzero_cells(y[1]) == [(0, 2, 2, 2)]
    assert y[1][0, 2, 2, 2, 5] == 1 and y[1][0, 2, 2, 2, 6] == 0


def test_preprocess_float32_cell_quirk():
    # 416 input, box exactly anchor 4 (62x45) -> layer 1 (stride 16, 26x26 grid), slot 1.
    # Centre x = (209 + 271) // 2 = 240 -> exact cell 240/16 = 15, but float32(240/416) * 26 is
    # 14.99999... in keras-yolo3, giving cell 14. y: (200 + 245) // 2 = 222 -> 13.875 -> 13.
    boxes = np.array([[[209, 200, 271, 245, 0]]], dtype=np.float64)
    assert math.floor(float(np.float32(240 / 416)) * 26) == 14  # the quirk itself
    y = ky.preprocess_true_boxes(boxes, (416, 416), COCO, 1)
    assert _nonzero_cells(y[1]) == [(0, 13, 14, 1)]
    y = ky.preprocess_true_boxes(boxes, (416, 416), COCO, 1, float32_cells=False)
    assert _nonzero_cells(y[1]) == [(0, 13, 15, 1)]


def test_preprocess_rejects_bad_input():
    with pytest.raises(ValueError):
        ky.preprocess_true_boxes(np.array([[[0, 0, 4, 4, 2]]], float), (64, 64), COCO, 2)
    with pytest.raises(ValueError):
        ky.preprocess_true_boxes(np.zeros((1, 1, 5)), (64, 64), COCO[:4], 1)


# ------------------------------------------------------------------------------------------
# yolo_loss
# ------------------------------------------------------------------------------------------

# 64x64 input, grids 2/4/8. Layer 2 owns anchors 0,1,2 = 4x4, 8x8, 10x10.
SMALL = np.array(
    [[4, 4], [8, 8], [10, 10], [16, 16], [20, 20], [24, 24], [40, 40], [48, 48], [56, 56]], float
)
# One 8x8 box at pixels x 24..32, y 32..40: centre (28, 36) is the centre of layer-2 cell
# (j=4, i=3); best anchor 1 (IoU 1) -> slot 1. Class 1 of 2.
ONE_BOX = np.array([[[24, 32, 32, 40, 1]]], dtype=np.float64)


def _zero_outputs(m, num_classes=2, grids=(2, 4, 8)):
    return [np.zeros((m, g, g, 3 * (5 + num_classes))) for g in grids]


def test_yolo_loss_zero_logits_by_hand():
    y = ky.preprocess_true_boxes(ONE_BOX, (64, 64), SMALL, 2)
    assert _nonzero_cells(y[2]) == [(0, 4, 3, 1)]
    comps = ky.yolo_loss_components(_zero_outputs(1), y, SMALL, 2)

    # With logit 0, BCE(z, 0) = log 2 for any label z.
    # Layers 0 and 1 have no boxes: nothing ignored, every slot contributes log 2.
    for layer, g in ((0, 2), (1, 4)):
        assert comps[(layer, "confidence")] == pytest.approx(g * g * 3 * LOG2)
        for term in ("xy", "wh", "class"):
            assert comps[(layer, term)] == 0.0

    # Layer 2. Zero logits decode to boxes at cell centres with anchor sizes. In the object's
    # cell: the 4x4 slot has IoU 16/64 = 0.25 (< 0.5, counted), the 10x10 slot IoU 64/100 = 0.64
    # (>= 0.5, ignored). Neighbouring cells are 8 px away: 8x8 boxes only touch (IoU 0) and a
    # 10x10 one overlaps 1x8 px (IoU 8/156). So of the 8*8*3 = 192 slots: 1 object (log 2),
    # 1 ignored, 190 no-object ones (log 2 each).
    assert comps[(2, "confidence")] == pytest.approx(191 * LOG2)
    scale = 2 - (8 / 64) * (8 / 64)
    assert comps[(2, "xy")] == pytest.approx(scale * 2 * LOG2)  # two coordinates
    # raw_true_wh = log(8/64 / 8 * 64) = log 1 = 0, predicted 0
    assert comps[(2, "wh")] == pytest.approx(0.0)
    assert comps[(2, "class")] == pytest.approx(2 * LOG2)  # two classes, logit 0

    total = (12 + 48 + 191) * LOG2 + scale * 2 * LOG2 + 2 * LOG2
    assert ky.yolo_loss(_zero_outputs(1), y, SMALL, 2) == pytest.approx(total)
    assert ky.yolo_loss(_zero_outputs(1), y, SMALL, 2) == pytest.approx(sum(comps.values()))

    # A higher threshold stops ignoring the 10x10 slot (0.64 < 0.7): one more log 2.
    comps_07 = ky.yolo_loss_components(_zero_outputs(1), y, SMALL, 2, ignore_thresh=0.7)
    assert comps_07[(2, "confidence")] == pytest.approx(192 * LOG2)


def test_yolo_loss_object_slot_logits_by_hand():
    y = ky.preprocess_true_boxes(ONE_BOX, (64, 64), SMALL, 2)
    outputs = _zero_outputs(1)
    slot = outputs[2][0, 4, 3, 7:14]  # anchor slot 1 of cell (4, 3): channels 7..13
    slot[:] = [2.0, -1.0, math.log(2.0), 0.0, 3.0, 1.0, -1.0]
    comps = ky.yolo_loss_components(outputs, y, SMALL, 2)

    scale = 2 - 1 / 64
    # raw_true_xy = (28/64 * 8 - 3, 36/64 * 8 - 4) = (0.5, 0.5);
    # BCE(z, x) = log(1 + e^x) - z * x
    bce_x = math.log(1 + math.e**2) - 0.5 * 2.0
    bce_y = math.log(1 + math.e**-1) - 0.5 * -1.0
    assert comps[(2, "xy")] == pytest.approx(scale * (bce_x + bce_y))
    # raw_true_wh = (0, 0); predicted (log 2, 0)
    assert comps[(2, "wh")] == pytest.approx(scale * 0.5 * math.log(2.0) ** 2)
    # objectness BCE(1, 3) = log(1 + e^-3); the 190 counted no-object slots still give log 2
    assert comps[(2, "confidence")] == pytest.approx(math.log(1 + math.e**-3) + 190 * LOG2)
    # class 1: BCE(0, 1) = log(1 + e), BCE(1, -1) = log(1 + e)
    assert comps[(2, "class")] == pytest.approx(2 * math.log(1 + math.e))


def test_yolo_loss_divides_by_batch_size():
    y1 = ky.preprocess_true_boxes(ONE_BOX, (64, 64), SMALL, 2)
    single = ky.yolo_loss(_zero_outputs(1), y1, SMALL, 2)
    empty = (12 + 48 + 192) * LOG2  # an image without boxes: every slot counts log 2

    boxes = np.concatenate([ONE_BOX, np.zeros_like(ONE_BOX)], axis=0)
    y2 = ky.preprocess_true_boxes(boxes, (64, 64), SMALL, 2)
    assert ky.yolo_loss(_zero_outputs(2), y2, SMALL, 2) == pytest.approx((single + empty) / 2)

    y_dup = ky.preprocess_true_boxes(np.concatenate([ONE_BOX, ONE_BOX]), (64, 64), SMALL, 2)
    assert ky.yolo_loss(_zero_outputs(2), y_dup, SMALL, 2) == pytest.approx(single)


def test_yolo_loss_tiny_no_boxes():
    tiny = SMALL[:6]
    y = ky.preprocess_true_boxes(np.zeros((1, 1, 5)), (64, 64), tiny, 3)
    loss = ky.yolo_loss(_zero_outputs(1, 3, (2, 4)), y, tiny, 3)
    assert loss == pytest.approx((2 * 2 * 3 + 4 * 4 * 3) * LOG2)


def test_yolo_loss_large_logits_are_finite():
    y = ky.preprocess_true_boxes(ONE_BOX, (64, 64), SMALL, 2)
    outputs = [np.full_like(o, 500.0) for o in _zero_outputs(1)]
    for o in outputs:
        o[..., 2::7] = 0.0  # keep exp(wh) finite
        o[..., 3::7] = 0.0
    loss = ky.yolo_loss(outputs, y, SMALL, 2)
    assert np.isfinite(loss)
    # BCE(0, 500) = 500 for each counted no-object slot: at least 12 + 48 of them
    assert loss > 60 * 500
