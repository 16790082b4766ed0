"""Hand-computed checks of the NumPy YOLOv5 loss reference (references/yolov5_np.py)."""

import math

import numpy as np
import pytest

try:  # works whether or not ``tests`` is importable as a package
    from references import yolov5_np as ref
except ModuleNotFoundError:  # pragma: no cover - depends on pytest rootdir/import mode
    from reference import yolov5_np as ref

LOG2 = math.log(2.0)


def _hyp(**kw):
    h = dict(
        box=0.05,
        obj=1.0,
        cls=0.5,
        cls_pw=1.0,
        obj_pw=1.0,
        fl_gamma=0.0,
        label_smoothing=0.0,
        anchor_t=4.0,
    )
    h.update(kw)
    return h


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# One layer, stride 8, 4x4 grid (32 px image), one anchor of 8x8 px = 1x1 grid cell.
STRIDES1 = [8]
ANCHORS1 = np.array([[[8.0, 8.0]]])
# Target centred in cell (1, 1) (x fraction 0.5 -> no neighbour), 2 cells wide, 1 cell high.
TARGET1 = np.array([[0.0, 1.0, 1.5 / 4, 1.5 / 4, 2.0 / 4, 1.0 / 4]])


def _zeros(b=1, na=1, ny=4, nx=4, nc=3):
    return [np.zeros((b, na, ny, nx, 5 + nc))]


def _ciou_pred_unit_box_vs_2x1():
    """CIoU of pred (0.5, 0.5, 1, 1) vs target (0.5, 0.5, 2, 1), written out by hand."""
    eps = 1e-7
    iou = 1.0 / (1.0 + 2.0 - 1.0 + eps)  # inter 1, areas 1 and 2
    v = 4.0 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha = v / (v - iou + 1.0 + eps)
    rho2 = 0.0  # same centre
    c2 = 2.0**2 + 1.0**2 + eps
    return iou - (rho2 / c2 + v * alpha)


def test_single_target_zero_logits_hand_computed():
    hyp = _hyp(obj_pw=2.0, cls_pw=1.5, label_smoothing=0.1)
    total, (lbox, lobj, lcls) = ref.compute_loss(_zeros(), TARGET1, ANCHORS1, STRIDES1, hyp)

    # all logits 0 -> sigmoid 0.5 -> pxy = 0.5, pwh = (2*0.5)^2 * anchor(1,1) = (1, 1)
    ciou = _ciou_pred_unit_box_vs_2x1()
    exp_lbox = (1.0 - ciou) * 0.05

    # obj: 16 cells, BCE(0, z) = log2 * (pw*z + 1 - z); 15 cells z=0, one cell z=ciou
    z = ciou
    exp_lobj = 4.0 * (15 * LOG2 + LOG2 * (2.0 * z + 1.0 - z)) / 16 * 1.0  # balance[0] = 4.0

    # cls: 3 classes, smoothing 0.1 -> targets (0.05, 0.95, 0.05), pos_weight 1.5
    cp, cn = 0.95, 0.05
    per = [LOG2 * (1.5 * t + 1.0 - t) for t in (cn, cp, cn)]
    exp_lcls = sum(per) / 3 * 0.5

    assert lbox == pytest.approx(exp_lbox, rel=1e-12)
    assert lobj == pytest.approx(exp_lobj, rel=1e-12)
    assert lcls == pytest.approx(exp_lcls, rel=1e-12)
    assert total == pytest.approx(exp_lbox + exp_lobj + exp_lcls, rel=1e-12)


def test_batch_size_multiplies_total_only():
    hyp = _hyp(obj_pw=2.0)
    p = _zeros(b=2)
    total, (lbox, lobj, lcls) = ref.compute_loss(p, TARGET1, ANCHORS1, STRIDES1, hyp)
    ciou = _ciou_pred_unit_box_vs_2x1()
    # obj mean is now over 2 * 16 cells (image 1 has no target)
    exp_lobj = 4.0 * (31 * LOG2 + LOG2 * (1.0 + ciou)) / 32
    assert lobj == pytest.approx(exp_lobj, rel=1e-12)
    assert lcls == pytest.approx(LOG2 * 0.5, rel=1e-12)  # BCE(0, {0,1}) = log2 each, pw=1
    assert total == pytest.approx(2 * (lbox + lobj + lcls), rel=1e-12)


