"""End to end on tiny DigitsDet: fit lowers the loss, export serves the same boxes, resume works."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kyolo.data import make_digits, read_yolo
from kyolo.data.pipeline import make_dataset
from kyolo.encode import target_encoder
from kyolo.export import export_saved_model
from kyolo.geometry import letterbox, unletterbox_boxes
from kyolo.losses import YoloLoss
from kyolo.models import build_model
from kyolo.postprocess import detect
from training import train as train_job
from training.cli import load_data


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    paths = make_digits(root, n_train=24, n_val=8, image_size=(96, 96), digit_px=(14, 30))
    return paths, read_yolo(paths.train_images, paths.train_labels, 10)


def job_args(tmp_path, digits_root, *extra):
    return train_job.parse_args(
        [
            "--data-dir",
            str(digits_root),
            "--digits",
            "24",
            "8",
            "--img-size",
            "64",
            "--batch-size",
            "8",
            "--eval-every",
            "1",
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def tiny_setup(digits, tmp_path):
    args = job_args(tmp_path, digits[0].root)
    cfg = train_job.build_config(args, digits[1], 10)
    model = build_model("nano", cfg, width=8)
    return cfg, model


def test_two_training_steps_lower_the_loss(digits, tmp_path):
    keras.utils.set_random_seed(0)
    cfg, model = tiny_setup(digits, tmp_path)
    model.compile(keras.optimizers.Adam(3e-3), loss=[YoloLoss(cfg, s) for s in range(2)])
    ds = make_dataset(digits[1], cfg, batch_size=8, training=False, encode=target_encoder(cfg))
    images, targets = next(iter(ds))
    # train_on_batch returns the loss of the forward pass before its update, in training mode
    # (evaluate would use BatchNorm's moving statistics, which two steps barely move).
    losses = [model.train_on_batch(images, targets)[0] for _ in range(3)]
    assert losses[2] < 0.97 * losses[0], losses


def test_sparse_targets_give_the_dense_loss_in_evaluate(digits, tmp_path):
    cfg, model = tiny_setup(digits, tmp_path)
    values = []
    for layout in ("dense", "sparse"):
        layout_cfg = cfg.replace(target_layout=layout)
        model.compile(loss=[YoloLoss(layout_cfg, s) for s in range(2)])
        ds = make_dataset(
            digits[1], layout_cfg, batch_size=8, training=False, encode=target_encoder(layout_cfg)
        )
        images, targets = next(iter(ds))
        values.append(model.evaluate(images, targets, verbose=0))
    assert targets[0].shape == (8, cfg.max_positives(0), 6 + cfg.num_classes)
    np.testing.assert_allclose(values[1], values[0], rtol=1e-5)


def test_saved_model_serves_the_python_detections(digits, tmp_path):
    cfg, model = tiny_setup(digits, tmp_path)
    export_saved_model(model, cfg, tmp_path / "serving", score_threshold=0.01)
    serve = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 50, 90, 3), dtype=np.uint8)  # not the input size
    served = {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}
    # The same steps by hand: letterbox, model, decode + NMS, back to image pixels.
    letterboxed = [letterbox(im, tf.zeros([0, 4]), cfg.input_size) for im in images]
    canvases = [canvas for canvas, _, _ in letterboxed]
    found = detect(model(tf.stack(canvases)), cfg, score_threshold=0.01)
    ratio, pad_y, pad_x = (
        tf.stack([params[k] for _, _, params in letterboxed])[:, None] for k in range(3)
    )
    boxes = unletterbox_boxes(found["boxes"], ratio, pad_y, pad_x).numpy()
    assert served["count"].tolist() == found["count"].numpy().tolist()
    assert served["count"].min() > 0
    for i, n in enumerate(served["count"]):
        np.testing.assert_allclose(served["scores"][i, :n], found["scores"][i, :n], rtol=1e-5)
        np.testing.assert_array_equal(served["classes"][i, :n], found["classes"][i, :n])
        want = np.clip(boxes[i, :n], 0, [90, 50, 90, 50])
        np.testing.assert_allclose(served["boxes"][i, :n], want, atol=1e-3)
        assert np.all(served["boxes"][i, n:] == 0)


class StopAfter(keras.callbacks.Callback):
    """Simulates a crash: raises once ``epochs`` epochs have finished."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise RuntimeError("simulated crash")


def test_train_job_resumes_then_exports_a_reloadable_model(tmp_path):
    args = job_args(tmp_path, tmp_path / "digits", "--epochs", "3")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_job.train(args, extra_callbacks=[StopAfter(2)])
    metrics = train_job.train(args)
    out = tmp_path / "out"
    # Epochs 1-2 from the first run, epoch 3 from the resumed one, nothing twice.
    assert metrics["history"]["epoch"] == [0.0, 1.0, 2.0]
    assert set(json.loads((out / "metrics.json").read_text())) >= {
        "wall_time_s",
        "val_mAP50",
        "val_mAP50_95",
        "saved_model_val_mAP50",
        "final_loss",
    }
    assert os.path.getsize(out / "curves.png") > 1000
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    images = np.random.default_rng(1).random((2, 64, 64, 3)).astype(np.float32)
    first = [o.numpy() for o in model(images)]
    again = keras.saving.load_model(out / "model.keras", safe_mode=True)
    for a, b in zip(first, again(images), strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    # The reloaded model keeps its compiled loss and optimizer state: it trains on.
    assert isinstance(model.loss[0], YoloLoss)
    steps = int(model.optimizer.iterations.numpy())
    cfg = model.loss[0].cfg
    train_annotations = load_data(args)[0]
    ds = make_dataset(
        train_annotations, cfg, batch_size=8, training=False, encode=target_encoder(cfg)
    )
    model.fit(ds.take(1), epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == steps + 1


# ~50 s: slow (CI budget). The default run keeps the pieces: tests/data/test_mix.py (mosaic,
# mixup), tests/test_optim.py (EMA, SGD), tests/data/test_pipeline.py (cache).
@pytest.mark.slow
def test_train_job_with_mosaic_mixup_ema_sgd_and_cache(tmp_path):
    args = job_args(
        tmp_path,
        tmp_path / "digits",
        "--epochs", "1",
        "--mosaic", "1",
        "--mixup", "0.5",
        "--ema",
        "--ema-ramp", "5",
        "--optimizer", "sgd",
        "--weight-decay", "5e-4",
        "--cache",
    )  # fmt: skip
    metrics = train_job.train(args)
    assert np.isfinite(metrics["final_loss"]) and len(metrics["history"]["loss"]) == 1
    model = keras.saving.load_model(tmp_path / "out" / "model.keras", safe_mode=True)
    optimizer = model.optimizer
    assert optimizer.use_ema and optimizer.ema_ramp == 5 and optimizer.nesterov
    # fit ends with the EMA weights in the model: the saved model is the EMA one.
    for var, average in zip(
        model.trainable_variables, optimizer._model_variables_moving_average, strict=True
    ):
        np.testing.assert_array_equal(var.numpy(), average.numpy())


def test_recipe_flags():
    args = train_job.parse_args(["--mosaic", "0.5", "--zoom", "0.4"])
    augment = train_job.augmentation(args)
    assert (augment.mosaic_prob, augment.mixup_prob, augment.zoom) == (0.5, 0.0, 0.4)
    assert augment.flip_prob == 0.0  # DigitsDet: mirrored digits are not digits
    assert not args.ema and args.optimizer == "adam" and args.lr is None
    with pytest.raises(SystemExit):
        train_job.parse_args(["--mixup", "1.5"])
