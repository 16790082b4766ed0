"""Every ``training.*`` command fails the same way: a non-zero exit and one line
``python -m training.X: error: …`` (argparse, status 2) or ``training.X: error: …`` (status 1)
naming the flag, file or value; a traceback only with ``--verbose``."""

import importlib
import json

import pytest
from PIL import Image

from tests.helpers import run_module
from training.console import cli_main


def failure(module, argv, capsys):
    """``(exit status, the last stderr line)`` of ``training.<module>.main(argv)`` in-process.

    Anything but ``SystemExit`` escaping ``main`` is what the process would print as a traceback.
    """
    main = importlib.import_module(f"training.{module}").main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    code = exit_.value.code
    if isinstance(code, str):  # Python prints it to stderr and exits with status 1
        assert "\n" not in code, code
        return 1, code
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines[-1] if lines else ""


@pytest.fixture
def files(tmp_path):
    """Files of the wrong kind: a .keras that is no zip, text that is no Darknet cfg, an empty
    folder pair, a COCO file whose top level is a list."""
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    cfg = tmp_path / "yolo.cfg"
    cfg.write_bytes(b"\xff\xfe[net]\x00")
    empty = tmp_path / "empty"
    empty.mkdir()
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps([]))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    return tmp_path


BAD_ARGUMENTS = [
    ("train", ["--epochs", "0"], "--epochs must be >= 1, got 0"),
    ("predict", ["{tmp}/nowhere.png", "--model", "{tmp}/run"], "{tmp}/nowhere.png"),
    ("export", ["{tmp}/nowhere", "--format", "onnx"], "{tmp}/nowhere: no such run folder"),
    ("evaluate", ["--model", "{tmp}/nowhere"], "--model {tmp}/nowhere: no such file or folder"),
    ("anchors", ["--num-anchors", "0"], "--num-anchors must be >= 1, got 0"),
    ("convert", ["{tmp}/yolo.cfg"], "the following arguments are required: weights, out"),
]


@pytest.mark.parametrize("module, argv, message", BAD_ARGUMENTS)
def test_bad_arguments_exit_2_with_one_line_naming_them(files, module, argv, message, capsys):
    code, line = failure(module, [a.format(tmp=files) for a in argv], capsys)
    assert code == 2
    assert line.startswith(f"python -m training.{module}: error: ")
    assert message.format(tmp=files) in line


EMPTY = ["--data-format", "yolo", "--classes", "{tmp}/classes.txt"]
RUNTIME_ERRORS = [
    (
        "train",
        ["--data-format", "coco", "--train", "{tmp}/instances.json", "--val",
         "{tmp}/instances.json", "--train-images", "{tmp}", "--val-images", "{tmp}",
         "--out", "{tmp}/out"],
        "{tmp}/instances.json: top level must be an object, got list",
    ),
    ("predict", ["{tmp}/a.png", "--model", "{tmp}/broken.keras"], "{tmp}/broken.keras"),
    ("export", ["{tmp}/run", "--format", "onnx"], "{tmp}/run/model.keras: not a .keras archive"),
    ("evaluate", ["--model", "{tmp}/broken.keras"], "{tmp}/broken.keras: not a .keras archive"),
    (
        "anchors",
        [*EMPTY, "--train", "{tmp}/empty", "--train-images", "{tmp}/empty"],
        "--train {tmp}/empty (--train-images {tmp}/empty): no images",
    ),
    ("convert", ["{tmp}/yolo.cfg", "{tmp}/nowhere.weights", "{tmp}/out.keras"], "{tmp}/yolo.cfg"),
]  # fmt: skip


@pytest.mark.parametrize("module, argv, message", RUNTIME_ERRORS)
def test_runtime_errors_exit_1_with_one_line_naming_the_file(files, module, argv, message, capsys):
    (files / "classes.txt").write_text("a\nb\n")
    code, line = failure(module, [a.format(tmp=files) for a in argv], capsys)
    assert code == 1
    assert line.startswith(f"training.{module}: error: ")
    assert message.format(tmp=files) in line


def test_the_process_shows_a_traceback_only_with_verbose(files):
    argv = ["training.export", str(files / "run"), "--format", "onnx"]
    quiet = run_module(*argv)
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [
        f"training.export: error: {files / 'run' / 'model.keras'}: not a .keras archive "
        "(File is not a zip file)"
    ]
    verbose = run_module(*argv, "--verbose")
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr


def test_a_lost_worker_is_one_line_without_its_type():
    from training.train import ClusterFailure, cluster_failure

    tf_error = RuntimeError("Collective ops is aborted\nby: task 1")
    err = ClusterFailure(cluster_failure(tf_error, "o"))

    def run(argv):
        raise err

    with pytest.raises(SystemExit) as exit_:
        cli_main("training.train", run, [])
    assert exit_.value.code == (
        "training.train: error: the cluster stopped: a worker failed or was stopped (RuntimeError: "
        "Collective ops is aborted). Restart every worker with --resume --out o: the run goes on "
        "after epoch 0 (the chief's last backup)"
    )
