"""A run folder is never silently corrupted: ``--resume`` only with the run's own settings,
``history.csv`` keyed by column name, ``metrics.json`` only with values in their range."""

import math

import keras
import pytest

from training import train as train_job
from training.runconfig import resume_differences, write_run_config


def tiny_argv(tmp_path, *extra):
    """A few-second DigitsDet job (16 + 8 images of 64x64)."""
    return [
        *("--data-dir", str(tmp_path / "digits"), "--digits", "16", "8"),
        *("--img-size", "64", "--batch-size", "8", "--eval-every", "1"),
        *("--out", str(tmp_path / "out"), *extra),
    ]


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """A kill after epoch 1: its row and backup are written, then the job stops."""

    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("killed")


def test_resume_with_other_flags_stops_naming_each_difference(tmp_path, capsys):
    # The case: --epochs 6 killed after epoch 1, resumed with --epochs 3 --loss-preset
    # yolov3. It continued at "epoch 2/3" with the old history header and reported mAP50 37.6.
    parser = train_job.build_parser()
    args = train_job.parse_args(tiny_argv(tmp_path, "--epochs", "6"), parser)
    (tmp_path / "out").mkdir()
    write_run_config(parser, args, args.out)
    with pytest.raises(RuntimeError, match="killed"):
        train_job.train(args, extra_callbacks=[StopAfterFirstEpoch()])
    out = tmp_path / "out"
    kept = {name: (out / name).read_bytes() for name in ("run.yaml", "history.csv")}

    again = tiny_argv(tmp_path, "--resume", "--epochs", "3", "--loss-preset", "yolov3")
    with pytest.raises(SystemExit) as exit_:
        train_job.main(again)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--resume: the run in" in err and str(out) in err
    # exactly these two:
    assert "other settings: --loss-preset yolov5 → yolov3, --epochs 6 → 3;" in err
    assert {name: (out / name).read_bytes() for name in kept} == kept  # nothing touched


def test_resume_accepts_its_own_settings_given_again(tmp_path):
    parser = train_job.build_parser()
    args = train_job.parse_args(tiny_argv(tmp_path, "--epochs", "6", "--img-size", "64"), parser)
    (tmp_path / "out").mkdir()
    write_run_config(parser, args, args.out)
    resumed = train_job.parse_args(tiny_argv(tmp_path, "--resume", "--epochs", "6"), parser)
    assert resume_differences(parser, resumed) == []
    config = tmp_path / "other.yaml"
    config.write_text("epochs: 4\nset: [max_boxes=9]\n")
    argv = tiny_argv(tmp_path, "--resume", "--config", str(config))
    resumed = train_job.parse_args(argv, parser)
    assert resume_differences(parser, resumed) == [
        "--epochs 6 → 4",
        "--set [] → ['max_boxes=9']",
    ]


def test_history_rows_are_written_by_column_name(tmp_path):
    from kyolo.callbacks import HistoryCSV

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_mAP50\n0,5.0,0.1\n")
    logger = HistoryCSV(str(path))
    logger.on_train_begin()
    logger.on_epoch_end(1, {"val_mAP50": 0.25, "loss": 4.0})  # another order, same columns
    assert path.read_text() == "epoch,loss,val_mAP50\n0,5.0,0.1\n1,4.0,0.25\n"
    with pytest.raises(ValueError) as err:
        logger.on_epoch_end(2, {"loss": 3.0, "s0_xy": 1.0})
    message = str(err.value)
    assert f"{path}: epoch 3 has columns" in message
    assert "missing val_mAP50, new s0_xy" in message
    assert path.read_text().count("\n") == 3  # nothing appended


def test_a_new_history_gets_its_header_from_the_first_epoch(tmp_path):
    from kyolo.callbacks import HistoryCSV

    path = tmp_path / "history.csv"
    logger = HistoryCSV(str(path))
    logger.on_train_begin()
    logger.on_epoch_end(0, {"val_loss": 2.0, "loss": 3.0})
    logger.on_epoch_end(1, {"val_loss": 1.5, "loss": 2.5})
    assert path.read_text() == "epoch,loss,val_loss\n0,3.0,2.0\n1,2.5,1.5\n"


def metrics(**changes):
    history = {"epoch": [0.0, 1.0], "loss": [3.0, 2.0], "val_mAP50": [0.1, 0.2]}
    values = {"final_loss": 2.0, "val_mAP50": 0.2, "saved_model_val_mAP50_95": 0.1}
    return {**values, "history": history, **changes}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"val_mAP50": 37.57}, "val_mAP50 = 37.57 is outside [0, 1]"),
        ({"saved_model_val_mAP50_95": -0.5}, "saved_model_val_mAP50_95 = -0.5 is outside [0, 1]"),
        ({"final_loss": math.nan}, "final_loss = nan is not finite"),
        (
            {"history": {"epoch": [0.0, 1.0], "loss": [3.0, math.inf], "val_mAP50": [0, 1]}},
            "history loss (epoch 2) = inf is not finite",
        ),
        (
            {"history": {"epoch": [0.0, 1.0], "loss": [3.0, 2.0], "val_mAP50": [0.1, 40.4]}},
            "history val_mAP50 (epoch 2) = 40.4 is outside [0, 1]",
        ),
    ],
)
def test_metrics_out_of_range_are_refused(changes, message):
    train_job.check_metrics(metrics())  # in range: no error
    with pytest.raises(ValueError, match="metrics.json not written: ") as err:
        train_job.check_metrics(metrics(**changes))
    assert message in str(err.value)
