"""kyolo.finetune: weights matched by name and shape, heads recreated, freezing, the two stages."""

import keras
import numpy as np
import pytest

from kyolo.darknet import build_darknet, parse_cfg
from kyolo.darknet import write_cfg as topology_cfg
from kyolo.darknet.weights import DARKNET_BN_EPSILON
from kyolo.finetune import (
    HEAD_PREFIXES,
    Unfreeze,
    freeze,
    heads_to_recreate,
    layers_to_freeze,
    load_matching_weights,
    load_pretrained,
    read_pretrained,
)
from kyolo.models import build_model
from kyolo.optim import ScaledAfter, cosine_schedule
from kyolo.saving import save_model
from references.darknet_oracle import random_arrays, write_random_weights
from tests.helpers import nano_config

HEADS = ["scale_0", "scale_1"]


def randomised(model, seed=0):
    """``model`` with every weight replaced by distinct random numbers (positive variances)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 2.0, w.shape) for w in layer.get_weights()])
    return model


def weights_of(model):
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A nano model (width 8, 3 classes, 64 px) with random weights, saved with its config."""
    cfg = nano_config(num_classes=3)
    model = randomised(build_model("nano", cfg, width=8))
    path = tmp_path_factory.mktemp("pretrained") / "nano.keras"
    save_model(model, path, cfg=cfg, class_names=["a", "b", "c"])
    return path, cfg, weights_of(model)


def test_matching_layers_get_exactly_the_source_weights_and_new_class_heads_stay_fresh(pretrained):
    path, _, source = pretrained
    cfg = nano_config(num_classes=1, size=96)  # another dataset: 1 class, another input size
    model = build_model("nano", cfg, width=8)
    fresh = weights_of(model)
    report = load_pretrained(model, cfg, read_pretrained(path))
    after = weights_of(model)
    body = [name for name in after if name not in HEADS]
    assert list(report.loaded) == body and len(body) == 30
    for name in body:
        for got, want in zip(after[name], source[name], strict=True):
            np.testing.assert_array_equal(got, want)
    assert report.skipped == tuple((h, "head recreated: classes 3 → 1") for h in HEADS)
    assert report.unused == tuple(HEADS)
    for name in HEADS:
        for got, want in zip(after[name], fresh[name], strict=True):
            np.testing.assert_array_equal(got, want)
    text = str(report)
    assert "loaded 30 of 32 layers" in text and "scale_1: head recreated: classes 3 → 1" in text


def test_heads_are_loaded_when_they_predict_the_same(pretrained):
    path, cfg, source = pretrained
    model = build_model("nano", cfg.replace(input_size=(128, 128)), width=8)
    report = load_pretrained(model, cfg, read_pretrained(path))
    assert report.skipped == () and report.unused == ()
    np.testing.assert_array_equal(model.get_layer("scale_1").get_weights()[0], source["scale_1"][0])


def test_heads_to_recreate_names_each_difference():
    cfg = nano_config(num_classes=3)
    assert heads_to_recreate(cfg, cfg.replace(input_size=(128, 96))) == {}
    assert heads_to_recreate(None, cfg) == {}
    anchors = list(cfg.anchors)
    anchors[0] = (7.0, 8.0)  # an anchor of scale 1 (stride 8, anchors 0-2)
    moved = heads_to_recreate(cfg, cfg.replace(anchors=tuple(anchors)))
    assert moved == {"scale_1": "anchors [[6.0, 8.0], [10.0, 14.0], [16.0, 20.0]] → "
                     "[[7.0, 8.0], [10.0, 14.0], [16.0, 20.0]]"}  # fmt: skip
    assert heads_to_recreate(cfg, cfg.replace(decode="v5", scale_xy=2.0)) == {
        h: "decode v3, scale_xy 1 → v5, 2" for h in HEADS
    }
    assert set(heads_to_recreate(cfg, cfg.replace(strides=(32, 16)))) == set(HEADS)


