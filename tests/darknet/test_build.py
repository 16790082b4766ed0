"""Keras models built from cfgs: every layer kind against OpenCV, the config, build errors."""

import re

import keras
import pytest

from kyolo.config import LossConfig, YoloConfig
from kyolo.darknet import CfgError, build_darknet, parse_cfg
from references.darknet_cases import EVERY_KIND, NET, VALID_CONV, conv, section, yolo
from references.darknet_oracle import parity_errors

TOLERANCE = 1e-4
"""Of the largest output magnitude (measured: about 1e-6 on these nets)."""


@pytest.mark.parametrize("size", [(32, 32), (35, 35), (64, 96)])
def test_every_layer_kind_matches_opencv(tmp_path, size):
    # 35: odd sides after the stride-2 conv and pool, where padding conventions differ.
    assert max(parity_errors(tmp_path, EVERY_KIND, size)) < TOLERANCE


def test_unpadded_convs_match_opencv(tmp_path):
    assert max(parity_errors(tmp_path, VALID_CONV, (33, 33))) < TOLERANCE


def test_the_model_names_layers_by_darknet_index_and_has_no_lambda():
    darknet = build_darknet(parse_cfg(EVERY_KIND))
    model = darknet.model
    assert model.output_names == ["scale_0", "scale_1"]
    names = {layer.name for layer in model.layers}
    assert {"conv_1", "pad_1", "bn_1", "leaky_1", "mish_2", "swish_3", "logistic_6"} <= names
    assert {"shortcut_4", "maxpool_5", "route_12", "upsample_19", "relu_18"} <= names
    assert "conv_0" in names and "pad_0" not in names  # stride-1 'same' needs no padding layer
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert [c.conv for c in darknet.convs] == [f"conv_{i}" for i in (0, 1, 2, 3, 6, 13, 15)] + [
        "conv_18",
        "conv_21",
        "conv_22",
    ]
    assert [c.channels for c in darknet.convs][:5] == [3, 8, 16, 8, 16]
    assert darknet.convs[4].bn is None and not darknet.convs[4].batch_normalize
    assert model.get_layer("bn_0").epsilon == 1e-12


def test_the_yolo_sections_become_the_config():
    config = build_darknet(parse_cfg(EVERY_KIND)).config
    assert config == YoloConfig(
        num_classes=2,
        input_size=(32, 32),
        anchors=((4, 5), (8, 9), (12, 16), (20, 24)),
        masks=((2, 3), (0, 1)),
        strides=(4, 2),
        loss=LossConfig(ignore_thresh=0.6),
    )


def test_scale_x_y_and_iou_loss_reach_the_config():
    head = conv(14, 1, "linear", bn=0) + yolo("0,1", scale_x_y=1.1, iou_loss="ciou")
    config = build_darknet(parse_cfg(NET + conv(8, 3, stride=2) + head)).config
    assert (config.scale_xy, config.loss.box_loss, config.strides) == (1.1, "ciou", (2,))
    head = conv(14, 1, "linear", bn=0) + yolo("0,1", scale_x_y=1.1)
    assert build_darknet(parse_cfg(NET + head)).config.loss.box_loss == "mse"


HEAD = conv(14, 1, "linear", bn=0) + yolo("0,1")


def line_of(text, needle):
    """1-based number of the first line of ``text`` that reads ``needle``."""
    return text.splitlines().index(needle) + 1


@pytest.mark.parametrize(
    "body, at, message",
    [
        (conv(8, 3) + section("maxpool", size=3, stride=2), "[maxpool]", "size=3 stride=2 pad"),
        (conv(8, 3, groups=2), "groups=2", "groups: kyolo builds groups=1 only"),
        (conv(8, 3, activation="elu"), "activation=elu", "activation=elu: kyolo builds"),
        (conv(8, 3) + section("route", layers=3), "layers=3", "layers=3 names layer 3"),
        (conv(8, 3) + section("route", layers="-1,-1,-1,-1,-1"), "layers=-1,-1,-1,-1,-1", "1 to 4"),
        (conv(8, 3) + conv(4, 1) + section("shortcut", **{"from": -2}), "from=-2", "from=-2: add"),
        (conv(8, 3) + section("upsample", stride=2), "stride=2", "upsamples a stride-1 map"),
        (conv(0, 3), "filters=0", "filters=0: must be >= 1"),
    ],
)
def test_what_kyolo_cannot_build_exactly_is_an_error_at_its_line(body, at, message):
    text = NET + body + HEAD
    line = line_of(text, at)
    with pytest.raises(CfgError, match=rf"^line {line}: .*{re.escape(message)}"):
        build_darknet(parse_cfg(text))


def test_head_errors_name_the_yolo_section():
    wrong_width = NET + conv(13, 1, "linear", bn=0) + yolo("0,1")
    line = line_of(wrong_width, "[yolo]")
    with pytest.raises(CfgError, match=rf"^line {line}: \[yolo\] the layer before it has 13 chan"):
        build_darknet(parse_cfg(wrong_width))
    other_anchors = NET + HEAD + yolo("2,3", anchors="1,1, 2,2, 3,3, 4,4")
    line = line_of(other_anchors, "anchors=1,1, 2,2, 3,3, 4,4")
    with pytest.raises(CfgError, match=rf"^line {line}: .*anchors differs"):
        build_darknet(parse_cfg(other_anchors))
    with pytest.raises(CfgError, match="no \\[yolo\\] section"):
        build_darknet(parse_cfg(NET + conv(8, 3)))
