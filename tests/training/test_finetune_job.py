"""``training.train --weights``: kyolo.finetune wired into the job, its log and its errors."""

import logging

import keras
import numpy as np
import pytest

from kyolo.config import YoloConfig
from kyolo.darknet import build_darknet, parse_cfg
from kyolo.darknet import write_cfg as topology_cfg
from kyolo.models import build_model
from kyolo.optim import ScaledAfter
from kyolo.saving import load_metadata, save_model
from references.darknet_oracle import write_random_weights
from tests.helpers import nano_config
from training import train as train_job


def job_args(tmp_path, *extra):
    """Tiny DigitsDet (24 train, 8 val images at 64 px, batches of 8: 3 steps an epoch)."""
    return train_job.parse_args(
        [
            "--data-dir", str(tmp_path / "digits"),
            "--digits", "24", "8",
            "--img-size", "64",
            "--batch-size", "8",
            "--eval-every", "1",
            "--out", str(tmp_path / "out"),
            *extra,
        ]
    )  # fmt: skip


def pretrained(tmp_path, width=16):
    """A nano model as ``training.train`` builds it (width 16), 3 classes, saved with its config."""
    cfg = nano_config(num_classes=3)
    model = build_model("nano", cfg, width=width)
    path = tmp_path / f"nano{width}.keras"
    save_model(model, path, cfg=cfg, class_names=["a", "b", "c"])
    return path, model


# ~48 s: slow (CI budget). The default run keeps tests/test_finetune.py (freeze, release, rate)
# and the Darknet fine-tune job below (--weights through the CLI).
@pytest.mark.slow
def test_finetune_job_loads_freezes_then_releases_at_a_tenth_of_the_rate(tmp_path, caplog):
    path, source = pretrained(tmp_path)
    args = job_args(
        tmp_path, "--epochs", "2", "--weights", str(path), "--freeze", "backbone",
        "--freeze-epochs", "1",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="kyolo.train"):
        metrics = train_job.train(args)
    log = caplog.text
    assert "loaded 30 of 32 layers with weights" in log
    assert "scale_0: head recreated: classes 3 → 10" in log
    assert "frozen: 20 layers, stem_conv ... stage16_block1_2_bn" in log
    assert np.isfinite(metrics["final_loss"])
    out = tmp_path / "out" / "model.keras"
    model = keras.saving.load_model(out, safe_mode=True)
    rate = model.optimizer._learning_rate
    assert isinstance(rate, ScaledAfter) and (rate.boundary, rate.scale) == (3, 0.1)
    # Released for epoch 2: every layer trains again and the backbone has left the source.
    assert all(layer.trainable for layer in model.layers)
    assert not np.array_equal(
        model.get_layer("stem_conv").get_weights()[0],
        source.get_layer("stem_conv").get_weights()[0],
    )
    # The run's model.keras carries its config: it can be fine-tuned from in turn.
    metadata = load_metadata(out)
    assert metadata["class_names"] == [str(d) for d in range(10)]
    assert YoloConfig.from_any(metadata["config"]).num_classes == 10


def test_weights_that_match_nothing_stop_the_job_with_the_reason(tmp_path):
    path, _ = pretrained(tmp_path, width=8)
    with pytest.raises(SystemExit, match="training.train: error: --weights: .*no layer matches"):
        train_job.main(["--data-dir", str(tmp_path / "digits"), "--digits", "24", "8",
                        "--img-size", "64", "--out", str(tmp_path / "out"),
                        "--weights", str(path)])  # fmt: skip


def test_freezing_more_layers_than_the_model_has_stops_the_job(tmp_path):
    path, _ = pretrained(tmp_path)
    with pytest.raises(SystemExit, match="--freeze: freeze 999: the model has 57 layers"):
        train_job.main(["--data-dir", str(tmp_path / "digits"), "--digits", "24", "8",
                        "--img-size", "64", "--out", str(tmp_path / "out"),
                        "--weights", str(path), "--freeze", "999"])  # fmt: skip


@pytest.mark.parametrize(
    "flags",
    [
        ["--freeze", "backbone"],
        ["--cfg", "yolov3.cfg"],
        ["--weights", "w.keras", "--freeze-epochs", "2"],
        ["--weights", "w.keras", "--freeze", "neck"],
        ["--weights", "w.keras", "--freeze", "0"],
        ["--weights", "w.keras", "--freeze", "body", "--freeze-epochs", "40"],
        ["--weights", "w.keras", "--freeze", "body", "--unfreeze-lr-scale", "0"],
    ],
)
def test_finetune_flags_that_cannot_work_are_refused(flags, capsys):
    with pytest.raises(SystemExit):
        train_job.parse_args(flags)
    assert "--" in capsys.readouterr().err


def test_darknet_weights_and_cfg_fine_tune_kyolo_tiny_yolov3(tmp_path, caplog):
    text = topology_cfg("yolov3-tiny", classes=2, input_size=(96, 96))
    cfg, weights = tmp_path / "tiny.cfg", tmp_path / "tiny.weights"
    cfg.write_text(text)
    write_random_weights(weights, build_darknet(parse_cfg(text)).convs)
    args = job_args(
        tmp_path, "--model", "yolov3_tiny", "--epochs", "1", "--weights", str(weights),
        "--cfg", str(cfg), "--freeze", "body",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="kyolo.train"):
        metrics = train_job.train(args)
    assert "loaded 22 of 24 layers with weights" in caplog.text
    assert "scale_1: head recreated: classes 2 → 10" in caplog.text
    assert np.isfinite(metrics["final_loss"])
