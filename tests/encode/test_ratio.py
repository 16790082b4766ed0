"""YOLOv5's ``"ratio"`` assigner against ``build_targets`` of references/yolov5_np.py."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.compat.yolov5 import yolov5_config
from kyolo.encode import encode_rows, encode_targets
from references import yolov5_np as ref
from references.cases import HYP
from references.cases import V5_ANCHORS as ANCHORS

STRIDES = [8, 16, 32]


def shapes_for(batch, height, width, num_classes=3, strides=STRIDES):
    return [(batch, 3, height // s, width // s, 5 + num_classes) for s in strides]


def kyolo_slots(y_true):
    """{(b, a, gj, gi): (x·gw − gi, y·gh − gj, w·gw, h·gh)} of a (b, gh, gw, A, 5 + C) grid."""
    grid = y_true.numpy()
    gh, gw = grid.shape[1:3]
    out = {}
    for b, gj, gi, a in np.argwhere(grid[..., 4] > 0):
        x, y, w, h = grid[b, gj, gi, a, :4].astype(np.float64)
        out[(b, a, gj, gi)] = (x * gw - gi, y * gh - gj, w * gw, h * gh)
    return out


def reference_slots(shapes, targets, anchors=ANCHORS, strides=STRIDES, anchor_t=4.0):
    """Per scale {(b, a, gj, gi): tbox of the last row} — the row whose IoU YOLOv5's tobj keeps."""
    grid_anchors = anchors / np.asarray(strides, np.float64)[:, None, None]
    _, tbox, indices, _ = ref.build_targets(shapes, targets, grid_anchors, anchor_t)
    return [
        {tuple(int(v) for v in key): tuple(box) for *key, box in zip(*idx, tb, strict=True)}
        for idx, tb in zip(indices, tbox, strict=True)
    ]


def random_targets(rng, batch, count, num_classes=3):
    wh = np.exp(rng.uniform(np.log(0.02), np.log(0.9), (count, 2)))
    rows = np.column_stack(
        [
            rng.integers(0, batch, count),
            rng.integers(0, num_classes, count),
            rng.random((count, 2)),
            wh,
        ]
    )
    return rows.astype(np.float32).astype(np.float64)  # kyolo sees float32: give both the same


# Hand-placed centres in a 64 x 96 input (grids 8x12, 4x6, 2x3): on the image edges, exactly on
# cell borders (integer cells: YOLOv5 also adds the "right" candidate, which is the centre cell),
# half a cell from a border, and a size at the anchor_t boundary: 8.25 px wide against the 33 px
# anchor is a ratio of exactly 4, rejected (8.25 / 96 is exact in float32).
EDGE_TARGETS = np.array(
    [
        [0, 0, 1.0, 0.5, 0.1, 0.1],
        [0, 1, 0.0, 0.0, 0.05, 0.2],
        [0, 2, 0.25, 0.75, 0.2, 0.2],
        [1, 1, 0.5 + 1 / 96, 0.99, 0.3, 0.6],
        [1, 0, 0.03, 0.97, 40 / 96, 52 / 64],
        [1, 2, 0.6, 0.4, 8.25 / 96, 0.1],
    ]
).astype(np.float32)


@pytest.mark.parametrize(
    "seed, batch, size, count",
    [(0, 2, (64, 96), 12), (1, 3, (96, 64), 30), (2, 1, (64, 64), 0), (3, 2, (32, 32), 8)],
)
def test_batch_encoder_matches_build_targets(seed, batch, size, count):
    targets = random_targets(np.random.default_rng(seed), batch, count)
    shapes = shapes_for(batch, *size)
    cfg = yolov5_config(shapes, ANCHORS, STRIDES, HYP)
    y_true = encode_rows(targets[:, 0], targets[:, 2:], targets[:, 1], batch, cfg)
    for got, want in zip(y_true, reference_slots(shapes, targets), strict=True):
        got = kyolo_slots(got)
        assert sorted(got) == sorted(want)
        for key, box in want.items():
            np.testing.assert_allclose(got[key], box, rtol=1e-5, atol=1e-5)


def test_edge_cases_match_build_targets():
    shapes = shapes_for(2, 64, 96)
    cfg = yolov5_config(shapes, ANCHORS, STRIDES, HYP)
    t = EDGE_TARGETS
    y_true = encode_rows(t[:, 0], t[:, 2:], t[:, 1], 2, cfg)
    want = reference_slots(shapes, t)
    assert sum(len(w) for w in want) > 20
    for got, w in zip(y_true, want, strict=True):
        got = kyolo_slots(got)
        assert sorted(got) == sorted(w)
        for key, box in w.items():
            np.testing.assert_allclose(got[key], box, rtol=1e-5, atol=1e-5)


def test_hand_computed_neighbours_and_image_edge():
    # One anchor of 8x8 px on a 4x4 grid (stride 8, 32 px input). Centre (1.3, 2.5) cells:
    # x fraction 0.3 < 0.5 and x > 1 → also the left cell; y fraction 0.5 → no y neighbour.
    cfg = yolov5_config([(1, 1, 4, 4, 6)], [[[8.0, 8.0]]], [8], HYP)
    y_true = encode_targets(np.array([[1.3 / 4, 2.5 / 4, 0.25, 0.25]], np.float32), [0], cfg)[0]
    slots = kyolo_slots(y_true[None])
    assert sorted(slots) == [(0, 0, 2, 0), (0, 0, 2, 1)]
    np.testing.assert_allclose(slots[(0, 0, 2, 0)][:2], [1.3, 0.5], rtol=1e-6)  # in [−0.5, 1.5)
    # Centre (0.3, 3.7): the left and lower neighbours would be outside the image.
    y_true = encode_targets(np.array([[0.3 / 4, 3.7 / 4, 0.25, 0.25]], np.float32), [0], cfg)[0]
    assert sorted(kyolo_slots(y_true[None])) == [(0, 0, 3, 0)]


def test_per_image_encoder_in_dataset_map_equals_batch_encoder():
    shapes = shapes_for(2, 64, 96)
    cfg = yolov5_config(shapes, ANCHORS, STRIDES, HYP).replace(max_boxes=8)
    t = EDGE_TARGETS.astype(np.float32)
    per_image = [t[t[:, 0] == b] for b in range(2)]
    ds = tf.data.Dataset.from_generator(
        lambda: ((rows[:, 2:], rows[:, 1].astype(np.int32)) for rows in per_image),
        output_signature=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)),
    )
    (batched,) = list(ds.map(lambda b, c: encode_targets(b, c, cfg)).batch(2))
    whole = encode_rows(t[:, 0], t[:, 2:], t[:, 1], 2, cfg)
    for a, b in zip(batched, whole, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_batch_encoder_compiles_with_xla_and_drops_foreign_rows():
    shapes = shapes_for(2, 64, 96)
    cfg = yolov5_config(shapes, ANCHORS, STRIDES, HYP)
    # Rows of image 2 (outside a batch of 2) and a zero-width row are dropped.
    extra = np.array([[2, 0, 0.5, 0.5, 0.2, 0.2], [0, 0, 0.5, 0.5, 0.0, 0.2]])
    t = np.concatenate([EDGE_TARGETS, extra]).astype(np.float32)

    @tf.function(jit_compile=True)
    def encode(rows):
        return encode_rows(rows[:, 0], rows[:, 2:], rows[:, 1], 2, cfg)

    for got, want in zip(
        encode(t), encode_rows(t[:-2, 0], t[:-2, 2:], t[:-2, 1], 2, cfg), strict=True
    ):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
