"""kyolo.boxes against the independent numpy reference and hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kyolo import boxes as kb
from references import boxes_np as ref

PAIR_FUNCS = ["iou", "giou", "diou", "ciou"]


def random_boxes(rng, n, zero_area_share=0.1):
    xy = rng.uniform(0, 10, (n, 2))
    wh = rng.uniform(0.1, 5, (n, 2))
    wh[rng.random(n) < zero_area_share, rng.integers(0, 2)] = 0.0
    return np.concatenate([xy, wh], axis=-1)


@pytest.mark.parametrize("name", PAIR_FUNCS)
def test_pair_functions_match_reference(name):
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 500), random_boxes(rng, 500)
    b[:50] = a[:50]  # identical pairs
    b[50:60, :2] = a[50:60, :2] + 100  # far apart
    got = getattr(kb, name)(tf.constant(a, tf.float64), tf.constant(b, tf.float64)).numpy()
    np.testing.assert_allclose(got, getattr(ref, name)(a, b), rtol=1e-9, atol=1e-12)


def test_pairwise_and_anchor_iou_match_reference():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    got = kb.pairwise_iou(tf.constant(a), tf.constant(b)).numpy()
    assert got.shape == (30, 20)
    np.testing.assert_allclose(got, ref.pairwise_iou(a, b), rtol=1e-9, atol=1e-12)
    wh, anchors = a[:, 2:], rng.uniform(1, 5, (9, 2))
    got = kb.anchor_wh_iou(tf.constant(wh), tf.constant(anchors)).numpy()
    np.testing.assert_allclose(got, ref.anchor_wh_iou(wh, anchors), rtol=1e-9, atol=1e-12)


def test_format_round_trip():
    rng = np.random.default_rng(3)
    a = random_boxes(rng, 100)
    xyxy = kb.xywh_to_xyxy(tf.constant(a)).numpy()
    np.testing.assert_allclose(xyxy, ref.xywh_to_xyxy(a))
    np.testing.assert_allclose(kb.xyxy_to_xywh(tf.constant(xyxy)).numpy(), a, atol=1e-12)


def test_hand_computed_values():
    # Two 2x2 boxes offset by 1 in x: intersection 1*2 = 2, union 4 + 4 - 2 = 6.
    a = tf.constant([[1.0, 1.0, 2.0, 2.0]])
    b = tf.constant([[2.0, 1.0, 2.0, 2.0]])
    assert kb.iou(a, b).numpy()[0] == pytest.approx(2 / 6)
    # Enclosing box 3x2 = 6 equals the union: GIoU = IoU.
    assert kb.giou(a, b).numpy()[0] == pytest.approx(2 / 6)
    # Centre distance² 1, enclosing diagonal² 3² + 2² = 13.
    assert kb.diou(a, b).numpy()[0] == pytest.approx(2 / 6 - 1 / 13)
    # Same aspect ratio: v = 0, CIoU = DIoU.
    assert kb.ciou(a, b).numpy()[0] == pytest.approx(2 / 6 - 1 / 13)
    # Disjoint 1x1 boxes at x = 0 and x = 3: enclosing 4x1 = 4, union 2: GIoU = 0 - 2/4.
    c = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    d = tf.constant([[3.0, 0.0, 1.0, 1.0]])
    assert kb.giou(c, d).numpy()[0] == pytest.approx(-0.5)
    # A 2x1 box inside a 2x2 box, same centre: IoU 1/2, v = 4/π² (atan(1) − atan(2))².
    e = tf.constant([[0.0, 0.0, 2.0, 1.0]])
    f = tf.constant([[0.0, 0.0, 2.0, 2.0]])
    v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(2.0)) ** 2
    alpha = v / ((1 - 0.5) + v)
    assert kb.ciou(e, f).numpy()[0] == pytest.approx(0.5 - alpha * v, rel=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.float32, tf.float64])
def test_dtype_preserved(dtype):
    a = tf.constant([[1.0, 1.0, 2.0, 2.0]], dtype)
    for name in PAIR_FUNCS:
        assert getattr(kb, name)(a, a).dtype == dtype
    assert kb.pairwise_iou(a, a).dtype == dtype
    assert kb.xywh_to_xyxy(a).dtype == dtype


@pytest.mark.parametrize("name", PAIR_FUNCS)
def test_zero_area_boxes_give_finite_values_and_gradients(name):
    a = tf.Variable([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    b = tf.constant([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        value = getattr(kb, name)(a, b)
    grad = tape.gradient(value, a)
    assert np.all(np.isfinite(value.numpy()))
    assert np.all(np.isfinite(grad.numpy()))
    # Two empty boxes at one point: IoU is defined as 0 there.
    assert value.numpy()[0] == pytest.approx(0.0)


def test_ciou_alpha_is_constant_for_the_gradient():
    a = tf.Variable([[1.1, 1.2, 2.0, 1.0]], dtype=tf.float64)  # no edges coincide: smooth here
    b = tf.constant([[1.5, 1.0, 1.0, 3.0]], tf.float64)
    with tf.GradientTape() as tape:
        value = kb.ciou(a, b)
    grad = tape.gradient(value, a).numpy()
    # Finite differences of IoU − ρ²/c² − α·v with α frozen at its value in the point x0.
    x0 = a.numpy()

    def v(x):
        return 4 / math.pi**2 * (math.atan(1.0 / 3.0) - math.atan(x[0, 2] / x[0, 3])) ** 2

    iou0 = ref.iou(x0, b.numpy())[0]
    alpha = v(x0) / ((1 - iou0) + v(x0))

    def frozen(x):
        return ref.diou(x, b.numpy())[0] - alpha * v(x)

    numeric = np.zeros(4)
    for i in range(4):
        step = np.zeros_like(x0)
        step[0, i] = 1e-6
        numeric[i] = (frozen(x0 + step) - frozen(x0 - step)) / 2e-6
    assert ref.ciou(x0, b.numpy())[0] == pytest.approx(frozen(x0))
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-8)
