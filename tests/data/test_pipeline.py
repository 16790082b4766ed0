import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.data.annotations import Annotation, AnnotationError
from kyolo.data.augment import (
    Augmentation,
    flip_horizontal,
    hsv_jitter,
    random_augment,
    zoom_shift,
)
from kyolo.data.pipeline import decode_image, make_dataset, shard_order
from kyolo.geometry import PAD_VALUE, letterbox, unletterbox_boxes

# An edge at a fractional position leaves a partly covered pixel; thresholding the ink at half
# coverage rounds the edge to the nearest pixel boundary, so the ink's pixel box is within half a
# pixel of the exact box. (The boxes themselves are checked to 1e-4 against independent formulas.)
PIXEL_TOLERANCE = 0.5


def _image_with_box(height, width, box, channels=3, dtype=np.uint8):
    """Black image with ``box`` (integer xyxy) filled white."""
    image = np.zeros((height, width, channels), dtype)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = np.iinfo(dtype).max if dtype != np.float32 else 1.0
    return image


def _ink_box(image):
    """xyxy bounding box of pixels brighter than the grey padding (continuous coordinates)."""
    mask = np.asarray(image).mean(axis=-1) > PAD_VALUE
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def _letterbox_numpy(box, h, w, out_h, out_w):
    """Independent float64 letterbox of one box."""
    s = min(out_h / h, out_w / w)
    pad_y, pad_x = np.floor((out_h - round(h * s)) / 2), np.floor((out_w - round(w * s)) / 2)
    return np.asarray(box, np.float64) * s + [pad_x, pad_y, pad_x, pad_y], s, pad_y, pad_x


@pytest.mark.parametrize("shape", [(60, 100), (100, 45), (37, 211), (64, 96)])
def test_letterbox_moves_boxes_and_pixels_together(shape):
    h, w = shape
    size = (64, 96)
    box = (w // 5, h // 4, w // 2 + 3, h // 2 + 5)
    canvas, boxes, (scale, pad_y, pad_x) = letterbox(_image_with_box(h, w, box), [box], size)
    assert canvas.shape == (64, 96, 3) and canvas.dtype == tf.float32
    expected, s, ey, ex = _letterbox_numpy(box, h, w, *size)
    np.testing.assert_allclose(boxes.numpy()[0], expected, atol=1e-4)
    np.testing.assert_allclose([scale, pad_y, pad_x], [s, ey, ex], rtol=1e-6)
    np.testing.assert_allclose(_ink_box(canvas), expected, atol=PIXEL_TOLERANCE)
    # Outside the scaled image the canvas is the grey padding.
    top_bar = canvas.numpy()[: int(pad_y)]
    np.testing.assert_array_equal(top_bar, np.full_like(top_bar, PAD_VALUE))
    assert float(tf.reduce_min(canvas)) >= 0.0 and float(tf.reduce_max(canvas)) <= 1.0


@pytest.mark.parametrize(
    "shape, size", [((60, 100), (64, 96)), ((333, 127), (416, 416)), ((480, 640), (320, 256))]
)
def test_unletterbox_round_trip(shape, size):
    h, w = shape
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (20, 2, 2)) * [w, h]
    boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).astype(np.float32)
    image = np.zeros((h, w, 3), np.uint8)
    _, moved, params = letterbox(image, boxes, size)
    np.testing.assert_allclose(unletterbox_boxes(moved, *params).numpy(), boxes, atol=1e-4)
    # Batched parameters broadcast against (batch, n, 4) boxes.
    batch = unletterbox_boxes(tf.stack([moved, moved]), *(tf.fill([2, 1], p) for p in params))
    np.testing.assert_allclose(batch.numpy()[1], boxes, atol=1e-4)


def test_flip_is_exact():
    box = (5, 7, 19, 30)
    image = tf.constant(_image_with_box(40, 64, box, dtype=np.float32))
    flipped, boxes = flip_horizontal(image, tf.constant([box], tf.float32))
    np.testing.assert_array_equal(boxes.numpy()[0], [64 - 19, 7, 64 - 5, 30])
    np.testing.assert_array_equal(_ink_box(flipped), boxes.numpy()[0])