def test_single_class_has_no_class_loss():
    _, (_, _, lcls) = ref.compute_loss(_zeros(nc=1), TARGET1, ANCHORS1, STRIDES1, _hyp())
    assert lcls == 0.0


def test_no_targets_only_objectness():
    total, (lbox, lobj, lcls) = ref.compute_loss(
        _zeros(), np.zeros((0, 6)), ANCHORS1, STRIDES1, _hyp(obj=0.7)
    )
    assert lbox == 0.0 and lcls == 0.0
    assert lobj == pytest.approx(4.0 * LOG2 * 0.7, rel=1e-12)
    assert total == pytest.approx(lobj)


def test_three_layer_balance():
    # no targets, logits 0 -> each layer's obj mean is log2; lobj = log2 * (4 + 1 + 0.4)
    p = [np.zeros((1, 3, s, s, 6)) for s in (8, 4, 2)]
    anchors = np.ones((3, 3, 2)) * 10.0
    _, (_, lobj, _) = ref.compute_loss(p, np.zeros((0, 6)), anchors, [8, 16, 32], _hyp())
    assert lobj == pytest.approx(LOG2 * 5.4, rel=1e-12)


def _cells(targets, nx=4, ny=4, anchors_grid=None, anchor_t=4.0):
    anchors_grid = np.array([[[1.0, 1.0]]]) if anchors_grid is None else anchors_grid
    na = anchors_grid.shape[1]
    _, tbox, idx, _ = ref.build_targets([(1, na, ny, nx, 6)], targets, anchors_grid, anchor_t)
    b, a, gj, gi = idx[0]
    return list(zip(a.tolist(), gj.tolist(), gi.tolist(), strict=True)), tbox[0]


def test_neighbour_cells_left_vs_right():
    # grid 4x4; y fixed at 2.5 cells (fraction 0.5 -> no vertical neighbour)
    # x = 1.3 cells: fraction 0.3 < 0.5 and x > 1 -> centre cell 1 plus LEFT cell 0
    cells, tbox = _cells(np.array([[0, 0, 1.3 / 4, 2.5 / 4, 0.25, 0.25]]))
    assert cells == [(0, 2, 1), (0, 2, 0)]
    np.testing.assert_allclose(tbox[:, 0], [0.3, 1.3], atol=1e-12)  # offset from chosen cell
    np.testing.assert_allclose(tbox[:, 2:], [[1.0, 1.0]] * 2)

    # x = 1.7 cells: far-edge distance 2.3 (fraction 0.3) -> centre cell 1 plus RIGHT cell 2
    cells, tbox = _cells(np.array([[0, 0, 1.7 / 4, 2.5 / 4, 0.25, 0.25]]))
    assert cells == [(0, 2, 1), (0, 2, 2)]
    np.testing.assert_allclose(tbox[:, 0], [0.7, -0.3], atol=1e-12)


def test_neighbour_cells_vertical_and_order():
    # x = 2.2 (left), y = 1.8 (lower): order is centre, j (left), m (lower)
    cells, _ = _cells(np.array([[0, 0, 2.2 / 4, 1.8 / 4, 0.25, 0.25]]))
    assert cells == [(0, 1, 2), (0, 1, 1), (0, 2, 2)]
    # x = 2.2 (left), y = 1.2 (upper): centre, j (left), k (upper)
    cells, _ = _cells(np.array([[0, 0, 2.2 / 4, 1.2 / 4, 0.25, 0.25]]))
    assert cells == [(0, 1, 2), (0, 1, 1), (0, 0, 2)]


