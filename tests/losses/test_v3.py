"""YoloLoss with keras-yolo3 semantics: parity, toy cases, gradients, extremes, serialization."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo import YOLOV3, YOLOV3_TINY
from kyolo.compat import keras_yolo3 as k3
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from kyolo.metrics import YoloLossComponents
from references import keras_yolo3_np as ref
from references.cases import ANCHORS, TINY_ANCHORS, make_v3_case, random_true_boxes
from tests.helpers import TOY

REF_NAMES = {"xy": "xy", "wh": "wh", "obj": "confidence", "cls": "class"}
LOG2 = math.log(2.0)


@pytest.mark.parametrize(
    "shape, anchors, counts",
    [
        ((416, 416), ANCHORS, [3, 0, 10, 6]),
        ((320, 608), ANCHORS, [0, 12, 2]),
        ((256, 192), TINY_ANCHORS, [5, 0, 12]),
    ],
)
def test_total_matches_keras_yolo3_eager_and_xla(shape, anchors, counts):
    outputs, y_true = make_v3_case(sum(shape), shape, anchors, counts)
    want = ref.yolo_loss(outputs, y_true, anchors, 80)
    eager = float(k3.yolo_loss([*outputs, *y_true], anchors, 80))

    @tf.function(jit_compile=True)
    def xla(*args):
        return k3.yolo_loss(list(args), anchors, 80)

    assert eager == pytest.approx(want, rel=1e-5)
    assert float(xla(*outputs, *y_true)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("ignore_thresh", [0.3, 0.5, 0.7])
def test_components_match_keras_yolo3(ignore_thresh):
    # Large wh logits spread the predictions so that many negatives cross the ignore threshold.
    outputs, y_true = make_v3_case(7, (416, 416), ANCHORS, [4, 9], num_classes=5)
    want = ref.yolo_loss_components(outputs, y_true, ANCHORS, 5, ignore_thresh)
    cfg = k3.keras_yolo3_config(ANCHORS, 5, (416, 416))
    for scale in range(3):
        loss = YoloLoss(cfg.with_loss(ignore_thresh=ignore_thresh), scale)
        parts = loss.components(y_true[scale], outputs[scale])
        for key, values in parts.items():
            assert values.shape == (2,)
            got = float(tf.reduce_mean(values))
            assert got == pytest.approx(want[(scale, REF_NAMES[key])], rel=1e-5, abs=1e-6)


def toy_target(box):
    return encode_targets(np.array([box], np.float32), [0], TOY)[0][None]


def test_toy_case_by_hand():
    # Box centre (0.3, 0.25), size 0.5x0.5 → cell (0, 0). box_loss_scale = 2 − 0.25 = 1.75.
    y_true = toy_target([0.3, 0.25, 0.5, 0.5])
    logits = np.zeros((1, 2, 2, 6), np.float32)
    logits[..., 2:4] = 1.0  # wh target is log(0.5 / 0.5) = 0: wh = 1.75 · ½ · (1² + 1²)
    # With t_wh = 1 the predictions are 0.5e wide. The cell (1, 0) box, centre (0.75, 0.25):
    # overlap x [0.75 − 0.25e, 0.55] · y 0.5, against the truth's 0.25 area.
    half = 0.25 * math.e
    inter = (0.55 - (0.75 - half)) * 0.5
    iou_10 = inter / ((2 * half) ** 2 + 0.25 - inter)
    # Cell (0, 1) (centre y 0.75) and (1, 1) overlap it less than (1, 0) does; pick a threshold
    # just above iou_10 → all three negatives count, just below → (1, 0) is ignored.
    xy, wh, cls = 1.75 * 2 * LOG2, 1.75 * 0.5 * 2, LOG2

    def total(thresh):
        return float(YoloLoss(TOY.with_loss(ignore_thresh=thresh), 0)(y_true, logits))

    # 0.4796 · 0.5 = 0.2398 over 1.3591² + 0.25 − 0.2398 = 1.8574.
    assert iou_10 == pytest.approx(0.2398 / 1.8574, abs=1e-4)
    assert total(iou_10 + 1e-3) == pytest.approx(xy + wh + 4 * LOG2 + cls, rel=1e-6)
    # Cell (0, 1) box: overlap x [0.3 − 0.25, 0.25 + half] ∩ ..., y [0.75 − half, 0.5].
    inter_01 = (min(0.55, 0.25 + half) - max(0.05, 0.25 - half)) * (0.5 - (0.75 - half))
    iou_01 = inter_01 / ((2 * half) ** 2 + 0.25 - inter_01)
    assert iou_01 < iou_10
    assert total(iou_10 - 1e-3) == pytest.approx(xy + wh + 3 * LOG2 + cls, rel=1e-6)


def test_toy_empty_image_counts_every_negative():
    y_true = toy_target([0.0, 0.0, 0.0, 0.0])  # padding only
    logits = np.zeros((1, 2, 2, 6), np.float32)
    assert float(YoloLoss(TOY, 0)(y_true, logits)) == pytest.approx(4 * LOG2, rel=1e-6)


def test_gradient_matches_finite_differences_of_reference():
    rng = np.random.default_rng(3)
    true_boxes = random_true_boxes(rng, [3, 2], 64, 64, num_classes=3, slots=4)
    y_true = ref.preprocess_true_boxes(true_boxes, (64, 64), TINY_ANCHORS, 3)
    outputs = [rng.standard_normal((2, *y.shape[1:3], 24)) for y in y_true]
    variables = [tf.Variable(o, dtype=tf.float32) for o in outputs]
    with tf.GradientTape() as tape:
        loss = k3.yolo_loss([*variables, *y_true], TINY_ANCHORS, 3)
    grads = [g.numpy() for g in tape.gradient(loss, variables)]
    step = 1e-4
    for scale, out in enumerate(outputs):
        numeric = np.zeros_like(out)
        for index in np.ndindex(out.shape):
            plus, minus = [o.copy() for o in outputs], [o.copy() for o in outputs]
            plus[scale][index] += step
            minus[scale][index] -= step
            numeric[index] = (
                ref.yolo_loss(plus, y_true, TINY_ANCHORS, 3)
                - ref.yolo_loss(minus, y_true, TINY_ANCHORS, 3)
            ) / (2 * step)
        err = np.linalg.norm(grads[scale] - numeric) / np.linalg.norm(numeric)
        assert err < 1e-4


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("value", [1e4, -1e4])
def test_extreme_logits_and_empty_batches_stay_finite(jit, value):
    cfg = YOLOV3.replace(num_classes=4, input_size=(64, 96))
    full = encode_targets(np.array([[0.5, 0.5, 0.3, 0.4]], np.float32), [2], cfg)
    empty = encode_targets(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), cfg)
    for targets in (full, empty):
        for scale in range(3):
            y_true = tf.stack([targets[scale], targets[scale]])
            logits = tf.Variable(tf.fill([2, *y_true.shape[1:3], 27], value))
            loss_fn = YoloLoss(cfg, scale)

            @tf.function(jit_compile=jit)
            def step(y_true=y_true, logits=logits, loss_fn=loss_fn):
                with tf.GradientTape() as tape:
                    loss = loss_fn(y_true, logits)
                return loss, tape.gradient(loss, logits)

            loss, grad = step()
            assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad.numpy()))


def test_image_mode_ignores_against_boxes_of_every_scale():
    # A big box (scale 0) and a small one (scale 2): in "image" mode, scale-2 predictions that
    # cover the big box are ignored; in "scale" mode they are not.
    cfg = YOLOV3.replace(num_classes=2, input_size=(128, 128), max_boxes=4)
    image_cfg = cfg.replace(ignore_against="image")
    boxes = np.array([[0.5, 0.5, 0.9, 0.9], [0.1, 0.1, 0.06, 0.06]], np.float32)
    logits = np.zeros((1, 16, 16, 21), np.float32)
    # Every scale-2 prediction becomes a 0.9x0.9 box: exp(t) · anchor / 128 = 0.9.
    for slot, (aw, ah) in enumerate(cfg.scale_anchors(2)):
        logits[..., slot * 7 + 2] = math.log(0.9 * 128 / aw)
        logits[..., slot * 7 + 3] = math.log(0.9 * 128 / ah)
    scale_target = encode_targets(boxes, [0, 1], cfg)[2][None]
    image_target = encode_targets(boxes, [0, 1], image_cfg)[2][None]
    scale_obj = YoloLoss(cfg, 2).components(scale_target, logits)["obj"]
    image_obj = YoloLoss(image_cfg, 2).components(image_target, logits)["obj"]
    # Independent count: decoded boxes vs both ground truths with the reference IoU.
    grid, _, xy, wh = ref.yolo_head(logits, np.array(cfg.scale_anchors(2)), 2, (128, 128))
    pred = np.concatenate([xy, wh], -1).reshape(-1, 4)
    best_all = ref.pairwise_iou(pred, boxes.astype(np.float64)).max(-1)
    best_small = ref.pairwise_iou(pred, boxes[1:].astype(np.float64)).max(-1)
    positive = scale_target.numpy().reshape(-1, 7)[:, 4] > 0
    assert positive.sum() == 1
    assert float(scale_obj[0]) == pytest.approx(LOG2 * (1 + np.sum((best_small < 0.5)[~positive])))
    assert float(image_obj[0]) == pytest.approx(LOG2 * (1 + np.sum((best_all < 0.5)[~positive])))
    assert float(image_obj[0]) < float(scale_obj[0])


def test_get_config_round_trip_keeps_every_argument():
    cfg = YOLOV3.replace(num_classes=7, input_size=(256, 320), max_boxes=33, ignore_against="image")
    cfg = cfg.with_loss(ignore_thresh=0.61)
    loss = YoloLoss(cfg, 1, reduction="sum", name="custom")
    clone = YoloLoss.from_config(loss.get_config())
    assert clone.cfg == cfg
    assert (clone.scale, clone.reduction, clone.name) == (1, "sum", "custom")
    assert clone.get_config() == loss.get_config()


def small_model(cfg):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, strides=8, padding="same", activation="relu")(inputs)
    depth = cfg.anchors_per_scale * (5 + cfg.num_classes)
    coarse = keras.layers.Conv2D(depth, 3, strides=2, padding="same", name="scale_0")(x)
    fine = keras.layers.Conv2D(depth, 1, name="scale_1")(x)
    return keras.Model(inputs, [coarse, fine])


def test_compiled_model_saves_and_reloads_with_safe_mode(tmp_path):
    cfg = YOLOV3_TINY.replace(num_classes=3, input_size=(64, 64), strides=(16, 8))
    model = small_model(cfg)
    losses = [YoloLoss(cfg, s) for s in range(2)]
    model.compile(
        optimizer="adam", loss=losses, metrics=[[YoloLossComponents(loss)] for loss in losses]
    )
    rng = np.random.default_rng(0)
    images = rng.random((4, 64, 64, 3)).astype(np.float32)
    per_image = [
        encode_targets(np.array([[0.4, 0.5, 0.3, 0.2]], np.float32), [i % 3], cfg) for i in range(4)
    ]
    targets = [np.stack([t[s] for t in per_image]) for s in range(2)]
    history = model.fit(images, targets, epochs=1, batch_size=4, verbose=0)
    logged = history.history
    parts = sum(logged[f"s{s}_{k}"][0] for s in range(2) for k in ("xy", "wh", "obj", "cls"))
    assert parts == pytest.approx(logged["loss"][0], rel=1e-4)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert [type(loss) for loss in reloaded.loss] == [YoloLoss, YoloLoss]
    assert reloaded.loss[1].cfg == cfg
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0)[1], model.predict(images, verbose=0)[1]
    )
    before = model.evaluate(images, targets, verbose=0, return_dict=True)["loss"]
    after = reloaded.evaluate(images, targets, verbose=0, return_dict=True)["loss"]
    assert after == pytest.approx(before, rel=1e-5)
