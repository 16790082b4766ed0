"""kyolo.optim: optimizer settings, the ramped EMA against a NumPy reference, EMA with callbacks."""

import json
import math

import keras
import numpy as np
import pytest

from kyolo.callbacks import AtomicBackupAndRestore
from kyolo.optim import SGD, Adam, build_optimizer, cosine_schedule, ema_decay


def _ema_reference(weights, decay, ramp):
    """YOLOv5 ModelEMA.update over the weights after each update (the first update copies)."""
    average = np.array(weights[0], np.float64)
    out = [average.copy()]
    for updates, w in enumerate(weights[1:], start=2):
        d = decay * (1 - math.exp(-updates / ramp)) if ramp else decay
        average = d * average + (1 - d) * np.asarray(w, np.float64)
        out.append(average.copy())
    return out


def test_ema_decay_is_yolov5s():
    assert float(ema_decay(1, 0.9999, 2000.0)) == pytest.approx(
        0.9999 * (1 - math.exp(-1 / 2000)), rel=1e-5
    )
    assert float(ema_decay(2000, 0.9999, 2000.0)) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert float(ema_decay(10**6, 0.9999, 2000.0)) == pytest.approx(0.9999)
    assert ema_decay(5, 0.99, None) == 0.99


@pytest.mark.parametrize("ramp", [3.0, None])
def test_ema_update_matches_numpy_reference(ramp):
    variable = keras.Variable(np.array([1.0, -2.0, 0.5], np.float32))
    optimizer = SGD(0.1, momentum=0.9, nesterov=True, use_ema=True, ema_momentum=0.8, ema_ramp=ramp)
    gradients = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    weights, averages = [], []
    for g in gradients:
        optimizer.apply_gradients([(g, variable)])
        weights.append(variable.numpy().copy())
        averages.append(optimizer._model_variables_moving_average[0].numpy().copy())
    np.testing.assert_allclose(averages, _ema_reference(weights, 0.8, ramp), rtol=1e-5, atol=1e-6)
    # The ramp matters early: with ramp 3 the third average is far from the constant-decay one.
    assert not np.allclose(
        _ema_reference(weights, 0.8, 3.0)[2], _ema_reference(weights, 0.8, None)[2]
    )


def _tiny_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )


def test_build_optimizer_settings():
    sgd = build_optimizer("sgd", weight_decay=5e-4)
    assert isinstance(sgd, SGD) and sgd.nesterov and sgd.momentum == 0.937
    assert float(sgd.learning_rate) == pytest.approx(0.01) and sgd.weight_decay == 5e-4
    assert not sgd.use_ema
    adam = build_optimizer("adam", 1e-3, momentum=0.937, ema=True)
    assert isinstance(adam, Adam) and adam.beta_1 == 0.937 and adam.use_ema
    assert adam.ema_momentum == 0.9999 and adam.ema_ramp == 2000.0 and adam.weight_decay is None
    assert build_optimizer("adam").beta_1 == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        build_optimizer("rmsprop")
    with pytest.raises(ValueError, match="ema_ramp must be > 0"):
        build_optimizer("sgd", ema=True, ema_ramp=0.0)


def test_weight_decay_spares_biases_and_batchnorm():
    model = _tiny_model()
    optimizer = build_optimizer("sgd", 0.5, weight_decay=0.1)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer.apply_gradients(
        [(np.zeros(v.shape, np.float32), v) for v in model.trainable_variables]
    )
    for v in model.trainable_variables:
        # Decoupled decay with a zero gradient: w ← w − lr · wd · w = 0.95 w on kernels only.
        factor = 0.95 if v.name == "kernel" else 1.0
        np.testing.assert_allclose(v.numpy(), factor * before[v.path], rtol=1e-6, err_msg=v.path)


def test_optimizer_config_round_trip():
    optimizer = build_optimizer(
        "sgd", cosine_schedule(0.01, 100, 10), weight_decay=1e-3, ema=True, ema_ramp=50.0
    )
    again = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer)))
    )
    assert type(again) is SGD
    for key in ("ema_ramp", "no_decay", "ema_momentum", "use_ema", "momentum", "nesterov"):
        assert getattr(again, key) == getattr(optimizer, key), key
    schedule = again._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert float(schedule(10)) == pytest.approx(0.01) and float(schedule(0)) == 0.0


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated crash")


class _Record(keras.callbacks.Callback):
    """Weights the other callbacks see at each epoch end, and the last val_loss."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([v.numpy().copy() for v in self.model.trainable_variables])
        self.val_loss = logs["val_loss"]


def _fit(tmp_path, name, extra=(), swap_aware=True, restore_from=None):
    x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [-1.0], [0.5], [2.0]], np.float32)
    model = _tiny_model()
    model.compile(build_optimizer("sgd", 0.05, ema=True, ema_decay=0.9, ema_ramp=2.0), loss="mse")
    swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    record = _Record()
    backup = AtomicBackupAndRestore(
        str(tmp_path / name),
        swap_ema=swap if swap_aware else None,
        restore_dir=str(tmp_path / restore_from) if restore_from else None,
    )
    model.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, validation_data=(x, y), verbose=0,
        callbacks=[swap, record, backup, *extra],
    )  # fmt: skip
    return model, record, (x, y)


def test_ema_weights_reach_validation_callbacks_and_the_final_model(tmp_path):
    model, record, (x, y) = _fit(tmp_path, "run")
    optimizer = model.optimizer
    # After fit the model holds the EMA weights that the epoch-end callbacks saw last.
    for v, w in zip(model.trainable_variables, record.weights[-1], strict=True):
        np.testing.assert_array_equal(v.numpy(), w)
    # val_loss was computed with them (BatchNorm's moving statistics are not averaged).
    assert model.evaluate(x, y, verbose=0) == pytest.approx(record.val_loss, rel=1e-5)
    assert int(optimizer.iterations) == 12


def test_backup_restores_raw_weights_under_ema(tmp_path):
    straight, _, data = _fit(tmp_path, "straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path, "resumed", extra=[_Crash()])
    resumed, _, _ = _fit(tmp_path, "resumed")
    for a, b in zip(straight.trainable_variables, resumed.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    # The backup holds EMA weights in the model: restoring it without the swap callback fails.
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path, "unaware", extra=[_Crash()])
    with pytest.raises(ValueError, match="pass the run's SwapEMAWeights"):
        _fit(tmp_path, "unaware", swap_aware=False)


def test_backup_restores_from_another_folder(tmp_path):
    """A multi-worker run's non-chief worker: backs up into its own folder, restores the chief's."""
    straight, _, _ = _fit(tmp_path, "straight")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _fit(tmp_path, "chief", extra=[_Crash()])
    resumed, record, _ = _fit(tmp_path, "worker", restore_from="chief")
    assert len(record.weights) == 1  # epochs 1-2 restored from the chief's backup, 3 trained
    assert int(resumed.optimizer.iterations) == 12
    for a, b in zip(straight.trainable_variables, resumed.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "worker").exists()  # removed at the end, as Keras' own backup
    assert (tmp_path / "chief" / "training_metadata.json").is_file()  # the chief's: untouched
