"""How the loss reads a scale: the hand-written head gradient, and both ``y_true`` layouts."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.losses import YoloLoss
from kyolo.losses.head import HEAD_LAYOUTS, head_rows
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


def to_anchor_major(y_pred, count):
    """``(b, gh, gw, A · D)`` → YOLOv5's ``(b, A, gh, gw, D)``, in numpy."""
    b, gh, gw, channels = y_pred.shape
    return np.transpose(np.reshape(y_pred, (b, gh, gw, count, channels // count)), (0, 3, 1, 2, 4))


@pytest.mark.parametrize("jit", [False, True])
def test_anchor_major_head_reads_the_same_slots(jit):
    rng = np.random.default_rng(3)
    count, depth = 3, 7
    cells = rng.standard_normal((2, 3, 4, count * depth)).astype(np.float32)  # S = 36
    anchors = tf.constant(to_anchor_major(cells, count))
    slot = tf.constant([[5, 0, 5, 35], [1, 13, 1, 22]], tf.int32)  # repeated slots add up
    w_obj = tf.constant(rng.standard_normal((2, 36)), tf.float32)
    w_rows = tf.constant(rng.standard_normal((2, 4, depth)), tf.float32)

    def gradient(y_pred, layout):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            obj, rows = head_rows(y_pred, slot, depth, HEAD_LAYOUTS[layout], count)
            loss = tf.reduce_sum(w_obj * obj**2) + tf.reduce_sum(w_rows * rows**2)
        return obj, rows, tape.gradient(loss, y_pred)

    run = tf.function(gradient, jit_compile=True) if jit else gradient
    obj, rows, grad = run(anchors, "anchors")
    # Independent reading of the 5-D head: slot = cell · A + a, cell = row · gw + col.
    a, cell = np.arange(36) % count, np.arange(36) // count
    want_obj = anchors.numpy()[:, a, cell // 4, cell % 4, 4]
    np.testing.assert_array_equal(obj.numpy(), want_obj)
    for image in range(2):
        s = slot.numpy()[image]
        want = anchors.numpy()[image, s % count, (s // count) // 4, (s // count) % 4]
        np.testing.assert_array_equal(rows.numpy()[image], want)
    _, _, want_grad = gradient(tf.constant(cells), "cells")
    assert grad.shape == anchors.shape
    np.testing.assert_allclose(grad.numpy(), to_anchor_major(want_grad.numpy(), count), rtol=1e-6)


@pytest.mark.parametrize("name", ["yolov3", "yolov4", "yolov5"])
def test_anchor_major_loss_equals_the_cells_loss(name):
    # yolov3 and yolov4 decode every slot for the ignore mask, yolov5 scatters IoU objectness.
    cfg = small(name)
    y_true = batch_targets(cfg)
    rng = np.random.default_rng(2)
    count = cfg.anchors_per_scale
    for scale, shape in enumerate(head_shapes(cfg)):
        cells = tf.constant(rng.standard_normal(shape), tf.float32)
        anchors = tf.constant(to_anchor_major(cells.numpy(), count))
        results = {}
        for layout, y_pred in (("cells", cells), ("anchors", anchors)):
            loss = YoloLoss(cfg, scale, head_layout=layout)
            with tf.GradientTape() as tape:
                tape.watch(y_pred)
                parts = loss.components(y_true[scale], y_pred)
                total = tf.reduce_sum(tf.add_n(list(parts.values())))
            results[layout] = parts, tape.gradient(total, y_pred)
        (cell_parts, cell_grad), (anchor_parts, anchor_grad) = results["cells"], results["anchors"]
        for key, value in cell_parts.items():
            np.testing.assert_allclose(anchor_parts[key], value, rtol=1e-6, err_msg=key)
        want = to_anchor_major(cell_grad.numpy(), count)
        np.testing.assert_allclose(anchor_grad.numpy(), want, rtol=1e-5, atol=1e-7)
        assert np.abs(want).sum() > 0


def test_head_layout_survives_the_config_and_is_checked():
    cfg = small("yolov5")
    loss = YoloLoss(cfg, 1, head_layout="anchors")
    assert YoloLoss.from_config(loss.get_config()).layout.name == "anchors"
    assert YoloLoss(cfg, 1).get_config()["head_layout"] == "cells"
    with pytest.raises(ValueError, match="unknown head_layout 'nhwc'; valid names: anchors, cells"):
        YoloLoss(cfg, 0, head_layout="nhwc")
    y_true = batch_targets(cfg)[0]
    gh, gw = cfg.grid_size(0)
    with pytest.raises(ValueError, match=r"must be \(batch, anchors, grid_h, grid_w, 5 \+ C\)"):
        loss(y_true, tf.zeros(head_shapes(cfg)[0]))
    with pytest.raises(ValueError, match=r"y_pred has 3 x 7 channels, expected .* = 3 x 8"):
        YoloLoss(cfg, 0, head_layout="anchors")(y_true, tf.zeros((2, 3, gh, gw, 7)))
    with pytest.raises(ValueError, match=r"y_pred grid \(4, 4\) is not the"):
        YoloLoss(cfg, 0, head_layout="anchors")(y_true, tf.zeros((2, 3, 4, 4, 8)))