def test_no_neighbour_beyond_image_edge():
    # x = 0.3 cells: fraction < 0.5 but x < 1 -> no left neighbour
    cells, _ = _cells(np.array([[0, 0, 0.3 / 4, 2.5 / 4, 0.25, 0.25]]))
    assert cells == [(0, 2, 0)]
    # x = 3.7 cells: far-edge distance 0.3 < 1 -> no right neighbour
    cells, _ = _cells(np.array([[0, 0, 3.7 / 4, 2.5 / 4, 0.25, 0.25]]))
    assert cells == [(0, 2, 3)]


def test_centre_on_far_edge_is_clamped_and_tbox_uses_clamped_cell():
    # x == 1.0 -> gx = 4.0 -> cell 4 clamped to 3; YOLOv5's in-place clamp makes tbox x = 1.0
    cells, tbox = _cells(np.array([[0, 0, 1.0, 2.5 / 4, 0.25, 0.25]]))
    assert cells[0] == (0, 2, 3)
    assert tbox[0, 0] == pytest.approx(1.0)


def test_anchor_t_filtering():
    # nx = ny = 8, anchors 1x1 and 4x4 grid cells, anchor_t = 4
    anchors_grid = np.array([[[1.0, 1.0], [4.0, 4.0]]])
    y = 4.5 / 8
    # w = h = 2 cells: ratios 2 and 0.5 -> both anchors
    cells, _ = _cells(np.array([[0, 0, 4.5 / 8, y, 2 / 8, 2 / 8]]), 8, 8, anchors_grid)
    assert cells == [(0, 4, 4), (1, 4, 4)]
    # w = 5 cells: ratio 5 to anchor 0 -> rejected; 1.25 to anchor 1 -> kept
    cells, _ = _cells(np.array([[0, 0, 4.5 / 8, y, 5 / 8, 2 / 8]]), 8, 8, anchors_grid)
    assert cells == [(1, 4, 4)]
    # w = 4 cells exactly: ratio 4 is NOT < 4 for anchor 0 (strict comparison)
    cells, _ = _cells(np.array([[0, 0, 4.5 / 8, y, 4 / 8, 4 / 8]]), 8, 8, anchors_grid)
    assert cells == [(1, 4, 4)]
    # h = 0.2 cells: inverse ratio 5 (anchor 0) and 20 (anchor 1) -> matched by neither
    cells, _ = _cells(np.array([[0, 0, 4.5 / 8, y, 1 / 8, 0.2 / 8]]), 8, 8, anchors_grid)
    assert cells == []


def test_anchor_order_in_build_targets_rows():
    # two targets, two anchors -> rows are anchor-major: (a0,t0), (a0,t1), (a1,t0), (a1,t1)
    anchors_grid = np.array([[[1.0, 1.0], [2.0, 2.0]]])
    t = np.array([[0, 0, 1.5 / 4, 1.5 / 4, 0.25, 0.25], [0, 1, 2.5 / 4, 2.5 / 4, 0.25, 0.25]])
    _, _, idx, _ = ref.build_targets([(1, 2, 4, 4, 7)], t, anchors_grid, 4.0)
    b, a, gj, gi = idx[0]
    assert a.tolist() == [0, 0, 1, 1]
    assert gi.tolist() == [1, 2, 1, 2]


def test_label_smoothing_values():
    assert ref.smooth_bce(0.0) == (1.0, 0.0)
    cp, cn = ref.smooth_bce(0.1)
    assert cp == pytest.approx(0.95) and cn == pytest.approx(0.05)


def test_bce_with_logits_pos_weight_and_stability():
    x, z = 0.7, 0.3
    s = _sig(x)
    expected = -(2.0 * z * math.log(s) + (1 - z) * math.log(1 - s))
    assert float(ref.bce_with_logits(x, z, 2.0)) == pytest.approx(expected, rel=1e-13)
    # large logits: no overflow / nan, asymptotically linear
    assert float(ref.bce_with_logits(800.0, 0.0)) == pytest.approx(800.0)
    assert float(ref.bce_with_logits(-800.0, 1.0)) == pytest.approx(800.0)


