"""cfg + weights → ``.keras`` with its config; the ``training.convert`` CLI's wiring and errors."""

import keras
import numpy as np
import pytest

import kyolo  # noqa: F401  # what a user imports before load_model
from kyolo.config import YoloConfig
from kyolo.darknet import Header, build_darknet, convert, parse_cfg, save_darknet_weights
from kyolo.darknet import write_cfg as topology_cfg
from kyolo.saving import load_metadata, save_model
from references.darknet_oracle import write_random_weights
from training.convert import main

NAMES = ["cat", "dog"]


@pytest.fixture
def files(tmp_path):
    """A tiny-YOLOv3 cfg and random ``.weights`` (header 0.2.0, seen 12345) on disk."""
    text = topology_cfg("yolov3-tiny", classes=len(NAMES), input_size=(64, 64))
    cfg, weights = tmp_path / "tiny.cfg", tmp_path / "tiny.weights"
    cfg.write_text(text)
    write_random_weights(weights, build_darknet(parse_cfg(text)).convs, Header(0, 2, 0, 12345))
    return cfg, weights


@pytest.mark.parametrize("kyolo_model", [None, "yolov3_tiny"])
def test_the_keras_file_reloads_in_safe_mode_with_its_config(tmp_path, files, kyolo_model):
    out = tmp_path / "tiny.keras"
    darknet = convert(*files, out, kyolo_model=kyolo_model, class_names=NAMES)
    again = keras.saving.load_model(out, safe_mode=True)
    images = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    for want, got in zip(darknet.model(images), again(images), strict=True):
        np.testing.assert_array_equal(want, got)
    metadata = load_metadata(out)
    assert YoloConfig.from_any(metadata["config"]) == darknet.config
    assert metadata["class_names"] == NAMES
    assert darknet.config.strides == (32, 16) and darknet.config.masks == ((3, 4, 5), (1, 2, 3))


def test_weights_through_the_keras_file_come_back_byte_identical(tmp_path, files):
    cfg, weights = files
    convert(cfg, weights, tmp_path / "tiny.keras")
    model = keras.saving.load_model(tmp_path / "tiny.keras", safe_mode=True)
    convs = build_darknet(parse_cfg(cfg.read_text())).convs
    save_darknet_weights(model, convs, tmp_path / "back.weights", Header(0, 2, 0, 12345))
    assert (tmp_path / "back.weights").read_bytes() == weights.read_bytes()


def test_save_model_without_metadata_has_none(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    save_model(model, tmp_path / "plain.keras")
    assert load_metadata(tmp_path / "plain.keras") == {}
    keras.saving.load_model(tmp_path / "plain.keras", safe_mode=True)


def test_class_names_must_match_the_classes(tmp_path, files):
    with pytest.raises(ValueError, match="3 class names for the cfg's 2 classes"):
        convert(*files, tmp_path / "x.keras", class_names=[*NAMES, "cow"])
    assert not (tmp_path / "x.keras").exists()


def test_cli_converts_and_stores_the_names(tmp_path, files, capsys):
    names = tmp_path / "pets.names"
    names.write_text("cat\ndog\n\n")
    out = tmp_path / "tiny.keras"
    main([*map(str, files), str(out), "--kyolo-model", "yolov3_tiny", "--names", str(names)])
    assert "13 convs, 2 classes, strides (32, 16)" in capsys.readouterr().out
    assert load_metadata(out)["class_names"] == NAMES
    assert keras.saving.load_model(out, safe_mode=True).name == "yolov3_tiny"


def test_cli_help_shows_the_prog_and_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m training.convert")
    # make_parser's help, as every training.* command: flags without a default say so in words.
    assert "yolov3_tiny" in text and "--verbose" in text and "(default: None)" not in text


@pytest.mark.parametrize("broken", ["weights", "cfg"])
def test_cli_errors_are_one_line_and_a_nonzero_exit(tmp_path, files, broken):
    cfg, weights = files
    if broken == "weights":
        weights.write_bytes(weights.read_bytes()[:-8])
        expected = "tiny.weights: the cfg's 13 convs need"
    else:
        cfg.write_text(cfg.read_text().replace("[upsample]", "[upsample]\nscale=2"))
        expected = "unknown key 'scale' in [upsample]"
    with pytest.raises(SystemExit) as info:
        main([str(cfg), str(weights), str(tmp_path / "out.keras")])
    message = info.value.code
    assert isinstance(message, str)  # printed to stderr; the exit status is 1
    assert message.startswith("training.convert: error: ") and "\n" not in message
    assert expected in message
    assert not (tmp_path / "out.keras").exists()