@pytest.mark.parametrize(
    "zoom, shift_y, shift_x",
    [(1.0, 3.0, -5.0), (0.8, 2.5, 6.25), (1.3, -4.0, 1.5), (0.75, 0.0, 0.0)],
)
def test_zoom_shift_moves_boxes_with_pixels(zoom, shift_y, shift_x):
    height, width = 64, 96
    box = (30, 20, 55, 41)
    image = tf.constant(_image_with_box(height, width, box, dtype=np.float32))
    out, boxes, classes = zoom_shift(
        image, tf.constant([box], tf.float32), tf.constant([4]), zoom, shift_y, shift_x
    )
    x0, y0, x1, y1 = box
    expected = [
        zoom * (x0 - width / 2) + width / 2 + shift_x,
        zoom * (y0 - height / 2) + height / 2 + shift_y,
        zoom * (x1 - width / 2) + width / 2 + shift_x,
        zoom * (y1 - height / 2) + height / 2 + shift_y,
    ]
    np.testing.assert_allclose(boxes.numpy()[0], expected, atol=1e-4)
    np.testing.assert_array_equal(classes.numpy(), [4])
    np.testing.assert_allclose(_ink_box(out), expected, atol=PIXEL_TOLERANCE)


def test_zoom_shift_clips_and_removes_small_boxes():
    image = tf.zeros((64, 64, 3))
    boxes = tf.constant([[0, 0, 10, 10], [20, 20, 40, 40], [50, 5, 63, 20]], tf.float32)
    # Shift left by 9: the first box keeps 1 px (< 2 px, removed).
    _, moved, classes = zoom_shift(image, boxes, tf.constant([0, 1, 2]), 1.0, 0.0, -9.0)
    np.testing.assert_allclose(moved.numpy(), [[11, 20, 31, 40], [41, 5, 54, 20]])
    np.testing.assert_array_equal(classes.numpy(), [1, 2])
    # Shift right by 20: the third box leaves the canvas (clipped to zero width, removed).
    _, moved, classes = zoom_shift(image, boxes, tf.constant([0, 1, 2]), 1.0, 0.0, 20.0)
    np.testing.assert_allclose(moved.numpy(), [[20, 0, 30, 10], [40, 20, 60, 40]])
    np.testing.assert_array_equal(classes.numpy(), [0, 1])


def test_random_augment_moves_boxes_with_pixels_and_is_seeded():
    box = (30, 20, 55, 41)
    image = tf.constant(_image_with_box(64, 96, box, dtype=np.float32))
    geometry_only = Augmentation(zoom=0.3, translate=0.1, hue=0, saturation=0, value=0)

    def run(seed, config=geometry_only):
        return random_augment(
            image, tf.constant([box], tf.float32), tf.constant([3]), tf.constant([seed, 1]), config
        )

    for seed in range(6):
        out, boxes, classes = run(seed)
        assert classes.numpy().tolist() == [3]
        np.testing.assert_allclose(_ink_box(out), boxes.numpy()[0], atol=PIXEL_TOLERANCE)
        again, boxes_again, _ = run(seed)
        np.testing.assert_array_equal(again.numpy(), out.numpy())
        np.testing.assert_array_equal(boxes_again.numpy(), boxes.numpy())
    # Without zoom and shift the geometry is exactly the flip, or nothing.
    for prob, expected in [(1.0, [96 - 55, 20, 96 - 30, 41]), (0.0, box)]:
        config = Augmentation(flip_prob=prob, zoom=0, translate=0, hue=0, saturation=0, value=0)
        out, boxes, _ = run(0, config)
        np.testing.assert_array_equal(boxes.numpy()[0], expected)
        np.testing.assert_array_equal(_ink_box(out), expected)


def test_hsv_jitter():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 1, (8, 8, 3)).astype(np.float32))
    np.testing.assert_allclose(hsv_jitter(image, 0.0, 1.0, 1.0).numpy(), image.numpy(), atol=1e-5)
    red = tf.constant(np.tile([[[1.0, 0.0, 0.0]]], (2, 2, 1)).astype(np.float32))
    # A third of a turn takes red to green; half the value halves it.
    np.testing.assert_allclose(
        hsv_jitter(red, 1 / 3, 1.0, 0.5).numpy()[0, 0], [0, 0.5, 0], atol=1e-5
    )
    grey = tf.fill([2, 2, 3], 0.4)
    np.testing.assert_allclose(hsv_jitter(grey, 0.2, 3.0, 1.0).numpy(), grey.numpy(), atol=1e-6)


def test_decode_grey_rgba_and_16_bit_to_3_channels(tmp_path, write_image):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    for array, expected in [
        (grey, np.repeat(grey[..., None], 3, axis=-1)),
        (rgba, rgba[..., :3]),
        (deep, np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, axis=-1)),
    ]:
        path = write_image(tmp_path / f"{array.dtype}{array.ndim}.png", 7, 5, array=array)
        image = decode_image(tf.io.read_file(path))
        assert image.shape == (5, 7, 3) and image.dtype == tf.uint8
        np.testing.assert_array_equal(image.numpy(), expected)


