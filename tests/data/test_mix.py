import math

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import YoloConfig
from kyolo.data.annotations import Annotation
from kyolo.data.augment import Augmentation, random_augment
from kyolo.data.mix import mixup, mosaic, mosaic_offsets, random_example, sample_mixup_ratio
from kyolo.data.pipeline import make_dataset
from kyolo.geometry import PAD_VALUE, resample

H, W = 64, 96
COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
# Two resamplings (letterbox, then the half-size tile) blur an edge over ~2 px; thresholding the
# colour at half strength puts the edge within a pixel of the exact one.
PIXEL_TOLERANCE = 1.0
NO_JITTER = dict(flip_prob=0, zoom=0, translate=0, hue=0, saturation=0, value=0)


def _tile(box, colour, height=H, width=W):
    """Black canvas with ``box`` (integer xyxy) painted ``colour``, as a (image, boxes, classes)."""
    image = np.zeros((height, width, 3), np.float32)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = colour
    return tf.constant(image), tf.constant([box], tf.float32), tf.constant([0], tf.int32)


def _colour_box(image, colour):
    """xyxy pixel box of the pixels within half a level of ``colour`` (None if there are none)."""
    mask = np.abs(np.asarray(image) - colour).max(axis=-1) < 0.5
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def test_mosaic_hand_case():
    # 64 x 64 canvas, centre (c_y, c_x) = (24, 40). A tile point moves as (x / 2 + t_x, y / 2 + t_y)
    # with t = (c_y - 32, c_x - 32) = (-8, 8) top-left, (-8, 40) top-right, (24, 8) bottom-left,
    # (24, 40) bottom-right, then is clipped to the tile's quadrant.
    image = tf.zeros((64, 64, 3))
    tiles = [
        (image, tf.constant([[20.0, 30, 60, 50]]), tf.constant([0])),
        (image, tf.constant([[8.0, 16, 40, 48]]), tf.constant([1])),
        (image, tf.constant([[0.0, 0, 64, 10]]), tf.constant([2])),
        (image, tf.constant([[2.0, 2, 5, 5], [10, 60, 60, 64]]), tf.constant([3, 4])),
    ]
    _, boxes, classes = mosaic(tiles, 24, 40)
    expected = [
        [20 / 2 + 8, 30 / 2 - 8, 60 / 2 + 8, 50 / 2 - 8],  # [18, 7, 38, 17], inside [0,40)x[0,24)
        [8 / 2 + 40, 16 / 2 - 8, 40 / 2 + 40, 48 / 2 - 8],  # [44, 0, 60, 16]
        [0 / 2 + 8, 0 / 2 + 24, 64 / 2 + 8, 10 / 2 + 24],  # [8, 24, 40, 29]
        # [2, 2, 5, 5] → [41, 25, 42.5, 26.5]: 1.5 px wide, removed.
        [10 / 2 + 40, 60 / 2 + 24, 64, 64 / 2 + 24],  # x_max 60 / 2 + 40 = 70 clipped to 64
    ]
    np.testing.assert_allclose(boxes.numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(classes.numpy(), [0, 1, 2, 4])


@pytest.mark.parametrize(
    "centre, boxes",
    [
        ((32, 48), [(10, 8, 60, 40), (30, 20, 90, 50), (4, 2, 40, 60), (50, 30, 80, 62)]),
        ((17, 30), [(51, 33, 77, 61), (3, 9, 29, 53), (60, 1, 95, 23), (7, 7, 33, 57)]),
        ((47, 71), [(70, 40, 95, 63), (0, 0, 21, 13), (44, 20, 90, 44), (12, 30, 45, 61)]),
        ((16, 24), [(0, 0, 96, 64), (0, 0, 96, 64), (0, 0, 96, 64), (0, 0, 96, 64)]),
    ],
)
def test_mosaic_boxes_are_where_the_pixels_went(centre, boxes):
    tiles = [_tile(box, colour) for box, colour in zip(boxes, COLOURS, strict=True)]
    image, out_boxes, classes = mosaic(tiles, *centre)
    assert image.shape == (H, W, 3) and image.dtype == tf.float32
    assert out_boxes.dtype == tf.float32 and classes.dtype == tf.int32
    kept = iter(out_boxes.numpy())
    for colour in COLOURS:
        ink = _colour_box(image, colour)
        if ink is None or min(ink[2:] - ink[:2]) < 2:
            continue  # the box was pushed out of its quadrant (checked by the hand case)
        np.testing.assert_allclose(next(kept), ink, atol=PIXEL_TOLERANCE)
    # Outside the four half-size tiles the canvas is the grey padding.
    c_y, c_x = centre
    if c_x > W / 2:
        np.testing.assert_allclose(image.numpy()[:, : c_x - W // 2], PAD_VALUE, atol=1e-6)


def test_mosaic_keeps_each_tile_in_its_quadrant():
    tiles = [(tf.ones([H, W, 3]) * v, tf.zeros([0, 4]), tf.zeros([0], tf.int32)) for v in COLOURS]
    image, boxes, _ = mosaic(tiles, 20, 60)
    assert boxes.shape == (0, 4)
    quadrants = [image[:20, :60], image[:20, 60:], image[20:, :60], image[20:, 60:]]
    for quadrant, colour in zip(quadrants, COLOURS, strict=True):
        # The tile fills its quadrant but for the grey where a half tile does not reach.
        pixels = quadrant.numpy().reshape(-1, 3)
        is_colour = np.abs(pixels - colour).max(axis=-1) < 1e-5
        is_grey = np.abs(pixels - PAD_VALUE).max(axis=-1) < 1e-5
        assert np.all(is_colour | is_grey) and is_colour.any()


def test_mixup_arithmetic():
    a = (tf.fill([4, 6, 3], 0.8), tf.constant([[0.0, 0, 2, 2]]), tf.constant([1]))
    b = (tf.fill([4, 6, 3], 0.2), tf.constant([[1.0, 1, 5, 3], [2, 0, 3, 4]]), tf.constant([3, 4]))
    image, boxes, classes = mixup(a, b, 0.25)
    np.testing.assert_allclose(image.numpy(), 0.25 * 0.8 + 0.75 * 0.2, atol=1e-6)
    np.testing.assert_array_equal(boxes.numpy(), [[0, 0, 2, 2], [1, 1, 5, 3], [2, 0, 3, 4]])
    np.testing.assert_array_equal(classes.numpy(), [1, 3, 4])


@pytest.mark.slow  # ~27 s of sampling (CI budget); test_make_dataset_with_mosaic_and_mixup stays
def test_mixup_ratio_follows_beta_32_32():
    seeds = tf.random.experimental.stateless_split(tf.constant([7, 0], tf.int64), num=4000)
    ratios = tf.map_fn(sample_mixup_ratio, seeds, fn_output_signature=tf.float32).numpy()
    # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)) = 1/260; standard errors for n = 4000 are
    # 0.001 (mean) and ~4.5% of the variance.
    assert abs(ratios.mean() - 0.5) < 0.004
    assert abs(ratios.var() / (1 / 260) - 1) < 0.15
    assert 0 < ratios.min() and ratios.max() < 1
    # Beta(1, 1) is uniform: a quarter of the draws fall below 1/4.
    uniform = tf.map_fn(
        lambda s: sample_mixup_ratio(s, alpha=1.0), seeds, fn_output_signature=tf.float32
    ).numpy()
    assert abs((uniform < 0.25).mean() - 0.25) < 3 * math.sqrt(0.25 * 0.75 / 4000)


def _reader(examples):
    """``read(index)`` over in-memory examples, usable with a tensor index inside ``tf.cond``."""
    images = tf.stack([image for image, _, _ in examples])
    boxes = tf.concat([b for _, b, _ in examples], axis=0)
    classes = tf.concat([c for _, _, c in examples], axis=0)
    offsets = tf.constant(np.cumsum([0] + [int(b.shape[0]) for _, b, _ in examples]), tf.int64)

    def read(index):
        return (
            images[index],
            boxes[offsets[index] : offsets[index + 1]],
            classes[offsets[index] : offsets[index + 1]],
        )

    return read


def _examples():
    boxes = [(10, 8, 60, 40), (30, 20, 90, 50), (4, 2, 40, 60), (50, 30, 80, 62)]
    return [_tile(box, colour) for box, colour in zip(boxes, COLOURS, strict=True)]


def test_random_example_probability_zero_is_random_augment():
    examples = _examples()
    seed = tf.constant([3, 9], tf.int64)
    config = Augmentation(mosaic_prob=0, mixup_prob=0)
    got = random_example(examples[0], _reader(examples), seed, 4, config, max_boxes=10)
    want = random_augment(*examples[0], seed, config)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_random_example_is_seeded_and_box_exact():
    examples = _examples()
    read = _reader(examples)
    config = Augmentation(mosaic_prob=1.0, mixup_prob=0.0, **NO_JITTER)
    checked = 0
    for k in range(4):
        seed = tf.constant([k, 1], tf.int64)
        image, boxes, classes = random_example(examples[0], read, seed, 4, config, 16)
        again = random_example(examples[0], read, seed, 4, config, 16)
        for a, b in zip((image, boxes, classes), again, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        # The example's own (red) tile is top-left. Partners are drawn with replacement, so a
        # colour may appear twice: check the colours that form one solid rectangle.
        assert _colour_box(image, COLOURS[0]) is not None
        for colour in COLOURS:
            ink = _colour_box(image, colour)
            if ink is None or not _is_solid(image, colour, ink) or min(ink[2:] - ink[:2]) < 2:
                continue
            errors = np.abs(boxes.numpy() - ink).max(axis=1)
            assert errors.min() < PIXEL_TOLERANCE, (ink, boxes.numpy())
            checked += 1
    assert checked >= 8


def _is_solid(image, colour, box):
    mask = np.abs(np.asarray(image) - colour).max(axis=-1) < 0.5
    x0, y0, x1, y1 = box.astype(int)
    return mask.sum() == (x1 - x0) * (y1 - y0)


def test_random_example_skips_a_mix_beyond_max_boxes():
    full = (0, 0, W, H)  # survives any clip to a quadrant: a mosaic has 4 boxes
    examples = [_tile(full, colour) for colour in COLOURS]
    read = _reader(examples)
    seed = tf.constant([5, 5], tf.int64)
    config = Augmentation(mosaic_prob=1.0, **NO_JITTER)
    _, boxes, _ = random_example(examples[0], read, seed, 4, config, max_boxes=4)
    assert boxes.shape[0] == 4
    skipped = random_example(examples[0], read, seed, 4, config, max_boxes=3)
    unmixed = random_augment(*examples[0], seed, config)
    for a, b in zip(skipped, unmixed, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    mixing = Augmentation(mixup_prob=1.0, **NO_JITTER)
    _, boxes, _ = random_example(examples[0], read, seed, 4, mixing, max_boxes=2)
    assert boxes.shape[0] == 2
    _, boxes, _ = random_example(examples[0], read, seed, 4, mixing, max_boxes=1)
    assert boxes.shape[0] == 1


def test_augmentation_probabilities_are_checked():
    for name in ("mosaic_prob", "mixup_prob"):
        with pytest.raises(ValueError, match=f"{name} must be in"):
            Augmentation(**{name: 1.5})


@pytest.fixture
def annotations(tmp_path, write_image):
    """Six small images of different sizes, 1-3 boxes each."""
    out = []
    for k, (w, h) in enumerate([(50, 30), (40, 64), (96, 48), (33, 33), (70, 70), (20, 90)]):
        boxes = np.array([[1, 1, w // 2, h // 2], [w // 3, h // 3, w - 1, h - 1]][: 1 + k % 2])
        path = write_image(tmp_path / f"{k}.png", w, h)
        out.append(Annotation(path, w, h, boxes, np.arange(len(boxes)) % 3))
    return out


def test_make_dataset_with_mosaic_and_mixup(annotations):
    cfg = YoloConfig(num_classes=3, input_size=(64, 96), max_boxes=8)
    augment = Augmentation(mosaic_prob=1.0, mixup_prob=0.5)

    def epochs(seed):
        ds = make_dataset(annotations, cfg, batch_size=4, training=True, seed=seed, augment=augment)
        return [[{k: v.numpy() for k, v in b.items()} for b in ds] for _ in range(2)]

    first, again = epochs(3), epochs(3)
    for epoch, same in zip(first, again, strict=True):
        assert [len(b["index"]) for b in epoch] == [4, 2]  # one example per annotation
        for batch, other in zip(epoch, same, strict=True):
            for key in batch:
                np.testing.assert_array_equal(batch[key], other[key])
            assert batch["image"].shape[1:] == (64, 96, 3) and batch["image"].dtype == np.float32
            assert batch["boxes"].shape[1:] == (8, 4) and batch["classes"].dtype == np.int32
            assert batch["image"].min() >= 0 and batch["image"].max() <= 1
    assert not np.array_equal(first[0][0]["image"], first[1][0]["image"])
    counts = np.concatenate([b["num_boxes"] for epoch in first for b in epoch])
    # Mosaics and mixes hold more boxes than any single image (at most 2).
    assert counts.max() > 2 and counts.max() <= 8


@pytest.mark.parametrize("centre", [(32, 48), (17, 70), (0, 96), (64, 0), (45, 30)])
def test_mosaic_pixels_are_the_whole_canvas_resampling_of_each_quadrant(centre):
    # Each tile is resampled into its quadrant only; the pixels must be, bit for bit, those of
    # resampling the tile onto the whole canvas and keeping its quadrant.
    rng = np.random.default_rng(sum(centre))
    tiles = [
        (tf.constant(rng.uniform(0, 1, (H, W, 3)), tf.float32), tf.zeros((0, 4)), tf.zeros((0,)))
        for _ in range(4)
    ]
    image, _, _ = mosaic(tiles, *centre)
    cy, cx = centre
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    want = np.zeros((H, W, 3), np.float32)
    for k, (t_y, t_x) in enumerate(mosaic_offsets(float(cy), float(cx), H, W)):
        whole = resample(tiles[k][0], (H, W), tf.constant(0.5), t_y, t_x).numpy()
        top, left = k // 2 == 0, k % 2 == 0
        inside = ((rows < cy) if top else (rows >= cy)) & ((cols < cx) if left else (cols >= cx))
        want[inside] = whole[inside]
    np.testing.assert_array_equal(image.numpy(), want)
