"""``python -m training.train`` on bad data or settings: exit status != 0 and a message naming the
file, flag or value, before any training, never a TensorFlow traceback."""

import json

import pytest

from kyolo.data import make_digits
from tests.helpers import NANO_ANCHORS, run_module
from training import train as train_job


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A tiny DigitsDet in YOLO format, and its class-name file."""
    root = tmp_path_factory.mktemp("digits")
    paths = make_digits(root, n_train=8, n_val=4, image_size=(64, 64), digit_px=(14, 30))
    classes = root / "classes.txt"
    classes.write_text("\n".join(paths.class_names) + "\n")
    return paths, classes


def yolo_args(digits, tmp_path, *extra):
    paths, classes = digits
    return [
        *("--data-format", "yolo", "--classes", str(classes)),
        *("--train", paths.train_labels, "--train-images", paths.train_images),
        *("--val", paths.val_labels, "--val-images", paths.val_images),
        *("--img-size", "64", "--batch-size", "4", "--epochs", "1", "--out", str(tmp_path / "out")),
        *extra,
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--train": "{tmp}/missing"}, "--train {tmp}/missing: no such folder"),
        ({"--val-images": "{tmp}/missing"}, "--val-images {tmp}/missing: no such folder"),
        ({"--classes": "{tmp}/missing.txt"}, "--classes {tmp}/missing.txt: no such file"),
        ({"--train-images": None}, "needs --train, --train-images, --val and --val-images"),
        ({"--anchors": "10x14"}, "--anchors must be 'auto', 'preset' or 'w,h w,h ...'"),
        ({"--img-size": "0"}, "--img-size and --digits must be >= 1"),
        ({"--lr": "-1"}, "need --lr > 0"),
    ],
)
def test_bad_paths_and_values_exit_2_naming_the_flag(digits, tmp_path, change, message, capsys):
    argv = yolo_args(digits, tmp_path)
    for flag, value in change.items():
        at = argv.index(flag) if flag in argv else len(argv)
        argv[at : at + 2] = [] if value is None else [flag, value.format(tmp=tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        train_job.main(argv)
    assert exit_.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_coco_paths_must_be_a_file_and_folders(tmp_path, capsys):
    argv = ["--data-format", "coco", "--train", str(tmp_path), "--val", str(tmp_path)]
    argv += ["--train-images", str(tmp_path), "--val-images", str(tmp_path)]
    with pytest.raises(SystemExit):
        train_job.parse_args(argv)
    assert f"--train {tmp_path}: no such file" in capsys.readouterr().err


def error_of(argv):
    """The message ``train.main`` exits with (it must exit before training)."""
    with pytest.raises(SystemExit) as exit_:
        train_job.main(argv)
    assert isinstance(exit_.value.code, str), exit_.value.code
    return exit_.value.code


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--img-size", "72"], "input_size (72, 72) must be a multiple of each stride (16, 8)"),
        (["--anchors", "10,14 23,27"], "--anchors needs 6 'w,h' pairs"),
        (["--anchors", "0,14 " + NANO_ANCHORS.split(" ", 1)[1]], "anchors must be positive"),
        (["--set", "bogus=1"], "--set: "),
        (["--set", "loss.box_loss=iuo"], "box_loss must be one of"),
        (["--set", "max_boxes=1"], "boxes, more than cfg.max_boxes=1"),
    ],
)
def test_bad_settings_exit_with_a_message(digits, tmp_path, extra, message):
    assert message in error_of(yolo_args(digits, tmp_path, *extra))


def test_bad_label_file_exits_naming_file_and_line(digits, tmp_path):
    paths, _ = digits
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "000000.txt").write_text("3 0.5 0.5 0.2 0.2\n12 0.5 0.5 0.2 0.2\n")
    argv = yolo_args(digits, tmp_path)
    argv[argv.index("--train") + 1] = str(labels)
    assert f"{labels / '000000.txt'}: image" in (message := error_of(argv))
    assert "(line 2): class id 12 outside [0, 10)" in message


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_split_folders_name_the_flags(digits, tmp_path, split):
    # Empty --val folders gave a traceback from deep in training that did not name --val.
    labels, images = tmp_path / "empty_labels", tmp_path / "empty_images"
    labels.mkdir()
    images.mkdir()
    argv = yolo_args(digits, tmp_path)
    argv[argv.index(f"--{split}") + 1] = str(labels)
    argv[argv.index(f"--{split}-images") + 1] = str(images)
    assert f"--{split} {labels} (--{split}-images {images}): no images" in error_of(argv)


def test_classes_file_errors_name_the_flag_and_file(digits, tmp_path):
    classes = tmp_path / "classes.txt"
    classes.write_bytes("z\u00e9ro\n".encode("latin-1"))
    argv = yolo_args(digits, tmp_path)
    argv[argv.index("--classes") + 1] = str(classes)
    assert error_of(argv).startswith(f"training.train: error: --classes {classes}: not UTF-8")


def test_truncated_image_found_during_training_is_named(digits, tmp_path):
    import shutil

    paths, _ = digits
    images = shutil.copytree(paths.train_images, tmp_path / "images")
    victim = images / "000003.png"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # the header survives: the reader accepts it
    argv = yolo_args(digits, tmp_path)
    argv[argv.index("--train-images") + 1] = str(images)
    assert f"{victim}: cannot decode the image" in error_of(argv)


def test_the_process_prints_the_message_without_a_traceback(tmp_path):
    broken = tmp_path / "instances.json"
    broken.write_text(json.dumps({"images": [], "categories": []})[:-1])
    argv = ["--data-format", "coco", "--train", str(broken), "--val", str(broken)]
    argv += ["--train-images", str(tmp_path), "--val-images", str(tmp_path)]
    result = run_module("training.train", *argv, "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert f"training.train: error: {broken}: malformed JSON at line 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_history_keeps_the_last_row_of_an_epoch_repeated_after_a_resume(tmp_path):
    # Killed after epoch 1's CSV row but before its backup: the resumed run writes epoch 1 again.
    csv = tmp_path / "history.csv"
    csv.write_text("epoch,loss\n0,5.0\n1,4.0\n1,3.5\n2,3.0\n")
    assert train_job.read_history(str(csv)) == {"epoch": [0.0, 1.0, 2.0], "loss": [5.0, 3.5, 3.0]}
