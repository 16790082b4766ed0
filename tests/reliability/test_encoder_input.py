"""The target encoder's front doors against adversarial input (issue #14): every malformed box,
class id or shape is an error naming the argument or the box, eagerly and inside ``tf.data``."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.encode import encode_batch, encode_rows, encode_targets
from kyolo.losses import YoloLoss
from kyolo.targets import target_shape
from tests.helpers import head_shapes, nano_config, stack_targets

BOX = [0.4, 0.5, 0.3, 0.2]


def one_line(err) -> str:
    return str(err.value).replace("\n", " ")


def in_dataset(encode, boxes, classes):
    """``encode(boxes, classes)`` mapped over a one-element dataset, drained."""
    ds = tf.data.Dataset.from_tensors((boxes, classes))
    return list(ds.map(encode))


@pytest.mark.parametrize("wh", [(1.8, 0.3), (0.3, 1.0001), (1e30, 1e30)])
def test_boxes_larger_than_the_image_are_rejected_naming_the_box(wh):
    # Before: accepted; keras-yolo3's weight 2 − w·h made the loss negative (−inf for 1e30).
    cfg = nano_config()
    boxes = np.array([BOX, [0.5, 0.5, *wh]], np.float32)
    classes = np.array([0, 1], np.int32)
    message = "width and height must not exceed the image"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_targets(boxes, classes, cfg)
    assert "box index 1" in one_line(err)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        in_dataset(lambda b, c: encode_targets(b, c, cfg), boxes, classes)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_batch(boxes[None], classes[None], cfg)
    assert "image 0, box index 1" in one_line(err)


@pytest.mark.parametrize("magnitude", [0.1, 10.0])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_loss_of_the_largest_valid_boxes_is_not_negative(name, magnitude):
    # The whole image (w = h = 1) is the largest box the encoder accepts: keras-yolo3's weight
    # 2 − w·h is then 1, and every term is >= 0.
    cfg = nano_config(name)
    whole = (np.array([[0.5, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 0.5]], np.float32), np.array([0, 2]))
    y_true = stack_targets(cfg, [whole, whole])
    rng = np.random.default_rng(0)
    for scale, shape in enumerate(head_shapes(cfg, 2)):
        logits = (magnitude * rng.standard_normal(shape)).astype(np.float32)
        value = YoloLoss(cfg, scale).call(y_true[scale], logits).numpy()
        assert np.all(np.isfinite(value)) and np.all(value >= 0), (scale, value)


@pytest.mark.parametrize(
    "classes, message, shown",
    [
        (np.array([0, 2**32 + 1], np.int64), r"class id must be in \[0, 3\)", "4294967297"),
        (np.array([0, -(2**32) + 1], np.int64), r"class id must be in \[0, 3\)", "-4294967295"),
        (np.array([0.0, 1.7]), "class id must be a whole number", "1.7"),
        (np.array([0.0, np.nan], np.float32), "class id must be a whole number", "nan"),
    ],
)
def test_class_ids_that_do_not_fit_are_errors_naming_the_box(classes, message, shown):
    # Before: int64 ids wrapped to int32 (2**32 + 1 → 1) and float ids were truncated (1.7 → 1).
    cfg = nano_config()
    boxes = np.array([BOX, [0.6, 0.3, 0.2, 0.2]], np.float32)
    for encode in (
        encode_targets,
        lambda b, c, cfg: in_dataset(lambda *a: encode_targets(*a, cfg), b, c),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
            encode(boxes, classes, cfg)
        assert "box index 1" in one_line(err) and f"class {shown}" in one_line(err)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        encode_batch(boxes[None], classes[None], cfg)
    assert "image 0, box index 1" in one_line(err)


def test_whole_float_and_int64_class_ids_encode_as_int32_ones():
    cfg = nano_config()
    boxes = np.array([BOX, [0.6, 0.3, 0.2, 0.2]], np.float32)
    want = encode_targets(boxes, np.array([0, 2], np.int32), cfg)
    for classes in (np.array([0.0, 2.0]), np.array([0, 2], np.int64)):
        for got, w in zip(encode_targets(boxes, classes, cfg), want, strict=True):
            np.testing.assert_array_equal(got.numpy(), w.numpy())


@pytest.mark.parametrize("bad", [2**32 + 1, 1.7], ids=["int64 beyond int32", "float"])
def test_the_unchecked_row_encoder_sets_no_class_for_ids_that_do_not_fit(bad):
    # encode_rows (XLA, no asserts) sets no class for an id outside [0, C), as one_hot would;
    # before, 2**32 + 1 wrapped to class 1 and 1.7 was truncated to class 1.
    cfg = nano_config("yolov5")
    dtype = np.int64 if isinstance(bad, int) else np.float64
    targets = encode_rows(np.zeros(1), np.array([BOX], np.float32), np.array([bad], dtype), 1, cfg)
    flat = np.concatenate([t.numpy().reshape(-1, t.shape[-1]) for t in targets])
    positives = flat[flat[:, 4] > 0]
    assert len(positives) > 0
    np.testing.assert_array_equal(positives[:, 5:8], 0)


ROWS = np.array([[0.4, 0.5, 0.3, 0.2, 1.0]], np.float32)  # keras-yolo3-style rows with a class
MALFORMED = {  # boxes, classes, the error of one image, the error of a batch of that image
    "boxes (0,)": (
        np.zeros(0, np.float32),
        np.zeros(0, np.int32),
        r"boxes must be \(n, 4\) x, y, w, h, got shape \(0,\): an image without boxes is \(0, 4\)",
        r"boxes must be \(b, n, 4\) x, y, w, h, got shape \(1, 0\)",
    ),
    "rows as boxes": (
        ROWS,
        np.array([1]),
        r"boxes must be \(n, 4\) x, y, w, h, got shape \(1, 5\): rows with a class column\?",
        r"boxes must be \(b, n, 4\) x, y, w, h, got shape \(1, 1, 5\): rows with a class",
    ),
    "more classes than boxes": (
        np.array([BOX, BOX], np.float32),
        np.array([0, 1, 2]),
        r"classes shape \(3,\) does not match boxes shape \(2, 4\)",
        r"classes shape \(1, 3\) does not match boxes shape \(1, 2, 4\)",
    ),
    "classes (n, 1)": (
        np.array([BOX], np.float32),
        np.array([[1]]),
        r"classes must be \(n,\), one id per box, got shape \(1, 1\)",
        r"classes must be \(b, n\), one id per box, got shape \(1, 1, 1\)",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_shapes_name_the_argument_and_shapes(case):
    # Before: bare TensorFlow errors (StridedSlice, TensorScatterMax, LogicalAnd).
    boxes, classes, message, batch_message = MALFORMED[case]
    cfg = nano_config()
    with pytest.raises(ValueError, match=message):
        encode_targets(boxes, classes, cfg)
    with pytest.raises(ValueError, match=batch_message):
        encode_batch(boxes[None], classes[None], cfg)
    # tf.data with static shapes: at trace time, when the map is built.
    with pytest.raises(ValueError, match=message):
        in_dataset(lambda b, c: encode_targets(b, c, cfg), boxes, classes)


@pytest.mark.parametrize("case", ["rows as boxes", "more classes than boxes"])
def test_malformed_shapes_are_named_inside_tf_data_with_unknown_shapes(case):
    boxes, classes, *_ = MALFORMED[case]
    cfg = nano_config()
    ds = tf.data.Dataset.from_generator(
        lambda: iter([(boxes, classes)]),
        output_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int64)),
    )
    message = "kyolo.encode: boxes must be .n, 4. x, y, w, h and classes .n,., one id per box"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message) as err:
        list(ds.map(lambda b, c: encode_targets(b, c, cfg)))
    shapes = f"boxes shape] [{' '.join(map(str, boxes.shape))}] [classes shape] [{len(classes)}]"
    assert shapes in one_line(err)


def test_the_row_encoder_names_malformed_shapes():
    cfg = nano_config("yolov5")
    with pytest.raises(ValueError, match=r"encode_rows: boxes must be \(n, 4\).*\(1, 5\)"):
        encode_rows(np.zeros(1), ROWS, np.ones(1), 1, cfg)
    with pytest.raises(ValueError, match=r"image shape \(2,\) and classes shape \(1,\) do not"):
        encode_rows(np.zeros(2), ROWS[:, :4], np.ones(1), 1, cfg)


def test_keras_yolo3_preprocess_true_boxes_names_an_unbatched_array():
    from kyolo.compat.keras_yolo3 import preprocess_true_boxes
    from references.cases import ANCHORS

    rows = np.array([[10, 10, 50, 50, 1]], np.float32)
    message = (
        r"true_boxes must be \(m, T, 5\) .*got shape \(1, 5\): one image\? Pass true_boxes\[None\]"
    )
    with pytest.raises(ValueError, match=message):
        preprocess_true_boxes(rows, (416, 416), ANCHORS, 3)
    with pytest.raises(ValueError, match=r"true_boxes must be \(m, T, 5\) .*got shape \(1, 1, 4\)"):
        preprocess_true_boxes(rows[None, :, :4], (416, 416), ANCHORS, 3)


@pytest.mark.parametrize("name", ["yolov3", "yolov4"], ids=["scale", "image"])
def test_padding_rows_beyond_max_boxes_are_accepted_by_both_layouts(name):
    # Before: with ignore_against="image", rows past max_boxes = 8 failed with a scatter index
    # error (encode_targets) or a ValueError (encode_batch), padding or not.
    cfg = nano_config(name)
    real = np.array([BOX, [0.6, 0.3, 0.2, 0.2]], np.float32)
    boxes = np.zeros((10, 4), np.float32)  # w <= 0: padding
    boxes[[3, 9]] = real
    classes = np.zeros(10, np.int32)
    classes[[3, 9]] = [1, 2]
    want = encode_targets(real, np.array([1, 2]), cfg)
    for got, w in zip(encode_targets(boxes, classes, cfg), want, strict=True):
        np.testing.assert_array_equal(got.numpy(), w.numpy())
    batch = encode_batch(np.stack([boxes] * 2), np.stack([classes] * 2), cfg)
    for got, w in zip(batch, want, strict=True):
        np.testing.assert_array_equal(got.numpy(), np.stack([w.numpy()] * 2))


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("name", ["yolov3", "yolov4"], ids=["scale", "image"])
def test_a_batch_of_background_images_gives_all_zero_targets(name, layout):
    # Before: "Integer division by zero" for boxes (b, 0, 4), what padded_batch gives.
    cfg = nano_config(name, 3, 64, f"target_layout={layout}")
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int32))
    ds = tf.data.Dataset.from_tensors(empty).repeat(2).padded_batch(2, drop_remainder=True)
    for encoded in (
        encode_batch(np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.int64), cfg),
        *ds.map(lambda b, c: encode_batch(b, c, cfg)),
    ):
        for scale, target in enumerate(encoded):
            assert target.shape == (2, *target_shape(cfg, scale))
            np.testing.assert_array_equal(target.numpy(), 0)
