"""Numerical extremes: finite losses and gradients for extreme boxes and logits, under XLA, and in
mixed precision (float16 / bfloat16 models, float32 loss).

Complements ``tests/losses/test_presets.py`` (ordinary boxes, empty images, logits ±1e4, XLA) and
``tests/test_boxes.py`` (zero-area boxes in every IoU).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.losses import YoloLoss
from kyolo.models import build_model
from tests.helpers import head_shapes, nano_config, random_boxes, stack_targets

PIXEL = 1 / 64  # of the 64 px input
EXTREME_BOXES = {
    "one pixel": [0.5, 0.5, PIXEL, PIXEL],
    "sub-pixel": [0.3, 0.3, 1e-7, 1e-7],
    "whole image": [0.5, 0.5, 1.0, 1.0],
    "centre on the far corner": [1.0, 1.0, 0.2, 0.2],
    "centre on the near corner": [0.0, 0.0, 0.3, 0.3],
    "one pixel line": [0.5, 0.5, 1.0, PIXEL],
}
LOGITS = {"zeros": 0.0, "+1e4": 1e4, "-1e4 (zero-area predictions)": -1e4, "random": None}


def extreme_targets(cfg):
    """Batch of 2: image 0 holds every extreme box, image 1 is empty."""
    boxes = np.array(list(EXTREME_BOXES.values()), np.float32)
    classes = np.arange(len(boxes)) % cfg.num_classes
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int32))
    return stack_targets(cfg, [(boxes, classes), empty])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_extreme_boxes_and_logits_give_finite_losses_and_gradients(name):
    cfg = nano_config(name)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    logits = [tf.Variable(tf.zeros(shape)) for shape in head_shapes(cfg, 2)]
    y_true = extreme_targets(cfg)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            per_image = tf.add_n(
                [loss.call(y, p) for loss, y, p in zip(losses, y_true, logits, strict=True)]
            )
            total = tf.reduce_mean(per_image)
        return per_image, tape.gradient(total, logits)

    rng = np.random.default_rng(0)
    for label, value in LOGITS.items():
        for variable in logits:
            fill = rng.standard_normal(variable.shape) * 3 if value is None else value
            variable.assign(tf.cast(tf.broadcast_to(fill, variable.shape), tf.float32))
        per_image, grads = step()
        assert np.all(np.isfinite(per_image)) and np.all(per_image.numpy() >= 0), (label, per_image)
        assert all(np.all(np.isfinite(g)) for g in grads), label


MIXED = ("mixed_float16", "mixed_bfloat16")


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", MIXED, indirect=True)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_mixed_precision_fit_step_is_finite_with_a_float32_loss(policy, name):
    cfg = nano_config(name)
    keras.utils.set_random_seed(0)
    model = build_model("nano", cfg, width=4)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    # Eager steps: the same dtype handling (LossScaleOptimizer for float16), no trace per case.
    model.compile(keras.optimizers.SGD(1e-3), loss=losses, run_eagerly=True)
    rng = np.random.default_rng(0)
    y_true = stack_targets(cfg, [random_boxes(rng, n, cfg.num_classes) for n in (2, 0)])
    images = rng.random((2, 64, 64, 3)).astype(np.float32)
    outputs = model(images)
    # The body computes in the policy's dtype, the heads in float32 (kyolo.models), so that the
    # loss, decoding and NMS read float32 logits.
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].compute_dtype == policy.removeprefix("mixed_")
    assert outputs[0].dtype == "float32"
    assert losses[0](y_true[0], outputs[0]).dtype == tf.float32
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(images, y_true, return_dict=True)
    assert np.isfinite(logs["loss"]), logs
    after = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))


@pytest.mark.slow  # the loss under XLA is checked above and in tests/losses/test_presets.py
@pytest.mark.parametrize("name", ["yolov3", "yolov5"])
def test_jit_compiled_fit_step_matches_the_plain_one(name):
    cfg = nano_config(name)
    rng = np.random.default_rng(1)
    y_true = stack_targets(cfg, [random_boxes(rng, n, cfg.num_classes) for n in (3, 1)])
    images = rng.random((2, 64, 64, 3)).astype(np.float32)
    results = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = build_model("nano", cfg, width=4)
        model.compile(
            keras.optimizers.SGD(1e-2),
            loss=[YoloLoss(cfg, s) for s in range(cfg.num_scales)],
            jit_compile=jit,
        )
        results.append((model.train_on_batch(images, y_true)[0], model.get_weights()))
    (plain, plain_w), (xla, xla_w) = results
    assert np.isfinite(xla) and xla == pytest.approx(plain, rel=1e-4)
    for a, b in zip(xla_w, plain_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
