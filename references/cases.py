"""The parity cases shared by the tests and ``benchmarks.parity``: inputs in the references'
layouts, built from seeds, and the one call of kyolo that the YOLOv5 cases measure."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kyolo import YOLOV3, YOLOV3_TINY
from kyolo.compat.yolov5 import compute_loss
from references import keras_yolo3_np, yolov5_np

ANCHORS = np.array(YOLOV3.anchors, np.float32)
TINY_ANCHORS = np.array(YOLOV3_TINY.anchors, np.float32)
V3_CASES = [
    ((416, 416), ANCHORS, [3, 0, 10, 6]),
    ((320, 608), ANCHORS, [0, 12, 2]),
    ((256, 192), TINY_ANCHORS, [5, 0, 12]),
]
"""keras-yolo3 parity cases: ``(input (h, w), anchors, boxes per image)``, 80 classes."""


def random_true_boxes(rng, counts, height, width, num_classes, slots=12):
    """keras-yolo3 layout (m, T, 5): pixel x_min, y_min, x_max, y_max, class; trailing padding."""
    out = np.zeros((len(counts), slots, 5), np.float32)
    for b, n in enumerate(counts):
        x1, y1 = rng.uniform(0, width - 8, n), rng.uniform(0, height - 8, n)
        x2 = np.minimum(x1 + rng.uniform(2, width * 0.8, n), width)
        y2 = np.minimum(y1 + rng.uniform(2, height * 0.8, n), height)
        out[b, :n] = np.stack([x1, y1, x2, y2, rng.integers(0, num_classes, n)], -1)
    return out


def make_v3_case(seed, shape, anchors, counts, num_classes=80, spread=1.5):
    """keras-yolo3 inputs: raw heads ``N(0, spread²)`` per scale and ``y_true`` from the NumPy
    ``preprocess_true_boxes`` of random boxes, the last image with two boxes on one slot."""
    rng = np.random.default_rng(seed)
    true_boxes = random_true_boxes(rng, counts, *shape, num_classes=num_classes)
    true_boxes[-1, 1, :4] = true_boxes[-1, 0, :4]  # collision on one slot
    true_boxes[-1, 1, 4] = (true_boxes[-1, 0, 4] + 1) % num_classes
    y_true = keras_yolo3_np.preprocess_true_boxes(true_boxes, shape, anchors, num_classes)
    outputs = [
        (spread * rng.standard_normal((len(counts), *y.shape[1:3], 3 * (5 + num_classes)))).astype(
            np.float32
        )
        for y in y_true
    ]
    return outputs, y_true


HYP = dict(box=0.05, obj=1.0, cls=0.5, cls_pw=1.0, obj_pw=1.0, fl_gamma=0.0, anchor_t=4.0)
"""YOLOv5's ``hyp.scratch-low.yaml`` loss settings (the ``hyp`` of ``ComputeLoss``)."""
V5_ANCHORS = np.array(
    [
        [[10, 13], [16, 30], [33, 23]],
        [[30, 61], [62, 45], [59, 119]],
        [[116, 90], [156, 198], [373, 326]],
    ],
    np.float64,
)


def slot_keys(shapes, targets, anchors, strides, anchor_t):
    """Per scale the ``(b, a, gj, gi)`` slots YOLOv5's ``build_targets`` assigns the rows to."""
    grid_anchors = anchors / np.asarray(strides, np.float64)[:, None, None]
    _, _, indices, _ = yolov5_np.build_targets(shapes, targets, grid_anchors, anchor_t)
    return [list(zip(*(i.tolist() for i in idx), strict=True)) for idx in indices]


def unshared_targets(rng, shapes, anchors, strides, count, num_classes, empty=()):
    """Random rows, keeping each only if no two rows then share a slot (the parity condition)."""
    rows = np.zeros((0, 6))
    for _ in range(20 * count):
        if len(rows) == count:
            break
        image = rng.choice([b for b in range(shapes[0][0]) if b not in empty])
        wh = np.exp(rng.uniform(np.log(0.03), np.log(0.8), 2))
        row = np.array([[image, rng.integers(num_classes), *rng.random(2), *wh]])
        row = row.astype(np.float32).astype(np.float64)  # kyolo computes on float32 inputs
        candidate = np.concatenate([rows, row])
        keys = slot_keys(shapes, candidate, anchors, strides, 4.0)
        if all(len(set(k)) == len(k) for k in keys) and sum(map(len, keys)) > 0:
            rows = candidate
    assert len(rows) == count
    return rows


def v5_case(seed, batch, size, strides, num_classes, count, num_anchors=2, empty=()):
    """YOLOv5 inputs ``(p, targets, anchors, strides)``: heads in its ``(b, A, gh, gw, 5 + C)``
    layout and ``count`` target rows that share no slot (images in ``empty`` get none)."""
    rng = np.random.default_rng(seed)
    anchors = V5_ANCHORS[-len(strides) :, :num_anchors]
    shapes = [(batch, num_anchors, size[0] // s, size[1] // s, 5 + num_classes) for s in strides]
    p = [
        (rng.standard_normal(shape) * 0.7).astype(np.float32).astype(np.float64) for shape in shapes
    ]
    targets = unshared_targets(rng, shapes, anchors, strides, count, num_classes, empty)
    return p, targets, anchors, strides


V5_CASES = {
    "three_scales": (v5_case(0, 2, (32, 64), [8, 16, 32], 3, 6), {}),
    "rectangular_tall": (v5_case(1, 2, (64, 32), [8, 16, 32], 4, 6), {}),
    "empty_image": (v5_case(2, 3, (32, 32), [8, 16, 32], 3, 4, empty=(1,)), {}),
    "smoothing_focal": (
        v5_case(3, 2, (32, 64), [8, 16, 32], 3, 6),
        dict(label_smoothing=0.1, fl_gamma=1.5),
    ),
    "single_class": (v5_case(4, 2, (32, 64), [8, 16, 32], 1, 5), {}),
    "pos_weights": (
        v5_case(5, 2, (32, 64), [8, 16, 32], 3, 6),
        dict(cls_pw=1.7, obj_pw=0.6, obj=0.7),
    ),
    "two_scales": (v5_case(6, 2, (32, 48), [8, 16], 2, 5, num_anchors=3), dict(box=0.1, cls=0.3)),
    "no_targets": (v5_case(7, 2, (32, 32), [8, 16, 32], 3, 0), {}),
}
"""YOLOv5 parity cases: ``name → ((p, targets, anchors, strides), hyp changes)``."""


def run_compute_loss(p, targets, anchors, strides, hyp):
    """kyolo's ``compat.yolov5.compute_loss`` on a case: ``(loss, items, gradients)``."""
    variables = [tf.Variable(x, dtype=tf.float32) for x in p]
    with tf.GradientTape() as tape:
        loss, items = compute_loss(variables, targets, anchors, strides, hyp)
    grads = tape.gradient(loss, variables)
    return float(loss), [float(i) for i in items], [g.numpy() for g in grads]
