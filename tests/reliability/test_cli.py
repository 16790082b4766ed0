"""The command lines on bad input: exit status != 0 and one message naming the problem, never a
TensorFlow traceback. ``training.train``'s argument checks and ``training.predict`` end to end."""

import numpy as np
import pytest
from PIL import Image

from kyolo.export import export_saved_model
from kyolo.models import build_model
from tests.helpers import nano_config, run_module
from training import predict
from training import train as train_job

PATHS = ["--train", "a", "--val", "b", "--train-images", "c", "--val-images", "d"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data-format", "bogus"], "invalid choice: 'bogus'"),
        (["--model", "resnet"], "invalid choice: 'resnet'"),
        (["--loss-preset", "yolov9"], "invalid choice: 'yolov9'"),
        (["--strategy", "horovod"], "invalid choice: 'horovod'"),
        (["--strategy", "multiworker"], "--strategy multiworker needs TF_CONFIG"),
        (["--precision", "float16"], "invalid choice: 'float16'"),
        (["--on-invalid", "ignore"], "invalid choice: 'ignore'"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--batch-size", "-2"], "--batch-size must be >= 1, got -2"),
        (["--eval-every", "0"], "--eval-every must be >= 1"),
        (["--epochs", "two"], "invalid int value: 'two'"),
        (["--img-size", "64", "64", "64"], "--img-size takes 1 or 2 values"),
        (["--data-format", "coco"], "--data-format coco needs --train"),
        (["--data-format", "coco", "--train", "a", "--val", "b"], "needs --train, --train-images"),
        (["--data-format", "voc", *PATHS], "needs --classes"),
        (["--data-format", "yolo", *PATHS], "needs --classes"),
    ],
)
def test_train_rejects_bad_flags_naming_them(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_job.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """A tiny untrained nano detector exported as a SavedModel."""
    cfg = nano_config("yolov3", 10)
    path = tmp_path_factory.mktemp("model") / "serving"
    export_saved_model(build_model("nano", cfg, width=4), cfg, path)
    return path


def write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    good = write(tmp_path / "rgb.png", rng.integers(0, 255, (40, 50, 3), np.uint8))
    data = (tmp_path / "rgb.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    return tmp_path, good


def run_predict(argv):
    """The exit code (or ``SystemExit`` message) of ``training.predict.main`` in this process."""
    try:
        predict.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code
    return 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{dir}/missing.png"], "{dir}/missing.png: no such file or folder"),
        (["{dir}/empty"], "{dir}/empty: a folder without images or videos"),
        (["{dir}/*.jpeg"], "{dir}/*.jpeg: no file matches"),
        (["{good}", "--model", "{dir}/nothing"], "--model {dir}/nothing: no such file or folder"),
        (["{good}", "--score-threshold", "1.5"], "--score-threshold must be in [0, 1], got 1.5"),
        (["{good}", "--out", "{good}"], "exists and is not a folder"),
        (["{good}", "{dir}/sub/rgb.png"], "would both be written to"),
    ],
)
def test_predict_rejects_bad_arguments_naming_them(serving, images, argv, message, capsys):
    folder, good = images
    (folder / "sub").mkdir()
    (folder / "empty").mkdir()
    write(folder / "sub" / "rgb.png", np.zeros((8, 8, 3), np.uint8))
    fill = {"dir": folder, "good": good}
    argv = [a.format(**fill) for a in argv]
    for flag, default in (("--model", serving), ("--out", folder / "out")):
        if flag not in argv:
            argv += [flag, str(default)]
    assert run_predict(argv) == 2
    assert message.format(**fill) in capsys.readouterr().err


def test_predict_names_a_folder_that_holds_no_model(images):
    folder, good = images
    code = run_predict([good, "--model", folder, "--out", folder / "out"])
    assert "neither a SavedModel nor a training run" in code


@pytest.mark.parametrize("name", ["truncated.png", "text.png"])
def test_predict_names_and_skips_an_image_it_cannot_decode(serving, images, name, caplog):
    folder, good = images
    code = run_predict([good, folder / name, "--model", serving, "--out", folder / "out"])
    assert code == 0
    assert f"{folder / name}: cannot be decoded" in caplog.text and "skipped" in caplog.text
    assert (folder / "out" / "rgb.png").is_file()
    assert not (folder / "out" / "text.json").exists()


def test_predict_reads_grey_rgba_and_16_bit_images(serving, tmp_path):
    rng = np.random.default_rng(1)
    arrays = {
        "grey.png": rng.integers(0, 255, (30, 40), np.uint8),
        "rgba.png": rng.integers(0, 255, (30, 40, 4), np.uint8),
        "deep.png": rng.integers(0, 65535, (30, 40), np.uint16),
    }
    paths = [write(tmp_path / name, array) for name, array in arrays.items()]
    assert run_predict([*paths, "--model", serving, "--out", tmp_path / "out"]) == 0
    for name in arrays:
        with Image.open(tmp_path / "out" / name) as drawn:
            assert drawn.size == (40, 30) and drawn.mode == "RGB"


def test_predict_process_exits_with_a_message_not_a_traceback(images):
    folder, good = images
    argv = [good, "--model", str(folder), "--out", str(folder / "out")]
    result = run_module("training.predict", *argv)
    assert result.returncode != 0
    assert "neither a SavedModel nor a training run" in result.stderr
    assert "Traceback" not in result.stderr
