"""``--config run.yaml``: every flag of training.train from a file, the resolved file written."""

import pytest

from training import train as train_job
from training.runconfig import read_run_config, run_settings, settings_argv, write_run_config


def test_written_settings_parse_back_to_the_same_run(tmp_path):
    parser = train_job.build_parser()
    argv = ["--epochs", "3", "--img-size", "96", "128", "--set", "max_boxes=5", "--ema"]
    args = train_job.parse_args([*argv, "--set", "loss.box_loss=iou", "--lr", "0.01"], parser)
    path = write_run_config(parser, args, tmp_path)
    again = train_job.parse_args(["--config", path], train_job.build_parser())
    assert run_settings(parser, again) == run_settings(parser, args)
    assert again.set == ["max_boxes=5", "loss.box_loss=iou"] and again.ema
    assert "out" not in read_run_config(path)  # where to write is the invocation's choice


def test_command_line_flags_win_over_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nimg-size: 160\nema: true\nmosaic: 0.5\n")
    args = train_job.parse_args(["--config", str(path), "--epochs", "2", "--no-ema"])
    assert (args.epochs, args.img_size, args.ema, args.mosaic) == (2, [160], False, 0.5)


def test_resume_reads_the_runs_own_settings(tmp_path):
    parser = train_job.build_parser()
    write_run_config(parser, train_job.parse_args(["--epochs", "9"], parser), tmp_path)
    args = train_job.parse_args(["--out", str(tmp_path), "--resume"])
    assert args.epochs == 9 and args.resume


@pytest.mark.parametrize(
    "text, message",
    [
        ("epoch: 3\n", "unknown setting 'epoch' (did you mean epochs?)"),
        ("epochs: [3, 4]\n", "epochs: expected one value"),
        ("ema: 3\n", "ema: expected true or false"),
        ("epochs: three\n", "invalid int value: 'three'"),
        ("- epochs\n", "expected 'flag: value' lines, got a list"),
        ("epochs: [\n", "not valid YAML"),
        ("model: resnet\n", "invalid choice: 'resnet'"),
    ],
)
def test_bad_settings_files_exit_2_naming_the_problem(tmp_path, text, message, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        train_job.parse_args(["--config", str(path)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_every_flag_is_covered():
    parser = train_job.build_parser()
    settings = run_settings(parser, train_job.parse_args([], parser))
    # Every setting turns into tokens the parser accepts (peers' new flags included).
    assert train_job.parse_args(settings_argv(parser, settings), parser)
    assert {"epochs", "set", "ema", "digits", "strategy", "warmup_epochs"} <= set(settings)