@pytest.fixture
def annotations(tmp_path, write_image):
    """Four images of different sizes and pixel formats, 1-3 boxes each."""
    specs = [
        ("rgb.png", 50, 30, 3, np.uint8, [[2, 3, 20, 25]], [0]),
        ("grey.png", 40, 64, 1, np.uint8, [[1, 1, 30, 30], [5, 40, 39, 63]], [1, 2]),
        ("rgba.png", 96, 48, 4, np.uint8, [[10, 10, 50, 40]] * 3, [2, 1, 0]),
        ("deep.png", 33, 33, 1, np.uint16, [[0, 0, 33, 33]], [1]),
    ]
    out = []
    for name, w, h, channels, dtype, boxes, classes in specs:
        path = write_image(tmp_path / name, w, h, channels=channels, dtype=dtype)
        out.append(Annotation(path, w, h, np.array(boxes), np.array(classes)))
    return out


CFG = YoloConfig(num_classes=3, input_size=(64, 96), max_boxes=4)


def test_make_dataset_eval_shapes_and_boxes(annotations):
    ds = make_dataset(annotations, CFG, batch_size=3, training=False)
    batches = list(ds)
    assert [len(b["index"]) for b in batches] == [3, 1]
    first = batches[0]
    assert first["image"].shape == (3, 64, 96, 3) and first["image"].dtype == tf.float32
    assert first["boxes"].shape == (3, 4, 4) and first["classes"].shape == (3, 4)
    np.testing.assert_array_equal(first["index"].numpy(), [0, 1, 2])
    np.testing.assert_array_equal(first["num_boxes"].numpy(), [1, 2, 3])
    np.testing.assert_array_equal(first["classes"].numpy()[1], [1, 2, -1, -1])
    np.testing.assert_array_equal(first["boxes"].numpy()[1, 2:], 0)
    for batch in batches:
        for k, index in enumerate(batch["index"].numpy()):
            n = int(batch["num_boxes"][k])
            back = unletterbox_boxes(
                batch["boxes"][k, :n], batch["ratio"][k], batch["pad_y"][k], batch["pad_x"][k]
            )
            np.testing.assert_allclose(back.numpy(), annotations[index].boxes, atol=1e-3)


def test_make_dataset_training_is_seeded(annotations):
    def epochs(seed):
        ds = make_dataset(annotations, CFG, batch_size=2, training=True, seed=seed)
        return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(2)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for a, b in zip(first, again, strict=True):
        for x, y in zip(a, b, strict=True):
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
    # A new epoch draws new augmentations; another seed gives another stream.
    assert not np.array_equal(first[0][0]["image"], first[1][0]["image"])
    assert not np.array_equal(first[0][0]["image"], other[0][0]["image"])
    for epoch in first:
        assert sorted(np.concatenate([b["index"] for b in epoch]).tolist()) == [0, 1, 2, 3]
        for batch in epoch:
            assert batch["image"].min() >= 0 and batch["image"].max() <= 1


def test_make_dataset_with_encoder(annotations):
    seen = []

    def encode(image, boxes, classes):
        seen.append((image.shape, boxes.shape, classes.dtype))
        return image, tf.reduce_sum(classes) + 10 * tf.shape(boxes)[0]

    ds = make_dataset(annotations, CFG, batch_size=4, training=False, encode=encode)
    x, y = next(iter(ds))
    assert x.shape == (4, 64, 96, 3)
    np.testing.assert_array_equal(y.numpy(), [10, 23, 33, 11])
    assert seen[0][0] == (64, 96, 3) and seen[0][1].as_list() == [None, 4]
    assert seen[0][2] == tf.int32


def test_make_dataset_too_many_boxes(annotations):
    with pytest.raises(ValueError, match=r"rgba\.png has 3 boxes, more than cfg.max_boxes=2"):
        make_dataset(annotations, CFG.replace(max_boxes=2), batch_size=2, training=False)
    # An encoder owns the limit (it raises its own error), so the dataset builds.
    make_dataset(
        annotations,
        CFG.replace(max_boxes=2),
        batch_size=2,
        training=False,
        encode=lambda image, boxes, classes: (image, classes),
    )


