"""Focal loss (against its formula and Keras) and SSD-style hard-negative mining."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import LossConfig
from kyolo.encode import encode_targets
from kyolo.losses import YoloLoss
from kyolo.losses.ohem import hard_negatives
from kyolo.losses.scores import focal_factor, sigmoid_focal_loss
from tests.helpers import TOY


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_focal_factor_by_formula():
    # z = 1: α (1 − p)^γ; z = 0: (1 − α) p^γ; soft z = 0.3 at x = 0: p_t = 0.5,
    # α_t = 0.3 · 0.25 + 0.7 · 0.75.
    got = focal_factor(tf.constant([1.0, 0.0, 0.3]), tf.constant([0.7, 0.7, 0.0]), 1.5).numpy()
    want = [0.25 * (1 - sig(0.7)) ** 1.5, 0.75 * sig(0.7) ** 1.5, 0.6 * 0.5**1.5]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sigmoid_focal_loss_equals_keras_binary_focal_crossentropy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (4, 7)).astype(np.float32)
    logits = (3 * rng.standard_normal((4, 7))).astype(np.float32)
    keras_loss = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True, reduction=None
    )
    want = keras_loss(labels, logits).numpy()
    got = tf.reduce_mean(sigmoid_focal_loss(labels, logits), axis=-1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.5, 1.5, 2.0])
def test_focal_loss_is_finite_at_extreme_logits(gamma):
    logits = tf.Variable([1e4, -1e4, 1e4, -1e4])
    labels = tf.constant([1.0, 1.0, 0.0, 0.3])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(sigmoid_focal_loss(labels, logits, gamma, pos_weight=2.0))
    grad = tape.gradient(loss, logits).numpy()
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(grad))
    # A confident correct logit contributes nothing; a confident wrong one ~ α_t · |x|.
    assert float(loss) == pytest.approx(
        2.0 * 0.25 * 1e4 + 0.75 * 1e4 + 0.3 * 2.0 * 0.25 * 1e4, rel=0.1
    )


def test_hard_negatives_picks_the_top_ratio_times_positives():
    loss = tf.constant([[0.1, 0.9, 0.5, 0.7, 0.3, 0.8], [0.4, 0.2, 0.6, 0.1, 0.9, 0.5]])
    eligible = tf.constant([[True, False, True, True, True, True], [True] * 6])
    picked = hard_negatives(loss, eligible, tf.constant([1.0, 0.0]), 3.0).numpy()
    # Image 0: one positive → 3 negatives among the eligible: 0.8, 0.7, 0.5 (0.9 is not eligible).
    np.testing.assert_array_equal(picked, [[0, 0, 1, 1, 0, 1], [0] * 6])


def test_ohem_in_yolo_loss_trains_positive_and_hardest_negatives_only():
    # 4x4 grid, one anchor, one box: gradients reach the objectness logit of the positive and of
    # the 3 negatives with the largest loss, i.e. the largest logits (BCE(0, x) grows with x).
    cfg = TOY.replace(
        num_classes=2,
        anchors=((16, 16),),
        strides=(16,),
        loss=LossConfig(ohem_ratio=3.0, ignore_thresh=None),
    )
    y_true = encode_targets(np.array([[0.3, 0.6, 0.25, 0.25]], np.float32), [1], cfg)[0][None]
    obj = np.random.default_rng(1).permutation(16).astype(np.float32).reshape(4, 4) - 8
    logits = np.zeros((1, 4, 4, 7), np.float32)
    logits[0, ..., 4] = obj
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = YoloLoss(cfg, 0)(y_true, variable)
    trained = np.argwhere(tape.gradient(loss, variable).numpy()[0, ..., 4] != 0).tolist()
    positive = [2, 1]  # row floor(0.6 · 4), column floor(0.3 · 4)
    negatives = sorted(np.argwhere(obj > -99).tolist(), key=lambda rc: -obj[tuple(rc)])
    hardest = [rc for rc in negatives if rc != positive][:3]
    assert sorted(trained) == sorted([positive, *hardest])