def test_focal_factor_one_element():
    x, z, gamma = 0.7, 1.0, 1.5
    s = _sig(x)
    # p_t = s (positive), alpha_factor = 0.25, modulating = (1 - s)^1.5
    assert float(ref.focal_factor(x, z, gamma)) == pytest.approx(0.25 * (1 - s) ** 1.5)
    # soft target z = 0.3 at x = 0: p_t = 0.5, alpha_factor = 0.3*0.25 + 0.7*0.75
    assert float(ref.focal_factor(0.0, 0.3, 2.0)) == pytest.approx((0.075 + 0.525) * 0.25)


def test_focal_loss_in_compute_loss_zero_logits():
    hyp = _hyp(fl_gamma=2.0)
    _, (_, lobj, lcls) = ref.compute_loss(_zeros(), TARGET1, ANCHORS1, STRIDES1, hyp)
    ciou = _ciou_pred_unit_box_vs_2x1()
    mod = 0.5**2.0  # p_t = 0.5 everywhere at x = 0

    def af(t):
        return t * 0.25 + (1 - t) * 0.75

    exp_lobj = 4.0 * (15 * LOG2 * af(0.0) * mod + LOG2 * af(ciou) * mod) / 16
    exp_lcls = (2 * LOG2 * af(0.0) * mod + LOG2 * af(1.0) * mod) / 3 * 0.5
    assert lobj == pytest.approx(exp_lobj, rel=1e-12)
    assert lcls == pytest.approx(exp_lcls, rel=1e-12)


def test_bbox_ciou_cases():
    # identical unit boxes: iou = 1/(1+eps), v = 0, rho = 0
    ciou, iou, alpha = ref.bbox_ciou([[0, 0, 1, 1]], [[0, 0, 1, 1]])
    assert iou[0] == pytest.approx(1 / (1 + 1e-7), rel=1e-15)
    assert ciou[0] == pytest.approx(iou[0], rel=1e-15) and alpha[0] == 0.0
    # disjoint same-shape boxes, centres 2 apart: iou 0, v 0, ciou = -rho2/c2 = -4/(9+1+eps)
    ciou, iou, _ = ref.bbox_ciou([[0, 0, 1, 1]], [[2, 0, 1, 1]])
    assert iou[0] == 0.0
    assert ciou[0] == pytest.approx(-4.0 / (9.0 + 1.0 + 1e-7), rel=1e-14)
    # frozen alpha is used verbatim
    ciou_f, _, alpha_f = ref.bbox_ciou([[0, 0, 1, 2]], [[0.1, 0, 2, 1]], alpha=[0.0])
    ciou_d, iou_d, _ = ref.bbox_ciou([[0, 0, 1, 2]], [[0.1, 0, 2, 1]])
    assert alpha_f[0] == 0.0 and ciou_f[0] > ciou_d[0]


def test_negative_ciou_clamped_objectness_target():
    # a prediction pushed far from the target gives CIoU < 0 -> objectness target 0
    p = _zeros()
    p[0][0, 0, 1, 1, 0] = 20.0  # pxy.x -> 1.5
    p[0][0, 0, 1, 1, 2:4] = -20.0  # tiny box -> no overlap
    d = ref.forward_details(p, TARGET1, ANCHORS1, STRIDES1, _hyp())
    assert d["iou"][0][0] < 0
    assert d["tobj"][0][0, 0, 1, 1] == 0.0


def test_duplicate_slot_last_row_wins():
    # two targets in the same cell with the same anchor; the later row's IoU is written
    t = np.array(
        [
            [0, 0, 1.5 / 4, 1.5 / 4, 1.0 / 4, 1.0 / 4],  # perfect match: iou ~ 1
            [0, 0, 1.5 / 4, 1.5 / 4, 2.0 / 4, 1.0 / 4],  # the 2x1 box
        ]
    )
    hyp = _hyp(obj_pw=2.0)
    d = ref.forward_details(_zeros(), t, ANCHORS1, STRIDES1, hyp)
    ciou = _ciou_pred_unit_box_vs_2x1()
    assert d["tobj"][0][0, 0, 1, 1] == pytest.approx(ciou, rel=1e-12)
    assert d["lobj"] == pytest.approx(4.0 * LOG2 * (15 + 1 + ciou) / 16, rel=1e-12)
    # swapping the rows flips the winner
    d2 = ref.forward_details(_zeros(), t[::-1], ANCHORS1, STRIDES1, hyp)
    assert d2["tobj"][0][0, 0, 1, 1] == pytest.approx(1 / (1 + 1e-7), rel=1e-12)


