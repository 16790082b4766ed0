"""kyolo.models.SyncBatchNormalization on one replica: plain BatchNorm's values and gradients.

The two-replica step is in tests/reliability/test_distributed.py (``sync_bn``), the two-worker
cluster in tests/distribute/test_cluster.py. Here the reference is Keras' plain BatchNorm in
float64; the control is Keras' ``synchronized=True`` layer, whose ``E[x²] − E[x]²`` variance
loses the gradient to cancellation when a channel's mean is large against its spread.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.models import SyncBatchNormalization
from kyolo.models.sync_bn import synchronized_moments

OFFSET = 100.0  # channel means up to 100 standard deviations away from 0


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 4, 4, 16)) + OFFSET * rng.uniform(-1, 1, 16)
    return x.astype(np.float32), rng.normal(size=x.shape)


def _gradients(layer, x, upstream, dtype):
    """Training-mode outputs and gradients of ``Σ out · upstream`` w.r.t. x, gamma and beta."""
    xt = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = layer(xt, training=True)
        loss = tf.reduce_sum(out * tf.constant(upstream, dtype))
    grads = tape.gradient(loss, [xt, *layer.trainable_variables])
    return out.numpy().astype(np.float64), [g.numpy().astype(np.float64) for g in grads]


def _error(values, reference):
    """Largest difference relative to each reference tensor's largest value."""
    pairs = zip(values, reference, strict=True)
    return max(np.abs(a - b).max() / np.abs(b).max() for a, b in pairs)


def test_moments_on_one_replica_are_the_batch_moments():
    x, _ = _batch()
    mean, variance = synchronized_moments(tf.constant(x), [0, 1, 2])
    assert mean.shape == variance.shape == (16,)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean((0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(variance, x.astype(np.float64).var((0, 1, 2)), rtol=1e-4)


def test_gradients_match_plain_batch_norm_where_keras_synchronized_cancels():
    x, upstream = _batch()
    reference = keras.layers.BatchNormalization(dtype="float64")
    out64, ref = _gradients(reference, x, upstream, "float64")
    out, grads = _gradients(SyncBatchNormalization(), x, upstream, "float32")
    _, plain = _gradients(keras.layers.BatchNormalization(), x, upstream, "float32")
    _, keras_sync = _gradients(
        keras.layers.BatchNormalization(synchronized=True), x, upstream, "float32"
    )
    np.testing.assert_allclose(out, out64, atol=1e-5)
    # Measured: 1.0e-5 for both kyolo's layer and plain BN (float32 rounding), 4.3e-4 for Keras'.
    assert _error(grads, ref) < 3e-5
    assert _error(grads, ref) <= _error(plain, ref) * 1.01
    assert _error(keras_sync, ref) > 1e-4


def test_config_round_trip_and_mask_refused():
    layer = SyncBatchNormalization(momentum=0.97, epsilon=1e-4, name="bn")
    config = layer.get_config()
    assert config["synchronized"] and config["momentum"] == 0.97
    clone = SyncBatchNormalization.from_config(config)
    assert isinstance(clone, SyncBatchNormalization) and clone.epsilon == 1e-4
    with pytest.raises(ValueError, match="bn: SyncBatchNormalization does not support masks"):
        layer(np.ones((2, 3, 4), np.float32), training=True, mask=np.ones((2, 3), bool))


def test_a_saved_synchronized_model_loads_in_a_fresh_process(tmp_path):
    from kyolo.models import build_model
    from kyolo.saving import save_model
    from tests.helpers import REPO, nano_config

    cfg = nano_config("yolov3", 3, 64)
    save_model(build_model("nano", cfg, width=4, sync_bn=True), tmp_path / "m.keras", cfg=cfg)
    code = (
        "import sys; from kyolo.saving import load_trained; "
        "print(sorted({type(la).__name__ for la in load_trained(sys.argv[1])[0].layers}))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", code, str(tmp_path / "m.keras")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'SyncBatchNormalization'" in result.stdout


def _keras_synchronized(model):
    """``model`` with Keras' ``BatchNormalization(synchronized=True)`` layers, same weights."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            config["synchronized"] = True
        return layer.__class__.from_config(config)

    synced = keras.models.clone_model(model, clone_function=clone)
    synced.set_weights(model.get_weights())
    return synced


@pytest.mark.slow
def test_nano_model_gradients_against_float64():
    """The figures of kyolo/models/sync_bn.py: nano at 64 px, 8 random images, one replica."""
    from kyolo.losses import YoloLoss
    from kyolo.models import build_model, synchronized_batch_norm
    from tests.helpers import nano_config, random_boxes, stack_targets

    cfg = nano_config("yolov3", 10, 64)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (8, 64, 64, 3))
    y_true = stack_targets(cfg, [random_boxes(rng, 3, 10) for _ in range(8)])
    losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]

    def gradients(model, dtype):
        with tf.GradientTape() as tape:
            out = model(tf.constant(images, dtype), training=True)
            loss = tf.add_n([f(y, o) for f, y, o in zip(losses, y_true, out, strict=True)])
        grads = tape.gradient(loss, model.trainable_variables)
        return [g.numpy().astype(np.float64) for g in grads]

    keras.utils.set_random_seed(0)
    plain = build_model("nano", cfg)
    found = {
        "plain": gradients(plain, "float32"),
        "kyolo": gradients(synchronized_batch_norm(plain), "float32"),
        "keras": gradients(_keras_synchronized(plain), "float32"),
    }
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        reference = build_model("nano", cfg)
    finally:
        keras.config.set_dtype_policy(previous)
    reference.set_weights(plain.get_weights())
    ref = gradients(reference, "float64")
    errors = {name: _error(grads, ref) for name, grads in found.items()}
    print({name: f"{error:.1e}" for name, error in errors.items()})  # 4.2e-6, 4.2e-6, 1.1e-2
    assert errors["kyolo"] < 3e-5 and errors["plain"] < 3e-5 and errors["keras"] > 1e-3
