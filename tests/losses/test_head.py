"""How the loss reads a scale: the hand-written head gradient, and both ``y_true`` layouts."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.losses import YoloLoss
from kyolo.losses.head import head_rows
from kyolo.targets import target_grid
from tests.helpers import batch_targets, head_shapes, small


def plain_head_rows(y_pred, slot, depth):
    """The same view by autodiff: reshape, slice, gather."""
    shape = tf.shape(y_pred)
    flat = tf.reshape(tf.cast(y_pred, tf.float32), [shape[0], -1, depth])
    return flat[..., 4], tf.gather(flat, slot, batch_dims=1)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
@pytest.mark.parametrize("jit", [False, True])
def test_head_gradient_equals_autodiff(dtype, jit):
    rng = np.random.default_rng(0)
    depth = 7  # 2 classes
    y_pred = tf.constant(rng.standard_normal((2, 3, 4, 2 * depth)), dtype)  # S = 24 slots
    # Repeated slots (rows that are not positive point anywhere) must add up, as a gather's do.
    slot = tf.constant([[5, 0, 5, 23], [1, 1, 1, 7]], tf.int32)
    w_obj = tf.constant(rng.standard_normal((2, 24)), tf.float32)
    w_rows = tf.constant(rng.standard_normal((2, 4, depth)), tf.float32)

    def gradient(view):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            obj, rows = view(y_pred, slot, depth)
            # Squares so that the gradient depends on the values as well as on the layout.
            loss = tf.reduce_sum(w_obj * obj**2) + tf.reduce_sum(w_rows * rows**2)
        return loss, tape.gradient(loss, y_pred)

    run = tf.function(gradient, jit_compile=True) if jit else gradient
    loss, grad = run(head_rows)
    want_loss, want_grad = gradient(plain_head_rows)
    assert grad.dtype == dtype and grad.shape == y_pred.shape
    np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), rtol=1e-6, atol=1e-6)
    assert np.abs(grad.numpy()).min() >= 0 and np.abs(grad.numpy()).max() > 0


def test_head_gradient_of_an_unused_output_is_zero_not_an_error():
    y_pred = tf.ones((1, 2, 2, 6))
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        obj, _ = head_rows(y_pred, tf.constant([[1, 2]]), 6)
        loss = tf.reduce_sum(3.0 * obj)
    grad = tape.gradient(loss, y_pred).numpy().reshape(1, 4, 6)
    np.testing.assert_array_equal(grad[..., 4], 3.0)
    np.testing.assert_array_equal(np.delete(grad, 4, axis=-1), 0.0)


def to_sparse(y_true, cfg, scale):
    """Independent numpy conversion of a batch of dense targets to the sparse layout."""
    dense = target_grid(y_true, cfg).numpy()
    depth = 5 + cfg.num_classes
    count = cfg.max_positives(scale)
    out = []
    for image, grid in enumerate(dense):
        slots = np.flatnonzero(grid[:, 4] > 0)  # ascending
        rows = np.zeros((count, depth + 1), np.float32)
        rows[: len(slots), :depth] = grid[slots]
        rows[: len(slots), depth] = slots
        if cfg.ignore_against == "image":
            boxes = y_true.numpy()[image, -cfg.max_boxes :]
            rows = np.concatenate([rows, np.pad(boxes, [[0, 0], [0, 1]])])
        out.append(rows)
    return tf.constant(np.stack(out))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_sparse_layout_gives_the_dense_loss_and_gradient(name):
    dense_cfg = small(name)
    sparse_cfg = dense_cfg.replace(target_layout="sparse")
    dense_true = batch_targets(dense_cfg)
    sparse_true = [to_sparse(y, dense_cfg, s) for s, y in enumerate(dense_true)]
    rng = np.random.default_rng(1)
    logits = [
        tf.constant(rng.standard_normal(shape), tf.float32) for shape in head_shapes(dense_cfg)
    ]
    for scale, y_pred in enumerate(logits):
        values = {}
        for cfg, y_true in ((dense_cfg, dense_true), (sparse_cfg, sparse_true)):
            loss = YoloLoss(cfg, scale)
            with tf.GradientTape() as tape:
                tape.watch(y_pred)
                parts = loss.components(y_true[scale], y_pred)
                total = tf.reduce_sum(tf.add_n(list(parts.values())))
            values[cfg.target_layout] = parts, tape.gradient(total, y_pred)
        (dense_parts, dense_grad), (sparse_parts, sparse_grad) = values["dense"], values["sparse"]
        for key, value in dense_parts.items():
            np.testing.assert_allclose(sparse_parts[key], value, rtol=1e-6, err_msg=key)
        np.testing.assert_allclose(sparse_grad, dense_grad, rtol=1e-5, atol=1e-7)
        assert float(tf.reduce_sum(tf.abs(dense_grad))) > 0


def test_targets_of_the_other_layout_are_rejected_naming_the_layout():
    dense_cfg = small("yolov3")
    sparse_cfg = dense_cfg.replace(target_layout="sparse")
    y_pred = tf.zeros(head_shapes(dense_cfg)[0])
    dense_true = batch_targets(dense_cfg)[0]
    sparse_true = to_sparse(dense_true, dense_cfg, 0)
    with pytest.raises(ValueError, match="target_layout='dense'"):
        YoloLoss(dense_cfg, 0)(sparse_true, y_pred)
    with pytest.raises(ValueError, match=r"\(batch, max_positives, 5 \+ C \+ 1\)"):
        YoloLoss(sparse_cfg, 0)(dense_true, y_pred)
