"""Every preset: finite losses and gradients (empty images, logits ±1e4, XLA), serialization."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.losses import YoloLoss
from kyolo.metrics import YoloLossComponents
from tests.helpers import batch_targets, head_shapes, small


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_finite_loss_and_gradients_on_empty_images_extreme_logits_and_xla(name):
    cfg = small(name)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    logits = [tf.Variable(tf.zeros(shape)) for shape in head_shapes(cfg)]

    def step(y_true):
        with tf.GradientTape() as tape:
            total = tf.add_n(
                [loss(y, p) for loss, y, p in zip(losses, y_true, logits, strict=True)]
            )
        return total, tape.gradient(total, logits)

    compiled = tf.function(step, jit_compile=True)
    rng = np.random.default_rng(0)
    for y_true in (batch_targets(cfg), batch_targets(cfg, with_boxes=False)):
        for value in (1e4, -1e4, None):
            for variable in logits:
                fill = rng.standard_normal(variable.shape) if value is None else value
                variable.assign(tf.cast(tf.broadcast_to(fill, variable.shape), tf.float32))
            eager = step(y_true)
            xla = compiled(y_true)
            for total, grads in (eager, xla):
                assert np.isfinite(total.numpy()), (name, value)
                assert all(np.all(np.isfinite(g.numpy())) for g in grads), (name, value)
            assert float(xla[0]) == pytest.approx(float(eager[0]), rel=1e-4)


def tiny_model(cfg):
    inputs = keras.Input((None, None, 3))
    depth = cfg.anchors_per_scale * (5 + cfg.num_classes)
    outputs = [
        keras.layers.Conv2D(depth, 1, strides=stride, name=f"scale_{s}")(inputs)
        for s, stride in enumerate(cfg.strides)
    ]
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_get_config_round_trip_and_safe_mode_reload(name, tmp_path):
    cfg = small(name)
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
    for loss in losses:
        config = json.loads(json.dumps(loss.get_config()))
        clone = YoloLoss.from_config(config)
        assert clone.cfg == cfg and clone.get_config() == loss.get_config()
    model = tiny_model(cfg)
    model.compile(optimizer="sgd", loss=losses)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(1).random((2, 64, 64, 3)).astype(np.float32)
    y_pred = model(images)
    for scale, (loss, again) in enumerate(zip(losses, reloaded.loss, strict=True)):
        assert isinstance(again, YoloLoss) and again.cfg == cfg
        y_true = batch_targets(cfg)[scale]
        assert float(again(y_true, y_pred[scale])) == pytest.approx(
            float(loss(y_true, y_pred[scale]))
        )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_component_metric_sums_to_the_loss(name):
    cfg = small(name)
    loss = YoloLoss(cfg, 0)
    y_true = batch_targets(cfg)[0]
    y_pred = np.random.default_rng(2).standard_normal(head_shapes(cfg)[0]).astype(np.float32)
    metric = YoloLossComponents(loss)
    metric.update_state(y_true, y_pred)
    result = metric.result()
    assert sorted(result) == sorted(f"s0_{key}" for key in loss.component_names)
    assert sum(float(v) for v in result.values()) == pytest.approx(
        float(loss(y_true, y_pred)), rel=1e-5
    )
