"""``benchmarks/train_step.py``: its configs are the presets' and its ablation is a real loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import train_step
from kyolo.config import YOLOV3, YOLOV5
from kyolo.models import build_model


def config(case: str, *overrides: str):
    args = train_step.parse_args(["--cases", case, *[f"--set={o}" for o in overrides]])
    model, _, preset = case.partition(":")
    return train_step.case_config(model, preset, args)


def test_yolov3_v3_case_is_the_preset():
    assert config("yolov3:v3") == YOLOV3


def test_v5_preset_is_reordered_by_stride():
    cfg = config("yolov3:v5")
    assert cfg.input_size == (416, 416) and cfg.strides == (32, 16, 8)
    assert cfg.masks == ((6, 7, 8), (3, 4, 5), (0, 1, 2))
    assert cfg.loss.balance == tuple(reversed(YOLOV5.loss.balance))
    assert cfg.anchors == tuple((round(w * 416 / 640, 2), round(h * 416 / 640, 2))
                                for w, h in YOLOV5.anchors)  # fmt: skip


def test_nano_case_builds_and_matches_the_encoder():
    cfg = config("nano:v3", "max_boxes=20")
    assert cfg.max_boxes == 20 and cfg.num_classes == 10 and cfg.strides == (16, 8)
    assert cfg.masks == ((3, 4, 5), (0, 1, 2)) and len(cfg.anchors) == 6
    model = build_model("nano", cfg, width=4)
    x = np.zeros((1, *cfg.input_size, 3), np.float32)
    shapes = [tuple(o.shape) for o in model(x)]
    assert shapes == [(1, *cfg.grid_size(s), 3 * 15) for s in range(2)]


def test_trivial_loss_ignores_y_true_and_has_a_gradient():
    loss = train_step.trivial_loss_class()()
    y_pred = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 4, 6)), tf.bfloat16)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(tf.zeros((2, 7)), y_pred)
    grad = tape.gradient(value, y_pred)
    assert value.dtype == tf.float32
    want = np.mean(np.square(y_pred.numpy().astype(np.float32)))
    assert float(value) == pytest.approx(want, rel=1e-6)
    assert np.count_nonzero(grad.numpy()) == grad.shape.num_elements()


@pytest.mark.slow
def test_pool_runs_and_reports_both_steps():
    """One tiny graph-mode pool: step, ablation and loss alone all run and get timed (~17 s)."""
    args = train_step.parse_args(
        ["--cases", "nano:v3", "--modes", "graph", "--nano-size", "64", "--set", "max_boxes=10"]
    )
    cfg = train_step.case_config("nano", "v3", args)
    try:
        pool = train_step.measure_pool("nano", cfg, "float32", 2, 1, args)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert not pool.failures
    keys = {("step", "graph"), ("ablated", "graph"), ("loss", "graph")}
    assert set(pool.wall) == set(pool.cpu) == keys
    assert all(len(t) == 1 and t[0] > 0 for t in [*pool.wall.values(), *pool.cpu.values()])
    step_losses = pool.values[("step", "graph")]
    assert len(step_losses) == 3 and all(np.isfinite(step_losses))  # first, warm-up, timed
    rows, notes, _ = train_step.pool_rows("nano:v3", "float32", 2, ["graph"], pool)
    assert len(rows) == 1 and len(rows[0]) == len(train_step.HEADERS) and not notes