def test_shape_mismatches_are_skipped_by_name_and_nothing_loaded_is_an_error(pretrained):
    path, cfg, _ = pretrained
    source = read_pretrained(path)
    with pytest.raises(ValueError, match="no layer matches model 'nano' by name and shapes"):
        load_pretrained(build_model("nano", cfg, width=16), cfg, source)
    # Without a config in the archive the class count is only seen in the shapes: 3 anchors ×
    # (5 + 3) = 24 channels against 3 × (5 + 1) = 18, after 2 × 16 (scale 0) and 2 × 12 inputs.
    target = build_model("nano", nano_config(num_classes=1), width=8)
    report = load_matching_weights(target, source.model, source_name="plain")
    assert report.skipped == (
        ("scale_0", "shapes [(1, 1, 32, 24), (24,)] → [(1, 1, 32, 18), (18,)]"),
        ("scale_1", "shapes [(1, 1, 24, 24), (24,)] → [(1, 1, 24, 18), (18,)]"),
    )
    assert len(report.loaded) == 30


def test_freeze_selects_backbone_body_or_the_first_layers():
    model = build_model("nano", nano_config(), width=8)
    backbone = [layer.name for layer in layers_to_freeze(model, "backbone")]
    assert backbone[0] == "stem_conv" and backbone[-1] == "stage16_block1_2_bn"
    assert not any(name.startswith(HEAD_PREFIXES) for name in backbone)
    assert all(name.startswith(("stem", "stage")) for name in backbone) and len(backbone) == 20
    body = [layer.name for layer in layers_to_freeze(model, "body")]
    assert len(body) == 30 and not set(body) & set(HEADS)
    assert layers_to_freeze(model, "5") == model.layers[:5]
    for bad, message in (("neck", "give one of"), ("0", "the model has"), (10**4, "the model has")):
        with pytest.raises(ValueError, match=message):
            layers_to_freeze(model, bad)


def test_frozen_layers_and_their_batchnorm_statistics_do_not_move_until_released():
    keras.utils.set_random_seed(0)
    cfg = nano_config()
    model = build_model("nano", cfg, width=8)
    model.compile(keras.optimizers.Adam(1e-2), loss="mse")
    frozen = freeze(model, "backbone")
    assert not model.get_layer("stem_bn").trainable and model.get_layer("head0_out_bn").trainable
    rng = np.random.default_rng(0)
    images = rng.random((4, 64, 64, 3)).astype(np.float32)
    targets = [rng.normal(size=(4, *cfg.grid_size(s), 24)).astype(np.float32) for s in range(2)]
    before = weights_of(model)
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(weights_of(model))
    )
    model.fit(images, targets, batch_size=2, epochs=2, verbose=0,
              callbacks=[Unfreeze(frozen, epoch=1), record])  # fmt: skip

    def moved(weights, name):
        return any(
            not np.array_equal(a, b) for a, b in zip(weights[name], before[name], strict=True)
        )

    # Epoch 0: frozen kernels, BN gamma/beta and BN moving mean/variance are bit-identical.
    assert not any(moved(snapshots[0], name) for name in frozen)
    assert moved(snapshots[0], "head0_out_bn") and moved(snapshots[0], "scale_0")
    mean, variance = snapshots[0]["head1_out_bn"][2:]
    assert not np.array_equal(mean, before["head1_out_bn"][2])  # an unfrozen BN's statistics move
    # Epoch 1: released; the optimizer built on every variable trains them.
    assert all(model.get_layer(name).trainable for name in frozen)
    assert all(moved(snapshots[1], name) for name in ("stem_conv", "stem_bn", "stage16_down_bn"))


def test_scaled_after_multiplies_the_schedule_from_the_boundary_and_serialises():
    base = cosine_schedule(1e-2, total_steps=100, warmup_steps=10)
    staged = ScaledAfter(base, boundary=30, scale=0.1)
    for step, factor in ((0, 1.0), (29, 1.0), (30, 0.1), (99, 0.1)):
        np.testing.assert_allclose(float(staged(step)), factor * float(base(step)), rtol=1e-6)
    # Step 29 of the cosine (19 of 90 after warm-up): 1e-2 · (0.01 + 0.99 · (1 + cos(π·19/90))/2).
    np.testing.assert_allclose(
        float(staged(29)), 1e-2 * (0.01 + 0.99 * (1 + np.cos(np.pi * 19 / 90)) / 2), rtol=1e-5
    )
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(staged))
    assert isinstance(again, ScaledAfter) and (again.boundary, again.scale) == (30, 0.1)
    assert float(again(50)) == pytest.approx(float(staged(50)))


