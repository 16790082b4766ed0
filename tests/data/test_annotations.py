import dataclasses
import logging

import numpy as np
import pytest

from kyolo.data.annotations import Annotation, AnnotationError, resolve_in_root, validate

GOOD = [1.0, 2.0, 10.0, 12.0]


def _validate(boxes, classes, on_invalid="raise"):
    return validate(
        np.asarray(boxes, np.float32),
        np.asarray(classes),
        width=40,
        height=30,
        num_classes=3,
        source="ann.json",
        image="img.png",
        on_invalid=on_invalid,
    )


def test_annotation_normalises_and_freezes():
    ann = Annotation("a.png", 40, 30, [[1, 2, 3, 4]], [2])
    assert ann.boxes.dtype == np.float32 and ann.boxes.shape == (1, 4)
    assert ann.classes.dtype == np.int32 and ann.classes.shape == (1,)
    with pytest.raises(ValueError):
        ann.boxes[0, 0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ann.width = 3
    empty = Annotation("b.png", 4, 4, np.zeros((0, 4)), np.zeros((0,)))
    assert empty.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="2 boxes but 1 class"):
        Annotation("c.png", 4, 4, np.zeros((2, 4)), [0])


def test_valid_boxes_pass_unchanged():
    # Touching the image border is inside (tolerance 0 is about going beyond it).
    boxes = [GOOD, [0.0, 0.0, 40.0, 30.0]]
    out_boxes, out_classes = _validate(boxes, [0, 2])
    np.testing.assert_array_equal(out_boxes, np.asarray(boxes, np.float32))
    np.testing.assert_array_equal(out_classes, [0, 2])
    assert out_classes.dtype == np.int32


@pytest.mark.parametrize(
    "box, cls, problem",
    [
        ([1.0, float("nan"), 10.0, 12.0], 0, "non-finite"),
        ([1.0, 2.0, float("inf"), 12.0], 0, "non-finite"),
        ([10.0, 2.0, 4.0, 12.0], 0, "negative size"),
        ([1.0, 5.0, 10.0, 5.0], 0, "zero or negative size"),
        ([-0.5, 2.0, 10.0, 12.0], 0, "outside the 40x30 image"),
        ([30.0, 2.0, 40.5, 12.0], 0, "outside"),
        ([1.0, 2.0, 10.0, 31.0], 0, "outside"),
        (GOOD, 3, "class id 3 outside"),
        (GOOD, -1, "class id -1 outside"),
    ],
)
def test_invalid_box_raises_naming_file_image_index_value(box, cls, problem):
    with pytest.raises(AnnotationError) as err:
        _validate([GOOD, box], [0, cls])
    message = str(err.value)
    assert "ann.json" in message and "img.png" in message and "box 1" in message
    assert problem in message
    # The offending value is printed.
    shown = "nan" if np.isnan(box).any() else "inf" if np.isinf(box).any() else f"{box[2]:g}"
    assert shown in message


def test_drop_logs_one_warning_per_box(caplog):
    boxes = [GOOD, [1.0, float("nan"), 10.0, 12.0], [30.0, 2.0, 41.0, 12.0], GOOD]
    with caplog.at_level(logging.WARNING):
        out_boxes, out_classes = _validate(boxes, [0, 1, 2, 7], on_invalid="drop")
    np.testing.assert_array_equal(out_boxes, [GOOD])
    np.testing.assert_array_equal(out_classes, [0])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    for index, message in zip((1, 2, 3), messages, strict=True):
        assert f"box {index}" in message and "ann.json" in message and "dropped" in message


def test_clip_repairs_partly_outside_and_drops_the_rest(caplog):
    boxes = [
        [30.0, -2.0, 45.0, 12.0],  # partly outside: clipped
        [50.0, 2.0, 60.0, 12.0],  # wholly outside: nothing left
        [1.0, 2.0, 1.0, 12.0],  # zero width: cannot be clipped
        GOOD,
    ]
    with caplog.at_level(logging.WARNING):
        out_boxes, out_classes = _validate(boxes, [1, 1, 1, 2], on_invalid="clip")
    np.testing.assert_array_equal(out_boxes, [[30.0, 0.0, 40.0, 12.0], GOOD])
    np.testing.assert_array_equal(out_classes, [1, 2])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    assert "box 0" in messages[0] and "clipped" in messages[0] and "45" in messages[0]
    assert "box 1" in messages[1] and "nothing left" in messages[1]
    assert "box 2" in messages[2] and "dropped" in messages[2]


def test_bad_policy_name():
    with pytest.raises(ValueError, match="on_invalid"):
        _validate([GOOD], [0], on_invalid="ignore")


def test_resolve_in_root_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    assert resolve_in_root(root, "a/b.png", source="s") == str(root / "a" / "b.png")
    assert resolve_in_root(root, str(root / "c.png"), source="s") == str(root / "c.png")
    for bad in ("../x.png", "a/../../x.png", str(tmp_path / "x.png"), "/etc/passwd", ""):
        with pytest.raises(AnnotationError, match="s: "):
            resolve_in_root(root, bad, source="s")