def test_make_dataset_checks_decoded_size(annotations):
    wrong = Annotation(annotations[0].image_path, 51, 30, np.zeros((0, 4)), np.zeros((0,)))
    ds = make_dataset([wrong], CFG, batch_size=1, training=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="differs from its annotation"):
        next(iter(ds))


@pytest.mark.parametrize("training", [False, True])
def test_cached_dataset_gives_the_same_elements(annotations, training):
    cfg = CFG.replace(max_boxes=8)
    augment = Augmentation(mosaic_prob=1.0, mixup_prob=0.5)  # partners read from the cache too

    def epochs(cache):
        ds = make_dataset(
            annotations, cfg, batch_size=3, training=training, seed=4, augment=augment, cache=cache
        )
        return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(2)]

    for epoch, cached in zip(epochs(False), epochs(True), strict=True):
        assert len(epoch) == len(cached) == 2
        for batch, other in zip(epoch, cached, strict=True):
            assert batch.keys() == other.keys()
            for key in batch:
                np.testing.assert_array_equal(other[key], batch[key], err_msg=key)


def test_cache_names_an_image_that_does_not_decode(annotations, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    bad = Annotation(str(broken), 8, 8, np.zeros((0, 4)), np.zeros((0,)))
    with pytest.raises(AnnotationError, match=r"broken\.png: cannot decode the image"):
        make_dataset([*annotations, bad], CFG, batch_size=2, training=False, cache=True)


def _context(workers, index):
    return tf.distribute.InputContext(
        num_input_pipelines=workers, input_pipeline_id=index, num_replicas_in_sync=workers
    )


@pytest.mark.parametrize(
    "size, workers, expected",
    [
        (6, 2, [[0, 2, 4], [1, 3, 5]]),
        (6, 3, [[0, 3], [1, 4], [2, 5]]),
        # 5 over 2: element 0 comes twice (0 0 1 2 3 4), 3 steps each
        (5, 2, [[0, 1, 3], [0, 2, 4]]),
        # 4 over 3: elements 0 and 1 come twice (0 0 1 1 2 3)
        (4, 3, [[0, 1], [0, 2], [1, 3]]),
    ],
)
def test_shard_order_gives_each_worker_every_wth_element(size, workers, expected):
    ds = tf.data.Dataset.range(size)
    shards = [
        list(shard_order(ds, size, _context(workers, i)).as_numpy_iterator())
        for i in range(workers)
    ]
    assert shards == expected


def _two_epochs(annotations, context, augment=True):
    """Two epochs of training batches (numpy), global batch 4; a worker's shard with
    ``context``."""
    ds = make_dataset(
        annotations,
        CFG.replace(max_boxes=8),
        batch_size=4,
        training=True,
        seed=5,
        augment=augment,
        input_context=context,
    )
    return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(2)]


def test_worker_shards_split_the_single_process_batches(annotations):
    """Two workers' per-replica batches of step j together are the single process's batch j,
    image for image (same order, same augmentation seeds), for two epochs."""
    augment = Augmentation(mosaic_prob=0.5)

    def epochs(context):
        return _two_epochs(annotations, context, augment=augment)

    single = epochs(None)
    workers = [epochs(_context(2, i)) for i in range(2)]
    for epoch in range(2):
        whole = single[epoch][0]  # one global batch of 4
        shards = [w[epoch] for w in workers]
        assert [len(b["index"]) for s in shards for b in s] == [2, 2]
        got = {
            i: img for s in shards for b in s for i, img in zip(b["index"], b["image"], strict=True)
        }
        assert sorted(got) == sorted(whole["index"].tolist()) == [0, 1, 2, 3]
        for i, image in zip(whole["index"], whole["image"], strict=True):
            np.testing.assert_array_equal(got[i], image)
    assert not np.array_equal(single[0][0]["image"], single[1][0]["image"])


def test_worker_shards_take_the_single_process_batches_step_by_step(annotations):
    """Over several steps too: step j of every worker holds images of the single process's
    global batch j (12 images, 3 steps of 4, two workers of 2, two epochs)."""

    def steps(context):
        epochs = _two_epochs(annotations * 3, context)
        return [[sorted(b["index"].tolist()) for b in epoch] for epoch in epochs]

    single = steps(None)
    workers = [steps(_context(2, i)) for i in range(2)]
    for epoch in range(2):
        assert len(single[epoch]) == 3
        for j, batch in enumerate(single[epoch]):
            assert sorted(workers[0][epoch][j] + workers[1][epoch][j]) == batch
    assert single[0] != single[1]  # reshuffled each epoch
