"""The sparse ``y_true`` layout against the dense one: same targets, rows sorted by slot."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import YOLOV3, YOLOV4, YOLOV5, YoloConfig
from kyolo.encode import encode_batch, encode_rows, encode_targets

ASSIGNERS = ["best_anchor", "best_anchor_per_scale", "multi_anchor", "ratio"]
BASES = {"best_anchor": YOLOV3, "multi_anchor": YOLOV4, "ratio": YOLOV5}


def config(assigner, ignore_against, num_classes=80, input_size=(96, 160), **changes):
    """A preset with ``assigner`` on a small rectangular input; valid for either layout."""
    base = BASES.get(assigner, YOLOV3)
    if ignore_against == "scale" and assigner in ("multi_anchor", "ratio"):
        base = base.with_loss(ignore_thresh=None)  # an ignore mask would need the box list
    changes = {"max_boxes": 30, **changes}
    return base.replace(
        assigner=assigner, ignore_against=ignore_against, num_classes=num_classes,
        input_size=input_size, **changes,
    )  # fmt: skip


def sparse(cfg: YoloConfig) -> YoloConfig:
    return cfg.replace(target_layout="sparse")


def random_image(rng, count, num_classes, rows=None):
    """``count`` boxes padded to ``rows``, with collisions: box 1 is box 0 a little larger (same
    cell and anchor) with another class, box 3 a copy of box 2 with the same class."""
    rows = count if rows is None else rows
    boxes = np.zeros((rows, 4), np.float32)
    boxes[:count, :2] = rng.uniform(0, 1, (count, 2))
    boxes[:count, 2:] = np.exp(rng.uniform(np.log(0.02), np.log(0.9), (count, 2)))
    classes = rng.integers(0, num_classes, rows).astype(np.int32)
    if count >= 4:
        boxes[1] = boxes[0] * [1, 1, 1.02, 1.01]
        classes[1] = (classes[0] + 1) % num_classes
        boxes[3], classes[3] = boxes[2], classes[2]
    return boxes, classes


def unpack(target, cfg, scale):
    """Check one image's sparse target; return its dense equivalent ``(S [+ max_boxes], 5 + C)``.

    The rows with obj > 0 come first with ascending slots, every other row is zero, and the box
    list (``"image"``) has a zero last column. Scattering the positives gives the dense grid.
    """
    target = np.asarray(target)
    rows, width = cfg.max_positives(scale), 6 + cfg.num_classes
    extra = cfg.max_boxes if cfg.ignore_against == "image" else 0
    assert target.shape == (rows + extra, width) and target.dtype == np.float32
    body, box_list = target[:rows], target[rows:]
    positive = body[:, 4] > 0
    count = int(positive.sum())
    assert positive[:count].all(), "positive rows must come first"
    np.testing.assert_array_equal(body[count:], 0)
    np.testing.assert_array_equal(body[:count, 4], 1)
    slots = body[:count, -1]
    assert np.array_equal(slots, np.round(slots)) and (slots >= 0).all()
    assert (np.diff(slots) > 0).all(), "slots must be ascending and distinct"
    grid = np.zeros((cfg.cells(scale), width - 1), np.float32)
    grid[slots.astype(np.int64)] = body[:count, :-1]
    np.testing.assert_array_equal(box_list[:, -1], 0)
    return np.concatenate([grid, box_list[:, :-1]])


def dense_rows(target, cfg):
    """A dense target as ``(S [+ max_boxes], 5 + C)`` rows."""
    return np.asarray(target).reshape(-1, 5 + cfg.num_classes)


def assert_same_targets(dense_cfg, boxes, classes):
    dense = encode_targets(boxes, classes, dense_cfg)
    rows = encode_targets(boxes, classes, sparse(dense_cfg))
    assert len(rows) == dense_cfg.num_scales
    positives = 0
    for scale, (d, s) in enumerate(zip(dense, rows, strict=True)):
        np.testing.assert_array_equal(unpack(s, dense_cfg, scale), dense_rows(d, dense_cfg))
        positives += int(np.sum(np.asarray(s)[:, 4] > 0))
    return positives


@pytest.mark.parametrize("num_classes", [1, 80])
@pytest.mark.parametrize("ignore_against", ["scale", "image"])
@pytest.mark.parametrize("assigner", ASSIGNERS)
def test_sparse_rows_scatter_to_the_dense_target(assigner, ignore_against, num_classes):
    cfg = config(assigner, ignore_against, num_classes)
    rng = np.random.default_rng(len(assigner) + num_classes)
    positives = 0
    for count, rows in [(0, 0), (0, 5), (7, 12), (30, 30)]:
        positives += assert_same_targets(cfg, *random_image(rng, count, num_classes, rows))
    assert positives > 30


@pytest.mark.parametrize("assigner", ["best_anchor", "multi_anchor", "ratio"])
def test_shared_slot_keeps_the_later_box_and_both_classes(assigner):
    cfg = config(assigner, "image", num_classes=3)
    boxes = (np.array([[0.3, 0.6, 0.2, 0.25]] * 2) * [[1, 1, 1, 1], [1, 1, 1, 1.01]]).astype(
        np.float32
    )
    rows = encode_targets(boxes, [0, 2], sparse(cfg))
    positives = np.concatenate([r.numpy()[: cfg.max_positives(s)] for s, r in enumerate(rows)])
    positives = positives[positives[:, 4] > 0]
    assert len(positives) > 0
    np.testing.assert_array_equal(positives[:, :4], np.broadcast_to(boxes[1], (len(positives), 4)))
    np.testing.assert_array_equal(
        positives[:, 5:8], np.broadcast_to([1, 0, 1], (len(positives), 3))
    )


def test_box_list_follows_the_rows():
    cfg = sparse(config("ratio", "image", num_classes=4))
    boxes = np.array([[0.5, 0.5, 0.3, 0.4], [0, 0, 0, 0], [0.2, 0.7, 0.1, 0.05]], np.float32)
    for scale, target in enumerate(encode_targets(boxes, [3, 0, 1], cfg)):
        box_list = target.numpy()[cfg.max_positives(scale) :]
        assert box_list.shape == (cfg.max_boxes, 10)
        # Real boxes packed first, in their order (kyolo.targets.box_list_index).
        np.testing.assert_array_equal(box_list[:2, :5], [[*boxes[0], 1], [*boxes[2], 1]])
        np.testing.assert_array_equal(box_list[2:], 0)
        np.testing.assert_array_equal(box_list[:, 5:], 0)


# Three 32x32 px boxes in a 64x64 input: best COCO anchor (33, 23), anchor 2 of scale 2 (8x8 grid),
# in cells (row, column) (7, 7), (0, 0) and (0, 4).
ONE_SLOT_EACH = np.array(
    [[0.9, 0.9, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5], [0.5, 0.1, 0.5, 0.5]], np.float32
)


def test_every_row_used_when_each_box_takes_its_own_slot():
    cfg = sparse(config("best_anchor", "scale", num_classes=2, max_boxes=3, input_size=(64, 64)))
    targets = encode_targets(ONE_SLOT_EACH, [0, 1, 0], cfg)
    assert [t.shape for t in targets] == [(3, 8)] * 3
    np.testing.assert_array_equal(targets[0], 0)
    np.testing.assert_array_equal(targets[1], 0)
    rows = targets[2].numpy()
    np.testing.assert_array_equal(rows[:, -1], np.array([0, 4, 63]) * 3 + 2)
    np.testing.assert_array_equal(rows[:, :5], np.column_stack([ONE_SLOT_EACH[[1, 2, 0]], [1] * 3]))
    np.testing.assert_array_equal(rows[:, 5:7], [[0, 1], [1, 0], [1, 0]])


def test_a_box_on_a_cell_corner_fills_the_ratio_bound_of_three_cells_per_anchor():
    # YOLOv5 scale 0 on 64x64 (8x8 grid, anchors 10x13, 16x30, 33x23 px): a 20x20 px box matches
    # all three (ratios < 4). Centre exactly on the corner of cell (4, 4): the left and upper
    # neighbours qualify, and so do the right and lower ones, which are the centre cell itself.
    cfg = sparse(config("ratio", "image", num_classes=1, max_boxes=1, input_size=(64, 64)))
    assert cfg.max_positives(0) == 9
    target = encode_targets(np.array([[0.5, 0.5, 20 / 64, 20 / 64]], np.float32), [0], cfg)[0]
    rows = target.numpy()[: cfg.max_positives(0)]
    np.testing.assert_array_equal(rows[:, 4], 1)  # every row is a positive
    cells = {(int(slot) // 3 // 8, int(slot) // 3 % 8) for slot in rows[:, -1]}
    assert cells == {(4, 4), (4, 3), (3, 4)}


def test_sparse_encoder_in_dataset_map():
    cfg = config("ratio", "image", num_classes=5)
    rng = np.random.default_rng(0)
    images = [random_image(rng, n, 5) for n in (0, 3, 9)]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(images),
        output_signature=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)),
    )
    (batch,) = list(ds.map(lambda b, c: encode_targets(b, c, sparse(cfg))).batch(3))
    for scale, target in enumerate(batch):
        assert target.shape == (3, cfg.max_positives(scale) + cfg.max_boxes, 11)
        for i, (boxes, classes) in enumerate(images):
            want = encode_targets(boxes, classes, cfg)[scale]
            np.testing.assert_array_equal(unpack(target[i], cfg, scale), dense_rows(want, cfg))


@pytest.mark.parametrize(
    "boxes, classes, message",
    [
        ([[0.5, 0.5, 0.2, np.nan]], [1], "finite"),
        ([[0.5, 0.5, 0.2, -0.1]], [1], "height must be > 0"),
        ([[0.5, 0.5, 0.2, 1e-42]], [1], "height must be > 0"),
        ([[1.5, 0.5, 0.2, 0.2]], [1], "centre must lie inside"),
        ([[0.5, 0.5, 0.2, 0.2], [0.4, -0.01, 0.2, 0.2]], [1, 1], "centre must lie inside"),
        ([[0.5, 0.5, 0.2, 0.2], [0.4, 0.5, 0.2, 0.2]], [1, 80], "class id must be in"),
        ([[0.5, 0.5, 0.2, 0.2]], [-1], "class id must be in"),
    ],
)
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_bad_boxes_raise_naming_rule_and_index(boxes, classes, message, layout):
    cfg = YOLOV5.replace(target_layout=layout)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_targets(np.array(boxes, np.float32), np.array(classes), cfg)
    assert f"box index {len(boxes) - 1}" in str(err.value).replace("\n", " ")


def test_a_box_breaking_two_rules_names_the_first():
    boxes = np.array([[2.0, 0.5, 0.2, -1.0]], np.float32)  # centre outside and height <= 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="height must be > 0"):
        encode_targets(boxes, [99], sparse(config("best_anchor", "scale")))


def test_padding_rows_are_not_checked():
    cfg = sparse(config("ratio", "image", num_classes=3))
    boxes = np.array([[5.0, -3.0, 0.0, -1.0], [0.5, 0.5, 0.2, 0.2]], np.float32)
    targets = encode_targets(boxes, [77, 2], cfg)
    assert sum(int(np.sum(t.numpy()[:, 4] > 0)) for t in targets) > 1


def test_too_many_boxes_raise_inside_dataset_map():
    cfg = sparse(config("multi_anchor", "image", max_boxes=2))
    boxes = np.tile([[0.5, 0.5, 0.1, 0.1]], (3, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors((boxes, np.zeros(3, np.int32)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="3 boxes, more than max_boxes=2"):
        list(ds.map(lambda b, c: encode_targets(b, c, cfg)))


def batch_rows(rng, batch, count, num_classes):
    rows = []
    for image in range(batch):
        boxes, classes = random_image(rng, count, num_classes)
        rows.append(np.column_stack([np.full(count, image), classes, boxes]))
    return np.concatenate(rows).astype(np.float32)


@pytest.mark.parametrize("assigner", ["best_anchor", "ratio"])
def test_batch_encoder_equals_the_per_image_encoder(assigner):
    cfg = sparse(config(assigner, "scale", num_classes=3))
    rows = batch_rows(np.random.default_rng(1), 3, 12, 3)
    whole = encode_rows(rows[:, 0], rows[:, 2:], rows[:, 1], 3, cfg)
    for image in range(3):
        mine = rows[rows[:, 0] == image]
        for got, want in zip(whole, encode_targets(mine[:, 2:], mine[:, 1], cfg), strict=True):
            np.testing.assert_array_equal(got[image].numpy(), want.numpy())


def test_batch_encoder_compiles_with_xla():
    cfg = sparse(config("ratio", "scale", num_classes=3))
    rows = batch_rows(np.random.default_rng(2), 2, 10, 3)

    @tf.function(jit_compile=True)
    def encode(rows):
        return encode_rows(rows[:, 0], rows[:, 2:], rows[:, 1], 2, cfg)

    want = encode_rows(rows[:, 0], rows[:, 2:], rows[:, 1], 2, cfg)
    for got, w in zip(encode(tf.constant(rows)), want, strict=True):
        assert got.shape == (2, w.shape[1], 9)
        np.testing.assert_array_equal(got.numpy(), w.numpy())


def test_batch_encoder_rejects_more_positives_than_rows():
    # Nothing caps the batch encoder's boxes at max_boxes: 3 boxes on distinct slots, 2 rows.
    cfg = sparse(config("best_anchor", "scale", num_classes=2, max_boxes=2, input_size=(64, 64)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more positive slots at a scale"):
        encode_rows(np.zeros(3), ONE_SLOT_EACH, np.zeros(3), 1, cfg)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_batch_encoder_sets_no_class_for_unknown_ids(layout):
    # The batch encoder checks nothing: an id outside [0, C) sets no class, as one_hot would.
    cfg = config("ratio", "scale", num_classes=3).replace(target_layout=layout)
    rows = np.array([[0, 7, 0.3, 0.6, 0.2, 0.25], [0, -1, 0.7, 0.2, 0.3, 0.1]], np.float32)
    targets = encode_rows(rows[:, 0], rows[:, 2:], rows[:, 1], 1, cfg)
    flat = np.concatenate([t.numpy().reshape(-1, t.shape[-1]) for t in targets])
    positives = flat[flat[:, 4] > 0]
    assert len(positives) > 2
    np.testing.assert_array_equal(positives[:, 5:8], 0)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("ignore_against", ["scale", "image"])
@pytest.mark.parametrize("assigner", ASSIGNERS)
def test_encoding_a_batch_of_images_equals_stacking_the_images(assigner, ignore_against, layout):
    cfg = config(assigner, ignore_against, num_classes=7).replace(target_layout=layout)
    rng = np.random.default_rng(3)
    # 12 rows per image, padded: 0 (empty), 4 (with collisions), 12 boxes.
    images = [random_image(rng, count, 7, rows=12) for count in (0, 4, 12)]
    boxes = np.stack([b for b, _ in images])
    classes = np.stack([c for _, c in images])
    ds = tf.data.Dataset.from_tensor_slices((boxes, classes)).batch(3, drop_remainder=True)
    (got,) = list(ds.map(lambda b, c: encode_batch(b, c, cfg)))
    for scale, target in enumerate(got):
        want = np.stack([encode_targets(b, c, cfg)[scale] for b, c in images])
        np.testing.assert_array_equal(target.numpy(), want)
    assert sum(int(np.sum(t.numpy()[..., 4] > 0)) for t in got) > 10


def test_a_bad_box_in_a_batch_names_its_image_and_index():
    boxes = np.full((3, 2, 4), 0.2, np.float32)
    boxes[2, 1, 0] = 1.5
    with pytest.raises(tf.errors.InvalidArgumentError, match="centre must lie inside") as err:
        encode_batch(boxes, np.zeros((3, 2), np.int32), sparse(config("best_anchor", "scale")))
    assert "image 2, box index 1" in str(err.value).replace("\n", " ")
    cfg = sparse(config("best_anchor", "scale", max_boxes=1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 0 has 2 boxes, more than"):
        encode_batch(boxes[:2], np.zeros((2, 2), np.int32), cfg)


def test_encoding_a_batch_needs_a_static_batch_size():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((3, 2, 4), np.float32), np.zeros((3, 2))))
    with pytest.raises(ValueError, match="drop_remainder=True"):
        ds.batch(2).map(lambda b, c: encode_batch(b, c, YOLOV3))
