"""Target encoder: keras-yolo3 parity, tf.data use, layouts and input errors."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo import YOLOV3
from kyolo.compat import keras_yolo3 as k3
from kyolo.encode import encode_targets
from kyolo.targets import target_boxes, target_grid, target_rows
from references import keras_yolo3_np as ref
from references.cases import ANCHORS, TINY_ANCHORS, random_true_boxes


@pytest.mark.parametrize(
    "shape, anchors", [((416, 416), ANCHORS), ((320, 608), ANCHORS), ((256, 192), TINY_ANCHORS)]
)
def test_matches_keras_yolo3(shape, anchors):
    rng = np.random.default_rng(sum(shape))
    true_boxes = random_true_boxes(rng, [0, 5, 12, 1], *shape, num_classes=80)
    true_boxes[2, 7, :4] = true_boxes[2, 6, :4]  # a collision: same cell and anchor
    true_boxes[2, 7, 4] = (true_boxes[2, 6, 4] + 1) % 80
    got = k3.preprocess_true_boxes(true_boxes, shape, anchors, 80)
    want = ref.preprocess_true_boxes(true_boxes, shape, anchors, 80)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, w, atol=1e-6, rtol=0)
    # The collision kept the later box's coordinates and both classes.
    assert max(np.max(g[2, ..., 5:].sum(-1)) for g in got) == 2.0


def test_cell_borders_follow_keras_yolo3_float_rounding():
    # Centre 240 px of 416: float32(240/416) * 26 = 14.999999... → cell 14, as numpy computes it.
    true_boxes = np.array([[[230, 100, 250, 140, 3]]], np.float32)
    got = k3.preprocess_true_boxes(true_boxes, (416, 416), ANCHORS, 80)
    want = ref.preprocess_true_boxes(true_boxes, (416, 416), ANCHORS, 80)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.argwhere(g[..., 4]), np.argwhere(w[..., 4]))


def test_hand_computed_assignment():
    # One 100x60 box centred at (208, 104) in 416x416. Anchor IoUs (centred): (116, 90) gives
    # 100*60 / (6000 + 10440 - 6000) = 0.5747, larger than (62, 45)'s 2790/6000 = 0.465:
    # anchor 6 → scale 0, slot 0, cell (floor(0.5 * 13), floor(0.25 * 13)) = (6, 3).
    boxes = np.array([[0.5, 0.25, 100 / 416, 60 / 416]], np.float32)
    targets = encode_targets(boxes, [7], YOLOV3)
    assert [t.shape for t in targets] == [(13, 13, 3, 85), (26, 26, 3, 85), (52, 52, 3, 85)]
    positives = np.argwhere(targets[0].numpy()[..., 4] == 1)
    np.testing.assert_array_equal(positives, [[3, 6, 0]])
    np.testing.assert_allclose(targets[0][3, 6, 0, :5], [0.5, 0.25, 100 / 416, 60 / 416, 1])
    assert np.argmax(targets[0][3, 6, 0, 5:]) == 7
    assert targets[1].numpy().sum() == 0 and targets[2].numpy().sum() == 0


def test_runs_in_dataset_map_with_empty_images():
    cfg = YOLOV3.replace(num_classes=3, input_size=(128, 96))
    ragged = [np.zeros((0, 4), np.float32), np.array([[0.5, 0.5, 0.3, 0.4]], np.float32)]
    ds = tf.data.Dataset.from_generator(
        lambda: ((b, np.ones(len(b), np.int32)) for b in ragged),
        output_signature=(
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ),
    )
    batches = list(ds.map(lambda b, c: encode_targets(b, c, cfg)).batch(2))
    assert [tuple(t.shape) for t in batches[0]] == [
        (2, 4, 3, 3, 8),
        (2, 8, 6, 3, 8),
        (2, 16, 12, 3, 8),
    ]
    assert sum(float(tf.reduce_sum(t[0])) for t in batches[0]) == 0.0
    assert sum(float(tf.reduce_sum(t[1, ..., 4])) for t in batches[0]) == 1.0


def test_image_layout_carries_every_box():
    cfg = YOLOV3.replace(num_classes=4, max_boxes=5, ignore_against="image")
    boxes = np.array([[0.5, 0.5, 0.8, 0.8], [0.2, 0.2, 0.02, 0.03], [0, 0, 0, 0]], np.float32)
    targets = encode_targets(boxes, [1, 2, 0], cfg)
    for scale, target in enumerate(targets):
        assert target.shape == (cfg.cells(scale) + 5, 9)
        true_boxes, valid = target_boxes(target[None], cfg)
        assert target_grid(target[None], cfg).shape[1] == cfg.cells(scale)
        np.testing.assert_array_equal(valid[0], [True, True, False, False, False])
        np.testing.assert_allclose(true_boxes[0, :2], boxes[:2])
    # Every box sits on exactly one scale's grid.
    total = sum(float(tf.reduce_sum(t[: cfg.cells(s), 4])) for s, t in enumerate(targets))
    assert total == 2.0


def test_scale_layout_unpacks_assigned_boxes():
    boxes = np.array([[0.5, 0.5, 0.8, 0.8], [0.3, 0.6, 0.7, 0.5], [0.2, 0.2, 0.02, 0.03]])
    targets = encode_targets(boxes.astype(np.float32), [1, 2, 0], YOLOV3)
    # What the loss's ignore mask compares against on a "scale" target: its positive rows.
    rows, _, _ = target_rows(targets[0][None], YOLOV3, 0, YOLOV3.cells(0))
    assert rows.shape == (1, YOLOV3.max_positives(0), 85)
    got = rows.numpy()[0][rows.numpy()[0, :, 4] > 0, :4]
    np.testing.assert_allclose(got[np.argsort(got[:, 0])], boxes[[1, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="only ignore_against='image'"):
        target_boxes(targets[0][None], YOLOV3)


@pytest.mark.parametrize(
    "boxes, classes, message",
    [
        ([[0.5, 0.5, 0.2, np.nan]], [1], "finite"),
        ([[0.5, 0.5, 0.2, -0.1]], [1], "height must be > 0"),
        ([[1.5, 0.5, 0.2, 0.2]], [1], "centre must lie inside"),
        ([[0.5, 0.5, 0.2, 0.2], [0.4, 0.5, 0.2, 0.2]], [1, 80], "class id must be in"),
        ([[0.5, 0.5, 0.2, 0.2]], [-1], "class id must be in"),
    ],
)
def test_bad_boxes_raise_naming_rule_and_index(boxes, classes, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_targets(np.array(boxes, np.float32), np.array(classes), YOLOV3)
    assert f"box index {len(boxes) - 1}" in str(err.value).replace("\n", " ")


def test_too_many_boxes_raise_inside_dataset_map():
    cfg = YOLOV3.replace(max_boxes=2)
    boxes = np.tile([[0.5, 0.5, 0.1, 0.1]], (3, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors((boxes, np.zeros(3, np.int32)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="3 boxes, more than max_boxes=2"):
        list(ds.map(lambda b, c: encode_targets(b, c, cfg)))
