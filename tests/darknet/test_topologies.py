"""The standard topologies from kyolo's cfg writer against OpenCV, and on kyolo's own models."""

import numpy as np
import pytest

from kyolo.darknet import as_kyolo_model, build_darknet, load_darknet_weights, parse_cfg, write_cfg
from references.darknet_oracle import parity_errors, write_random_weights

TOLERANCE = 1e-4
"""Of the largest output magnitude; measured about 2e-5 on YOLOv3 and 6e-6 on tiny."""


@pytest.mark.parametrize(
    "name, size",
    [
        ("yolov3-tiny", (96, 128)),
        ("yolov3", (96, 64)),  # about 10 s
        pytest.param("yolov3-spp", (96, 64), marks=pytest.mark.slow),
    ],
)
def test_standard_topologies_match_opencv(tmp_path, name, size):
    text = write_cfg(name, classes=3, input_size=size)
    assert max(parity_errors(tmp_path, text)) < TOLERANCE


@pytest.mark.parametrize("name, params", [("yolov3-tiny", 8_858_734), ("yolov3", 62_001_757)])
def test_written_topologies_have_keras_yolo3s_parameter_counts(name, params):
    # keras-yolo3's counts at 80 classes (BN statistics included), as kyolo's builders document.
    assert build_darknet(parse_cfg(write_cfg(name))).model.count_params() == params


def kyolo_and_darknet_outputs(tmp_path, topology, kyolo_name, size):
    """Outputs of the cfg-built model and of kyolo's model holding the same random weights."""
    darknet = build_darknet(parse_cfg(write_cfg(topology, classes=2, input_size=size)))
    write_random_weights(tmp_path / "net.weights", darknet.convs)
    load_darknet_weights(darknet.model, darknet.convs, tmp_path / "net.weights")
    mapped = as_kyolo_model(darknet, kyolo_name)
    load_darknet_weights(mapped.model, mapped.convs, tmp_path / "net.weights")
    images = np.random.default_rng(3).random((2, *size, 3)).astype(np.float32)
    assert mapped.model.output_names == darknet.model.output_names
    return darknet.model(images), mapped.model(images)


def assert_same_outputs(expected, actual):
    # kyolo's BN has Keras' epsilon 1e-3 where the cfg model has 1e-12: the folded gammas make
    # the two compute the same function up to float32 rounding.
    for want, got in zip(expected, actual, strict=True):
        want, got = np.asarray(want), np.asarray(got)
        assert want.shape == got.shape
        assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()


def test_weights_on_kyolos_yolov3_tiny_give_the_cfg_models_outputs(tmp_path):
    outputs = kyolo_and_darknet_outputs(tmp_path, "yolov3-tiny", "yolov3_tiny", (64, 96))
    assert_same_outputs(*outputs)


@pytest.mark.slow
def test_weights_on_kyolos_yolov3_give_the_cfg_models_outputs(tmp_path):
    assert_same_outputs(*kyolo_and_darknet_outputs(tmp_path, "yolov3", "yolov3", (64, 64)))


@pytest.mark.parametrize(
    "topology, kyolo_name, message",
    [
        ("yolov3-spp", "yolov3", "the cfg has 76 convs, kyolo's yolov3 has 75"),
        ("yolov3-tiny", "yolov3", "the cfg has 13 convs, kyolo's yolov3 has 75"),
        ("yolov3-tiny", "nano", "no Darknet layout for kyolo model 'nano'"),
    ],
)
def test_a_cfg_of_another_topology_is_refused(topology, kyolo_name, message):
    darknet = build_darknet(parse_cfg(write_cfg(topology, classes=2, input_size=(64, 64))))
    with pytest.raises(ValueError, match=message):
        as_kyolo_model(darknet, kyolo_name)


def test_a_same_count_but_different_shape_is_refused():
    # tiny YOLOv3 with its detection convs widened: same conv count, other kernels.
    text = write_cfg("yolov3-tiny", classes=2).replace("filters=256", "filters=320")
    darknet = build_darknet(parse_cfg(text))
    with pytest.raises(ValueError, match="layer conv5_conv: kernel .* the Darknet conv has"):
        as_kyolo_model(darknet, "yolov3_tiny")