@pytest.fixture(scope="module")
def darknet_files(tmp_path_factory):
    """A tiny-YOLOv3 cfg (2 classes, 64 px) and random ``.weights`` of it."""
    folder = tmp_path_factory.mktemp("darknet")
    text = topology_cfg("yolov3-tiny", classes=2, input_size=(64, 64))
    cfg, weights = folder / "tiny.cfg", folder / "tiny.weights"
    cfg.write_text(text)
    convs = build_darknet(parse_cfg(text)).convs
    write_random_weights(weights, convs, seed=3)
    return cfg, weights, random_arrays(convs, seed=3)


def test_darknet_weights_and_cfg_load_onto_kyolo_tiny_yolov3(darknet_files):
    cfg_path, weights_path, arrays = darknet_files
    source = read_pretrained(weights_path, darknet_cfg=cfg_path, kyolo_model="yolov3_tiny")
    assert source.config.num_classes == 2
    cfg = source.config.replace(num_classes=1, input_size=(96, 96))
    model = build_model("yolov3_tiny", cfg)
    report = load_pretrained(model, cfg, source)
    assert [name for name, _ in report.skipped] == HEADS and len(report.loaded) == 22
    # The first conv, against the file's own arrays: Darknet (out, in, kh, kw) → Keras (kh, kw,
    # in, out); beta, mean and variance as written; gamma rescaled from Darknet's ε to Keras'.
    first = arrays[0]
    np.testing.assert_array_equal(
        model.get_layer("conv1_conv").get_weights()[0], first.kernel.transpose(2, 3, 1, 0)
    )
    gamma, beta, mean, variance = model.get_layer("conv1_bn").get_weights()
    np.testing.assert_array_equal(beta, first.bias)
    np.testing.assert_array_equal(mean, first.bn[1])
    np.testing.assert_array_equal(variance, first.bn[2])
    want = first.bn[0] * np.sqrt(first.bn[2] + 1e-3) / np.sqrt(first.bn[2] + DARKNET_BN_EPSILON)
    np.testing.assert_allclose(gamma, want, rtol=1e-6)


def test_darknet_names_without_the_kyolo_layout_load_nothing(darknet_files):
    cfg_path, weights_path, _ = darknet_files
    source = read_pretrained(weights_path, darknet_cfg=cfg_path)  # layer for layer: conv_0, ...
    model = build_model("yolov3_tiny", source.config)
    with pytest.raises(ValueError, match="convert it with --kyolo-model"):
        load_pretrained(model, source.config, source)


def test_read_pretrained_rejects_what_it_cannot_read(tmp_path, darknet_files):
    cfg_path, weights_path, _ = darknet_files
    with pytest.raises(ValueError, match="needs its .cfg"):
        read_pretrained(weights_path)
    with pytest.raises(ValueError, match="must be a .keras archive or Darknet .weights"):
        read_pretrained(tmp_path / "model.h5")
    with pytest.raises(ValueError, match="goes with a .weights file"):
        read_pretrained(tmp_path / "model.keras", darknet_cfg=cfg_path)


def test_unfreeze_releases_at_any_later_epoch_as_after_a_resume():
    model = build_model("nano", nano_config(), width=8)
    model.compile(keras.optimizers.Adam(), loss="mse")
    names = freeze(model, "body")
    release = Unfreeze(names, epoch=3)
    release.set_model(model)
    release.on_epoch_begin(2)
    assert not any(model.get_layer(n).trainable for n in names)
    release.on_epoch_begin(7)  # a run resumed at epoch 7 never sees epoch 3 begin
    assert all(model.get_layer(n).trainable for n in names)
    # The optimizer was built on every variable before freezing: it can update them now.
    assert len(model.optimizer._trainable_variables) == len(model.trainable_variables)
