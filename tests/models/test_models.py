"""kyolo.models: keras-yolo3 parity by parameter count, output contract, priors, serialization."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import YOLOV3, YOLOV3_TINY, YoloConfig
from kyolo.models import SyncBatchNormalization, build_model, nano, yolov3, yolov3_tiny

RECT = (96, 160)  # (H, W), a multiple of 32 in both directions and not square

NANO_CONFIGS = {
    (16, 8): YoloConfig(
        num_classes=10, input_size=(128, 160), masks=((3, 4, 5), (0, 1, 2)), strides=(16, 8)
    ),
    (32, 16): YoloConfig(
        num_classes=10, input_size=(128, 160), masks=((3, 4, 5), (0, 1, 2)), strides=(32, 16)
    ),
    (32, 16, 8): YoloConfig(num_classes=10, input_size=(128, 160)),
}


# Independent parameter counts, written from qqwweee/keras-yolo3 yolo3/model.py.
def _conv_bn(cin, cout, k):
    """DarknetConv2D_BN_Leaky: kernel (no bias) + BN gamma, beta, moving mean, moving variance."""
    return k * k * cin * cout + 4 * cout


def _keras_yolo3_yolo_body_params(num_classes):
    out = 3 * (5 + num_classes)
    n = _conv_bn(3, 32, 3)
    cin = 32
    for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
        n += _conv_bn(cin, filters, 3)
        n += blocks * (_conv_bn(filters, filters // 2, 1) + _conv_bn(filters // 2, filters, 3))
        cin = filters

    def make_last_layers(cin, nf):
        convs = _conv_bn(cin, nf, 1) + 2 * (_conv_bn(nf, 2 * nf, 3) + _conv_bn(2 * nf, nf, 1))
        return convs + _conv_bn(nf, 2 * nf, 3) + (2 * nf * out + out)

    n += make_last_layers(1024, 512)
    n += _conv_bn(512, 256, 1) + make_last_layers(256 + 512, 256)
    n += _conv_bn(256, 128, 1) + make_last_layers(128 + 256, 128)
    return n


def _keras_yolo3_tiny_body_params(num_classes):
    out = 3 * (5 + num_classes)
    widths = (3, 16, 32, 64, 128, 256, 512, 1024)
    n = sum(_conv_bn(cin, cout, 3) for cin, cout in zip(widths[:-1], widths[1:], strict=True))
    n += _conv_bn(1024, 256, 1)
    n += _conv_bn(256, 512, 3) + 512 * out + out
    n += _conv_bn(256, 128, 1) + _conv_bn(128 + 256, 256, 3) + 256 * out + out
    return n


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _bias(model, scale, cfg):
    bias = model.get_layer(f"scale_{scale}").bias.numpy()
    return bias.reshape(cfg.anchors_per_scale, 5 + cfg.num_classes)


def _images(batch=2, size=RECT, seed=0):
    return np.random.default_rng(seed).uniform(size=(batch, *size, 3)).astype("float32")


@pytest.fixture(scope="module")
def v3():
    return yolov3(YOLOV3)


@pytest.fixture(scope="module")
def tiny():
    return yolov3_tiny(YOLOV3_TINY)


def test_yolov3_param_count_matches_keras_yolo3(v3):
    # keras-yolo3 yolo_body(Input((None, None, 3)), 3, 80).summary() totals.
    assert _keras_yolo3_yolo_body_params(80) == 62_001_757
    assert v3.count_params() == 62_001_757
    assert _count(v3.trainable_weights) == 61_949_149
    assert _count(v3.non_trainable_weights) == 52_608


def test_yolov3_layer_indices_match_keras_yolo3(v3):
    # keras-yolo3 taps darknet.layers[92] / [152] for the skips and freezes the first 185 layers
    # (Darknet-53) in train.py; same layers, same order here.
    assert len(v3.layers) == 252
    assert v3.layers[92].name == "stage3_block8_add"
    assert v3.layers[152].name == "stage4_block8_add"
    assert v3.layers[184].name == "stage5_block4_add"
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in v3.layers) == 75


def test_yolov3_tiny_param_count_matches_keras_yolo3(tiny):
    assert _keras_yolo3_tiny_body_params(80) == 8_858_734
    assert tiny.count_params() == 8_858_734
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in tiny.layers) == 13


def test_keras_yolo3_weight_decay(v3, tiny):
    # keras-yolo3 DarknetConv2D puts l2(5e-4) on every kernel, the output convs included.
    for model, convs in ((v3, 75), (tiny, 13)):
        assert len(model.losses) == convs
    assert yolov3_tiny(YOLOV3_TINY, weight_decay=0.0).losses == []


@pytest.mark.parametrize("strides", list(NANO_CONFIGS))
def test_nano_is_small(strides):
    model = nano(NANO_CONFIGS[strides])
    assert 100_000 <= model.count_params() <= 400_000
    assert model.losses == []


def _assert_outputs(model, cfg, size=RECT):
    h, w = size
    channels = cfg.anchors_per_scale * (5 + cfg.num_classes)
    assert model.input.shape == (None, None, None, 3)
    assert model.output_names == [f"scale_{s}" for s in range(cfg.num_scales)]
    outputs = model.predict(_images(size=size), verbose=0)
    assert [o.shape for o in outputs] == [
        (2, h // stride, w // stride, channels) for stride in cfg.strides
    ]
    assert all(np.isfinite(o).all() for o in outputs)


def test_yolov3_outputs(v3):
    _assert_outputs(v3, YOLOV3)


def test_yolov3_tiny_outputs(tiny):
    _assert_outputs(tiny, YOLOV3_TINY)


@pytest.mark.parametrize("strides", list(NANO_CONFIGS))
def test_nano_outputs(strides):
    cfg = NANO_CONFIGS[strides]
    _assert_outputs(nano(cfg), cfg)
    _assert_outputs(nano(cfg, width=8), cfg, size=(64, 32))


@pytest.mark.parametrize("name", ["yolov3", "yolov3_tiny", "nano"])
def test_wrong_strides_raise(name):
    cfg = YoloConfig(num_classes=3, input_size=(64, 64), masks=((0,),), strides=(64,))
    with pytest.raises(ValueError, match=r"strides .*got cfg.strides=\(64,\)"):
        build_model(name, cfg)


def test_build_model_dispatch():
    cfg = NANO_CONFIGS[(32, 16)]
    model = build_model("nano", cfg, width=8)
    assert model.name == "nano"
    assert model.count_params() < nano(cfg).count_params()
    assert build_model("yolov3_tiny", YOLOV3_TINY).count_params() == 8_858_734


def test_unknown_model_name():
    with pytest.raises(ValueError, match="'yolov4'.*nano, yolov3, yolov3_tiny"):
        build_model("yolov4", YOLOV3)


def test_nano_prior_bias():
    cfg = NANO_CONFIGS[(32, 16, 8)]  # 128 x 160 input, C = 10
    model = nano(cfg)
    # YOLOv5 priors: obj = log(8 / cells), cls = log(0.6 / (C - 0.99)), box terms 0.
    cells = {0: 4 * 5, 1: 8 * 10, 2: 16 * 20}
    for scale, n in cells.items():
        bias = _bias(model, scale, cfg)
        assert bias.shape == (3, 15)
        np.testing.assert_array_equal(bias[:, :4], 0.0)
        np.testing.assert_allclose(bias[:, 4], math.log(8 / n), rtol=1e-6)
        np.testing.assert_allclose(bias[:, 5:], math.log(0.6 / 9.01), rtol=1e-6)


def test_keras_yolo3_models_default_to_zero_bias(v3, tiny):
    for model, cfg in ((v3, YOLOV3), (tiny, YOLOV3_TINY)):
        for scale in range(cfg.num_scales):
            np.testing.assert_array_equal(_bias(model, scale, cfg), 0.0)
    nano_zero = nano(NANO_CONFIGS[(16, 8)], prior_bias=False)
    np.testing.assert_array_equal(nano_zero.get_layer("scale_1").bias.numpy(), 0.0)


def test_tiny_prior_bias_flag():
    model = yolov3_tiny(YOLOV3_TINY, prior_bias=True)  # 416 x 416: 13 x 13 and 26 x 26 cells
    np.testing.assert_allclose(_bias(model, 0, YOLOV3_TINY)[:, 4], math.log(8 / 169), rtol=1e-6)
    np.testing.assert_allclose(_bias(model, 1, YOLOV3_TINY)[:, 4], math.log(8 / 676), rtol=1e-6)
    np.testing.assert_allclose(_bias(model, 1, YOLOV3_TINY)[:, 5:], math.log(0.6 / 79.01), 1e-6)


def _assert_reloads(model, tmp_path):
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.output_names == model.output_names
    assert reloaded.count_params() == model.count_params()
    images = _images()
    expected = model.predict(images, verbose=0)
    for before, after in zip(expected, reloaded.predict(images, verbose=0), strict=True):
        np.testing.assert_array_equal(before, after)
    assert len(reloaded.losses) == len(model.losses)


@pytest.mark.parametrize("strides", list(NANO_CONFIGS))
def test_nano_save_reload_safe_mode(strides, tmp_path):
    _assert_reloads(nano(NANO_CONFIGS[strides]), tmp_path)


def test_yolov3_tiny_save_reload_safe_mode(tiny, tmp_path):
    _assert_reloads(tiny, tmp_path)


@pytest.mark.slow
def test_yolov3_save_reload_safe_mode(v3, tmp_path):
    _assert_reloads(v3, tmp_path)


def test_nano_gradients_reach_every_weight():
    cfg = NANO_CONFIGS[(32, 16, 8)]
    model = nano(cfg, width=8)
    with tf.GradientTape() as tape:
        outputs = model(_images(size=(64, 64)), training=True)
        loss = sum(tf.reduce_mean(tf.square(o)) for o in outputs)
    grads = tape.gradient(loss, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        assert grad is not None, weight.path
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0, weight.path


def test_sync_bn_synchronizes_every_batch_norm_and_keeps_the_model(tmp_path):
    cfg = NANO_CONFIGS[(32, 16)]
    keras.utils.set_random_seed(3)
    plain = build_model("nano", cfg, width=8)
    keras.utils.set_random_seed(3)
    synced = build_model("nano", cfg, width=8, sync_bn=True)
    norms = [layer for layer in synced.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == sum(isinstance(la, keras.layers.BatchNormalization) for la in plain.layers)
    assert norms and all(isinstance(layer, SyncBatchNormalization) for layer in norms)
    assert [la.name for la in synced.layers] == [la.name for la in plain.layers]
    for a, b in zip(plain.get_weights(), synced.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # One replica: synchronized BN is plain BN, batch statistics included (its moments are
    # summed then divided, not averaged: float32 rounding at most, on logits of a few units).
    images = np.random.default_rng(0).random((2, 128, 160, 3), np.float32)
    for a, b in zip(plain(images, training=True), synced(images, training=True), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    _assert_reloads(synced, tmp_path)
