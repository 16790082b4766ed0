"""The target encoder's front doors against adversarial input (issue #14): every malformed box,
class id or shape is an error naming the argument or the box, eagerly and inside ``tf.data``."""

import numpy as np
import pytest
import tensorflow as tf

from kyolo.config import PRESETS
from kyolo.encode import encode_batch, encode_targets
from kyolo.losses import YoloLoss
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
