"""YOLOv5 preset: ``kyolo.compat.yolov5.compute_loss`` and ``YoloLoss`` vs the NumPy ComputeLoss.

Golden values from references/yolov5_np.py (independent float64 re-implementation of
ultralytics/yolov5 ``utils/loss.py``); gradients from its frozen finite differences.
"""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.compat.yolov5 import compute_loss, yolov5_arguments, yolov5_config
from kyolo.config import YOLOV5
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from references import yolov5_np as ref
from references.cases import HYP, V5_CASES, run_compute_loss, slot_keys


def rel(got, want):
    return abs(got - want) / max(abs(want), 1e-12)


@pytest.mark.parametrize("name", list(V5_CASES))
def test_loss_items_and_gradient_match_compute_loss(name):
    (p, targets, anchors, strides), extra = V5_CASES[name]
    hyp = {**HYP, **extra}
    want_total, want_items = ref.compute_loss(p, targets, anchors, strides, hyp)
    total, items, grads = run_compute_loss(p, targets, anchors, strides, hyp)
    assert rel(total, want_total) < 1e-4
    for got, want in zip(items, want_items, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
    want_grads = ref.compute_loss_grad(p, targets, anchors, strides, hyp)
    flat = np.concatenate([g.ravel() for g in grads])
    want_flat = np.concatenate([g.ravel() for g in want_grads])
    assert np.linalg.norm(flat - want_flat) / np.linalg.norm(want_flat) < 1e-3
    if name == "single_class":
        assert items[2] == 0.0


def test_xla_compiled_loss_and_gradient_match_eager():
    (p, targets, anchors, strides), extra = V5_CASES["smoothing_focal"]
    hyp = {**HYP, **extra}
    variables = [tf.Variable(x, dtype=tf.float32) for x in p]

    @tf.function(jit_compile=True)
    def step(rows):
        with tf.GradientTape() as tape:
            loss, items = compute_loss(variables, rows, anchors, strides, hyp)
        return loss, items, tape.gradient(loss, variables)

    loss, items, grads = step(tf.constant(targets, tf.float32))
    eager_loss, eager_items, eager_grads = run_compute_loss(p, targets, anchors, strides, hyp)
    assert float(loss) == pytest.approx(eager_loss, rel=1e-5)
    np.testing.assert_allclose([float(i) for i in items], eager_items, rtol=1e-5)
    for g, e in zip(grads, eager_grads, strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-7)


def test_unknown_row_count_gives_the_same_loss_and_gradient():
    # Without a static row count compute_loss cannot bound the sparse rows: it encodes densely.
    (p, targets, anchors, strides), extra = V5_CASES["smoothing_focal"]
    hyp = {**HYP, **extra}
    variables = [tf.Variable(x, dtype=tf.float32) for x in p]

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    def step(rows):
        with tf.GradientTape() as tape:
            loss, _ = compute_loss(variables, rows, anchors, strides, hyp)
        return loss, tape.gradient(loss, variables)

    loss, grads = step(tf.constant(targets, tf.float32))
    eager_loss, _, eager_grads = run_compute_loss(p, targets, anchors, strides, hyp)
    assert float(loss) == pytest.approx(eager_loss, rel=1e-5)
    for g, e in zip(grads, eager_grads, strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-7)


def test_yolo_loss_on_dataset_targets_is_compute_loss_times_batch():
    # The training path: per-image encoding (tf.data), head layout, Keras' reduction per scale.
    (p, targets, anchors, strides), _ = V5_CASES["empty_image"]
    cfg = yolov5_config([x.shape for x in p], anchors, strides, HYP)
    batch = p[0].shape[0]
    per_image = [
        encode_targets(
            targets[targets[:, 0] == b, 2:].astype(np.float32),
            targets[targets[:, 0] == b, 1].astype(np.int32),
            cfg,
        )
        for b in range(batch)
    ]
    total = 0.0
    for scale, pi in enumerate(p):
        y_true = tf.stack([t[scale] for t in per_image])
        y_pred = np.transpose(pi, (0, 2, 3, 1, 4)).reshape(*y_true.shape[:3], -1)
        total += float(YoloLoss(cfg, scale)(y_true, y_pred))
    assert total == pytest.approx(ref.compute_loss(p, targets, anchors, strides, HYP)[0], rel=1e-4)


def test_shared_slot_keeps_the_later_target():
    # Two same-class boxes with one centre and anchor set share every slot. YOLOv5 averages lbox
    # over both rows; kyolo's dense target keeps the later box, so it scores the later row alone,
    # and lobj (last write wins in both) is YOLOv5's.
    (p, _, anchors, strides), _ = V5_CASES["three_scales"]
    rows = np.array([[0, 1, 0.4, 0.6, 0.3, 0.3], [0, 1, 0.4, 0.6, 0.5, 0.3]])
    rows = rows.astype(np.float32).astype(np.float64)
    shapes = [x.shape for x in p]
    first, second = (slot_keys(shapes, r, anchors, strides, 4.0) for r in (rows[:1], rows[1:]))
    assert first == second and sum(map(len, first)) > 1  # every slot is shared
    _, items, _ = run_compute_loss(p, rows, anchors, strides, HYP)
    _, both = ref.compute_loss(p, rows, anchors, strides, HYP)
    _, later = ref.compute_loss(p, rows[1:], anchors, strides, HYP)
    np.testing.assert_allclose(items, later, rtol=1e-4)
    assert items[1] == pytest.approx(both[1], rel=1e-4)
    assert abs(both[0] - later[0]) > 1e-3 * later[0]


def test_hand_computed_single_target():
    # 32x32 input, stride 8, one 8x8 anchor, 3 classes: the reference test's toy with every logit
    # 0. σ = 0.5 → pred box (0.5, 0.5, 1, 1) cells vs the target (0.5, 0.5, 2, 1): IoU 1/2,
    # ρ = 0, v = 4/π² (atan 2 − atan 1)², α = v / (v + 1/2); objectness target = CIoU.
    cfg = YOLOV5.replace(
        num_classes=3,
        input_size=(32, 32),
        anchors=((8, 8),),
        masks=((0,),),
        strides=(8,),
        loss=YOLOV5.loss.replace(balance=(4.0,)),
    )
    y_true = encode_targets(np.array([[1.5 / 4, 1.5 / 4, 0.5, 0.25]], np.float32), [1], cfg)[0]
    parts = YoloLoss(cfg, 0).components(y_true[None], np.zeros((1, 4, 4, 8), np.float32))
    v = 4 / np.pi**2 * (np.arctan(2.0) - np.arctan(1.0)) ** 2
    ciou = 0.5 - v * v / (v + 0.5)
    log2 = np.log(2.0)
    # BCE(0, z) = log 2 for any z; balance 4 on 16 slots; classes: mean of 3 BCEs = log 2.
    assert float(parts["box"][0]) == pytest.approx(0.05 * (1 - ciou), rel=1e-5)
    assert float(parts["obj"][0]) == pytest.approx(1.0 * 4.0 * log2, rel=1e-5)
    assert float(parts["cls"][0]) == pytest.approx(0.5 * log2, rel=1e-5)
    assert ciou == pytest.approx(
        ref.bbox_ciou([[0.5, 0.5, 1, 1]], [[0.5, 0.5, 2, 1]])[0][0], rel=1e-6
    )


def test_front_end_config_is_the_yolov5_preset():
    cfg = YOLOV5.replace(num_classes=7, input_size=(320, 256))
    shapes = [(2, 3, *cfg.grid_size(s), 12) for s in range(3)]
    assert yolov5_config(shapes, *yolov5_arguments(cfg)) == cfg