def test_grad_class_and_objectness_logits_analytic():
    rng = np.random.default_rng(0)
    p = [rng.normal(size=(2, 1, 4, 4, 8)) * 0.5]
    hyp = _hyp(cls=0.5, obj=0.7)
    grads = ref.compute_loss_grad(p, TARGET1, ANCHORS1, STRIDES1, hyp)
    g = grads[0]
    bs, n_cells = 2, 2 * 1 * 4 * 4

    # class logits at the (single) positive slot: cls * bs * (sigmoid - t) / (n * nc)
    x = p[0][0, 0, 1, 1, 5:]
    t = np.array([0.0, 1.0, 0.0])
    expected = 0.5 * bs * (1 / (1 + np.exp(-x)) - t) / (1 * 3)
    np.testing.assert_allclose(g[0, 0, 1, 1, 5:], expected, rtol=1e-6, atol=1e-9)

    # objectness logit at a background cell: obj * balance * bs * sigmoid / n_cells
    xo = p[0][1, 0, 2, 3, 4]
    assert g[1, 0, 2, 3, 4] == pytest.approx(0.7 * 4.0 * bs / (1 + np.exp(-xo)) / n_cells, rel=1e-6)

    # objectness logit at the positive cell: target is the (frozen) IoU
    d = ref.forward_details(p, TARGET1, ANCHORS1, STRIDES1, hyp)
    z = d["tobj"][0][0, 0, 1, 1]
    xp = p[0][0, 0, 1, 1, 4]
    assert g[0, 0, 1, 1, 4] == pytest.approx(0.7 * 4.0 * bs * (_sig(xp) - z) / n_cells, rel=1e-6)

    # class logits of cells without targets get no gradient
    assert np.all(g[1, ..., 5:] == 0.0)


def test_grad_box_logits_use_frozen_targets():
    rng = np.random.default_rng(1)
    p = [rng.normal(size=(1, 1, 4, 4, 8)) * 0.3]
    hyp = _hyp(box=1.0)
    g_frozen = ref.compute_loss_grad(p, TARGET1, ANCHORS1, STRIDES1, hyp)[0][0, 0, 1, 1, :4]

    # naive finite differences through the non-detached function differ
    def naive(k, h=1e-6):
        q = [p[0].copy()]
        q[0][0, 0, 1, 1, k] += h
        up = ref.compute_loss(q, TARGET1, ANCHORS1, STRIDES1, hyp)[0]
        q[0][0, 0, 1, 1, k] -= 2 * h
        down = ref.compute_loss(q, TARGET1, ANCHORS1, STRIDES1, hyp)[0]
        return (up - down) / (2 * h)

    g_naive = np.array([naive(k) for k in range(4)])
    assert np.all(np.isfinite(g_frozen))
    assert np.max(np.abs(g_frozen - g_naive)) > 1e-4

    # frozen gradient matches the derivative of (1 - CIoU) with alpha held fixed (pure box part)
    d = ref.forward_details(p, TARGET1, ANCHORS1, STRIDES1, hyp)
    alpha = d["frozen"]["alpha"][0]
    tbox, anch = d["tbox"][0], d["anch"][0]

    def box_loss(logits):
        pxy = 2 / (1 + np.exp(-logits[:2])) - 0.5
        pwh = (2 / (1 + np.exp(-logits[2:4]))) ** 2 * anch[0]
        ciou, _, _ = ref.bbox_ciou(np.concatenate([pxy, pwh])[None], tbox, alpha=alpha)
        return 1.0 - ciou[0]

    x0 = p[0][0, 0, 1, 1, :4]
    h = 1e-6
    g_box = np.array([(box_loss(x0 + h * e) - box_loss(x0 - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(g_frozen, g_box, rtol=1e-5, atol=1e-8)
