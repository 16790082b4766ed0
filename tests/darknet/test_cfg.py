"""Darknet cfg parsing, its error messages and kyolo's own cfg writer."""

import re

import pytest

from kyolo.darknet import CfgError, format_cfg, parse_cfg, read_cfg, write_cfg
from kyolo.darknet.cfg import NET_IGNORED, SCHEMA, YOLO_IGNORED

EVERY_SECTION = """\
# a comment line
[net]
width = 64   # spaces around '=' and a trailing comment
height=32 ; the other comment character
channels=3
batch=64

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[shortcut]
from=-1
activation=linear

[maxpool]
size=2
stride=1

[route]
layers = -1, 0

[upsample]
stride=2

[yolo]
mask = 0,1
anchors = 10,13,  16,30, 33,23
classes=4
num=3
ignore_thresh = .7
scale_x_y = 1.05
jitter=.3
"""


def test_every_section_kind_parses_with_its_values_and_lines():
    sections = parse_cfg(EVERY_SECTION)
    assert [s.kind for s in sections] == [
        "net",
        "convolutional",
        "shortcut",
        "maxpool",
        "route",
        "upsample",
        "yolo",
    ]
    net, conv, shortcut, pool, route, upsample, yolo = sections
    assert (net.get_int("width"), net.get_int("height"), net.line) == (64, 32, 2)
    assert net.options["width"] == ("64", 3)
    assert [conv.get_int(k) for k in ("batch_normalize", "filters", "size", "stride", "pad")] == [
        1,
        16,
        3,
        2,
        1,
    ]
    assert conv.get_str("activation") == "leaky"
    assert shortcut.get_ints("from") == [-1]
    assert (pool.get_int("size"), pool.get_int("stride")) == (2, 1)
    assert route.get_ints("layers") == [-1, 0]
    assert upsample.get_int("stride") == 2
    assert yolo.get_ints("mask") == [0, 1]
    assert yolo.get_floats("anchors") == [10, 13, 16, 30, 33, 23]
    assert (yolo.get_float("ignore_thresh"), yolo.get_float("scale_x_y")) == (0.7, 1.05)


def test_darknets_short_section_names_are_aliases():
    kinds = [s.kind for s in parse_cfg("[network]\n[conv]\nfilters=1\n[max]\nsize=2\n")]
    assert kinds == ["net", "convolutional", "maxpool"]


def test_getters_default_when_absent_and_require_when_no_default():
    conv = parse_cfg("[net]\n[convolutional]\nfilters=8\n")[1]
    assert conv.get_int("size", 1) == 1
    assert conv.get_str("activation", "logistic") == "logistic"
    with pytest.raises(CfgError, match=r"^line 2: \[convolutional\] needs stride="):
        conv.get_int("stride")


def test_a_bad_value_names_the_line_of_its_key():
    conv = parse_cfg("[net]\n\n[convolutional]\nfilters=8\nsize=three\n")[1]
    with pytest.raises(CfgError, match=r"^line 5: .*size=three: not int"):
        conv.get_int("size")
    with pytest.raises(CfgError, match=r"^line 4: .*filters: expected one value, got 2"):
        parse_cfg("[net]\n[convolutional]\n\nfilters=8,9\n")[1].get_int("filters")


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("[net]\n[convolutional]\nfilters 16\n", 3, "expected [section] or key=value"),
        ("[net]\n[convolutional]\nfilters=\n", 3, "expected [section] or key=value"),
        ("[net]\nwidth=1\n\n[region]\n", 4, "unknown section [region]"),
        ("[net]\n[convolutional]\nfilters=2\ndilation=2\n", 4, "unknown key 'dilation'"),
        ("[net]\n[yolo]\nnew_coords=1\n", 3, "unknown key 'new_coords' in [yolo]"),
        ("[net]\n[route]\nlayers=-1\nlayers=-2\n", 4, "layers= given twice"),
        ("# lead\nwidth=3\n[net]\n", 2, "width= before the first [section]"),
        ("[convolutional]\nfilters=1\n", 1, "a cfg must start with [net]"),
        ("[net]\n[net]\n", 2, "[net] given twice"),
    ],
)
def test_bad_lines_raise_naming_their_line(text, line, message):
    with pytest.raises(CfgError, match=f"^line {line}: " + re.escape(message)) as info:
        parse_cfg(text)
    assert info.value.line == line


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text("[net]\n[dropout]\n")
    with pytest.raises(CfgError, match=f"^{re.escape(str(path))}:2: unknown section"):
        read_cfg(path)


def test_ignored_keys_are_accepted_and_documented():
    import kyolo.darknet.cfg as module

    assert NET_IGNORED < SCHEMA["net"] and YOLO_IGNORED < SCHEMA["yolo"]
    text = "[net]\n" + "".join(f"{k}=1\n" for k in sorted(NET_IGNORED))
    text += "[yolo]\n" + "".join(f"{k}=1\n" for k in sorted(YOLO_IGNORED))
    assert len(parse_cfg(text)[1].options) == len(YOLO_IGNORED)
    assert "NET_IGNORED" in module.__doc__ and "YOLO_IGNORED" in module.__doc__


def test_format_cfg_writes_lists_comma_separated_and_parses_back():
    text = format_cfg([("net", {"width": 32}), ("route", {"layers": [-1, 61]})])
    assert text == "[net]\nwidth=32\n\n[route]\nlayers=-1,61\n"
    assert parse_cfg(text)[1].get_ints("layers") == [-1, 61]


# Darknet's published layer tables: YOLOv3 outputs at layers 82, 94, 106 (107 layers, 75 convs);
# tiny at 16 and 23 (24 layers, 13 convs); SPP moves YOLOv3's outputs by its 7 added layers.
@pytest.mark.parametrize(
    "name, layers, convs, yolo, routes",
    [
        ("yolov3", 107, 75, [82, 94, 106], {83: [-4], 86: [-1, 61], 95: [-4], 98: [-1, 36]}),
        ("yolov3-tiny", 24, 13, [16, 23], {17: [-4], 20: [-1, 8]}),
        (
            "yolov3-spp",
            114,
            76,
            [89, 101, 113],
            {79: [-2], 81: [-4], 83: [-1, -3, -5, -6], 90: [-4], 93: [-1, 61], 102: [-4]}
            | {105: [-1, 36]},
        ),
    ],
)
def test_written_topologies_have_darknets_layer_table(name, layers, convs, yolo, routes):
    sections = parse_cfg(write_cfg(name, classes=80))[1:]
    assert len(sections) == layers
    assert sum(s.kind == "convolutional" for s in sections) == convs
    assert [i for i, s in enumerate(sections) if s.kind == "yolo"] == yolo
    assert {i: s.get_ints("layers") for i, s in enumerate(sections) if s.kind == "route"} == routes
    assert {sections[i - 1].get_int("filters") for i in yolo} == {255}


def test_write_cfg_parameters_reach_the_text():
    anchors = [(1, 2), (3, 4), (5, 6), (7, 8)]
    text = write_cfg(
        "yolov3-tiny", classes=2, anchors=anchors, masks=[[2, 3], [0, 1]], input_size=(96, 128)
    )
    net, *layers = parse_cfg(text)
    assert (net.get_int("height"), net.get_int("width")) == (96, 128)
    heads = [s for s in layers if s.kind == "yolo"]
    assert [h.get_ints("mask") for h in heads] == [[2, 3], [0, 1]]
    assert heads[0].get_floats("anchors") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert heads[0].get_int("num") == 4 and heads[0].get_int("classes") == 2
    with pytest.raises(ValueError, match="unknown topology 'yolov4'"):
        write_cfg("yolov4")
