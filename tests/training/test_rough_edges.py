"""Each rough edge a new user found in the command lines, shown gone (issue 15's "Why")."""

import io
import json
import os

import numpy as np
import pytest

from kyolo.callbacks import ProgressLogger
from kyolo.config import YoloConfig
from tests.helpers import NANO_ANCHORS, REPO, run_module
from training import anchors, evaluate, export, predict
from training import train as train_job
from training.cli import DIGITS_CACHE, digits_dir


def test_set_input_size_scalar_means_square():
    assert YoloConfig(num_classes=1, input_size=160, strides=(32,), masks=((0,),),
                      anchors=((10, 10),)).input_size == (160, 160)  # fmt: skip
    args = train_job.parse_args(["--set", "input_size=64", "--anchors", NANO_ANCHORS])
    cfg = train_job.build_config(args, [], 10)
    assert cfg.input_size == (64, 64)


def test_anchors_without_paths_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        anchors.main(["--data-format", "coco"])
    assert exit_.value.code == 2
    assert "--data-format coco needs --train and --train-images" in capsys.readouterr().err


def test_anchors_reads_only_the_train_split(tmp_path, capsys):
    # No --val flag exists any more; DigitsDet goes to --data-dir (or the documented cache).
    anchors.main(["--data-dir", str(tmp_path), "--digits", "12", "0", "--num-anchors", "3"])
    assert "k-means anchors:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        anchors.main(["--val", "x"])
    assert DIGITS_CACHE.endswith(os.path.join(".cache", "kyolo", "digitsdet"))


def test_predict_writes_next_to_the_model_not_into_the_cwd(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "a.png").write_bytes(b"")
    args = predict.parse_args([str(tmp_path / "a.png"), "--model", str(run)])
    assert args.out == str(run / "predictions")
    args = predict.parse_args([str(tmp_path / "a.png"), "--model", str(run / ".." / "run")])
    assert not args.out.startswith("saved_models")


def test_digits_live_under_out():
    args = train_job.parse_args(["--out", "/somewhere/run"])
    assert digits_dir(args) == os.path.join("/somewhere/run", "data")


def test_a_non_empty_out_is_refused_without_resume_or_exist_ok(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.keras").write_bytes(b"old")
    with pytest.raises(SystemExit) as exit_:
        train_job.main(["--out", str(out)])
    assert exit_.value.code == 2
    assert f"--out {out} is not empty (model.keras): --resume continues" in capsys.readouterr().err
    assert os.listdir(out) == ["model.keras"]
    with pytest.raises(SystemExit):
        train_job.main(["--out", str(out), "--resume"])  # no run.yaml: nothing to resume
    assert "no run to resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_job.main(["--out", str(out), "--resume", "--exist-ok"])
    assert "pick one" in capsys.readouterr().err


def test_makefile_train_reruns_into_its_own_out():
    # `make train` twice must work: it passes --exist-ok (a new run over the previous one).
    makefile = (REPO / "Makefile").read_text()
    assert "$(PY) -m training.train --exist-ok" in makefile


def test_a_run_that_fails_on_its_settings_writes_nothing(tmp_path):
    out = tmp_path / "out"
    argv = ["--out", str(out), "--digits", "8", "4", "--img-size", "64", "--set", "bogus=1"]
    with pytest.raises(SystemExit, match="--set: "):
        train_job.main(argv)
    assert not out.exists()


@pytest.mark.parametrize("module", [train_job, predict, anchors, evaluate, export])
def test_help_shows_defaults_and_the_module_name(module, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    name = module.__name__
    assert text.startswith(f"usage: python -m {name}")
    assert "(default: " in text and "--verbose" in text


def test_progress_one_line_per_epoch_off_a_terminal():
    stream = io.StringIO()
    logger = ProgressLogger(stream)
    logger.set_params({"epochs": 2, "steps": 3})
    logger.on_train_begin()
    for epoch in range(2):
        logger.on_epoch_begin(epoch)
        for step in range(3):
            logger.on_train_batch_end(step, {"loss": 2.0})
        logger.on_epoch_end(epoch, {"loss": 1.5, "val_mAP50": 0.25, "s0_box": 0.1})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training 2 epochs of 3 steps; the first steps also build the graph"
    assert lines[1].startswith("epoch 1/2  loss 1.5000  val_mAP50 0.2500  ")
    assert len(lines) == 3 and "\r" not in stream.getvalue() and "s0_box" not in lines[1]


def test_progress_bar_per_step_on_a_terminal():
    stream = io.StringIO()
    logger = ProgressLogger(stream, bar=True)
    logger.set_params({"epochs": 1, "steps": 2})
    logger.on_epoch_begin(0)
    logger.on_train_batch_end(0, {"loss": 3.0})
    assert stream.getvalue().startswith("\repoch 1/1 [" + "=" * 15 + "." * 15 + "] 1/2 loss 3.0000")


def test_settings_that_cannot_work_are_warned_about():
    parser = train_job.build_parser()
    args = train_job.parse_args(["--epochs", "1", "--train", "x.json"], parser)
    warnings = train_job.setting_warnings(args, parser)
    assert warnings[0].startswith("--warmup-epochs 2 >= --epochs 1: the learning rate never")
    assert "--train is ignored with --data-format digits" in warnings
    assert train_job.setting_warnings(train_job.parse_args([], parser), parser) == []


def test_tensorflow_noise_is_off_by_default():
    result = run_module("training.anchors", "--data-format", "coco")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "python -m training.anchors: error: --data-format coco needs --train and --train-images"
    )
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), lines


@pytest.mark.slow
def test_end_to_end_train_export_evaluate_predict(tmp_path):
    """The whole tour on a tiny run: quiet output, run.yaml, evaluate = the training figure."""
    import cv2

    out = tmp_path / "run"
    argv = ["--out", str(out), "--digits", "24", "8", "--img-size", "64", "--epochs", "2"]
    result = run_module("training.train", *argv, "--batch-size", "8", "--warmup-epochs", "0")
    assert result.returncode == 0, result.stderr
    assert "shuffle=True" not in result.stderr and "I0000" not in result.stderr
    assert result.stdout.count("\nepoch ") == 2 and (out / "run.yaml").is_file()
    assert (out / "data" / "images" / "val").is_dir()
    metrics = json.loads((out / "metrics.json").read_text())
    again = run_module("training.train", *argv)
    assert again.returncode == 2 and "is not empty" in again.stderr
    assert run_module("training.export", str(out), "--format", "tflite").returncode == 0
    tflite = out / "export" / "model_float32.tflite"
    for model in (out, tflite):
        report_dir = tmp_path / f"eval-{model.name}"
        result = run_module(
            "training.evaluate", "--model", str(model), "--digits", "24", "8",
            "--data-dir", str(out / "data"), "--out", str(report_dir),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        report = json.loads((report_dir / "evaluation.json").read_text())
        assert report["mAP50"] == pytest.approx(metrics["saved_model_val_mAP50"], abs=1e-6)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 4, (64, 48))
    for value in (60, 120, 180):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    images = out / "data" / "images" / "val"
    result = run_module("training.predict", str(images), str(video), "--model", str(tflite))
    assert result.returncode == 0, result.stderr
    frames = json.loads((out / "export" / "predictions" / "clip.json").read_text())["frames"]
    assert len(frames) == 3
    assert (out / "export" / "predictions" / "labels" / "000007.txt").is_file()
