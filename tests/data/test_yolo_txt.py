import logging

import numpy as np
import pytest

from kyolo.data.annotations import AnnotationError
from kyolo.data.yolo_txt import format_yolo, read_yolo


@pytest.fixture
def dataset(tmp_path, write_image):
    images, labels = tmp_path / "images", tmp_path / "labels"
    write_image(images / "a.png", 40, 30)
    write_image(images / "nested" / "b.jpg", 20, 50)
    write_image(images / "c.png", 10, 10)  # no label file: a background image
    (labels / "nested").mkdir(parents=True)
    # class cx cy w h, normalised: box (4, 3)-(24, 27) in the 40x30 image.
    (labels / "a.txt").write_text("1 0.35 0.5 0.5 0.8\n\n0 0.5 0.5 1.0 1.0\n")
    (labels / "nested" / "b.txt").write_text("2 0.25 0.1 0.5 0.2\n")
    (labels / "classes.txt").write_text("x\ny\nz\n")
    return images, labels


def test_reads_pixel_boxes(dataset):
    images, labels = dataset
    a, c, b = read_yolo(images, labels, num_classes=3)  # sorted: a.png, c.png, nested/b.jpg
    assert a.image_path == str(images / "a.png") and (a.width, a.height) == (40, 30)
    np.testing.assert_allclose(a.boxes, [[4, 3, 24, 27], [0, 0, 40, 30]], atol=1e-5)
    np.testing.assert_array_equal(a.classes, [1, 0])
    assert b.image_path == str(images / "nested" / "b.jpg") and (b.width, b.height) == (20, 50)
    np.testing.assert_allclose(b.boxes, [[0, 0, 10, 10]], atol=1e-5)
    assert c.boxes.shape == (0, 4) and c.classes.shape == (0,)


@pytest.mark.parametrize(
    "row, expected",
    [
        ("0 nan 0.5 0.1 0.1", "non-finite"),
        ("0 0.5 0.5 -0.1 0.1", "zero or negative size"),
        ("0 0.5 0.5 0.1 0", "zero or negative size"),
        ("0 0.95 0.5 0.2 0.1", "outside the 40x30 image"),
        ("3 0.5 0.5 0.1 0.1", r"class id 3 outside \[0, 3\)"),
        ("-1 0.5 0.5 0.1 0.1", "class id -1 outside"),
    ],
)
def test_invalid_box_raises(dataset, row, expected):
    images, labels = dataset
    (labels / "a.txt").write_text("1 0.35 0.5 0.5 0.8\n" + row + "\n")
    with pytest.raises(AnnotationError, match=expected) as err:
        read_yolo(images, labels, num_classes=3)
    message = str(err.value)
    assert str(labels / "a.txt") in message and str(images / "a.png") in message
    assert "box 1 (line 2)" in message


@pytest.mark.parametrize(
    "row, expected",
    [
        ("0 0.5 0.5 0.1", "line 2: expected 5 fields"),
        ("0 0.5 0.5 0.1 0.1 0.3", "line 2: expected 5 fields"),
        ("0 0.5 abc 0.1 0.1", "line 2: non-numeric field"),
        ("1.5 0.5 0.5 0.1 0.1", "line 2: non-numeric field"),
    ],
)
def test_malformed_row_names_file_and_line(dataset, row, expected):
    images, labels = dataset
    (labels / "a.txt").write_text("1 0.35 0.5 0.5 0.8\n" + row + "\n")
    with pytest.raises(AnnotationError, match=expected) as err:
        read_yolo(images, labels, num_classes=3)
    assert str(labels / "a.txt") in str(err.value)


def test_label_without_image_is_a_missing_image(dataset):
    images, labels = dataset
    (labels / "gone.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(AnnotationError, match=r"gone\.txt: no image file"):
        read_yolo(images, labels, num_classes=3)


def test_unreadable_image_names_the_file(dataset):
    images, labels = dataset
    (images / "broken.png").write_bytes(b"not a png")
    with pytest.raises(AnnotationError, match=r"cannot read the size of image .*broken\.png"):
        read_yolo(images, labels, num_classes=3)


def test_drop_and_clip_log_each_box(dataset, caplog):
    images, labels = dataset
    (labels / "a.txt").write_text("0 0.95 0.5 0.2 0.1\n7 0.5 0.5 0.1 0.1\n1 0.5 0.5 0.5 0.5\n")
    with caplog.at_level(logging.WARNING):
        a = read_yolo(images, labels, num_classes=3, on_invalid="drop")[0]
    np.testing.assert_array_equal(a.classes, [1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "line 1" in warnings[0] and "line 2" in warnings[1] and "class id 7" in warnings[1]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        a = read_yolo(images, labels, num_classes=3, on_invalid="clip")[0]
    np.testing.assert_allclose(a.boxes[0], [34, 13.5, 40, 16.5], atol=1e-5)
    np.testing.assert_array_equal(a.classes, [0, 1])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "clipped" in warnings[0] and "dropped" in warnings[1]


def test_format_yolo_writes_what_read_yolo_reads(tmp_path):
    from PIL import Image

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (80, 40)).save(tmp_path / "images" / "a.png")
    boxes = np.array([[10, 5, 30, 25], [0, 0, 80, 40]], np.float32)
    text = format_yolo(boxes, [2, 0], width=80, height=40)
    # Box 0: centre (20, 15) / (80, 40) = (0.25, 0.375), size (20, 20) / (80, 40) = (0.25, 0.5).
    assert text.splitlines()[0] == "2 0.250000 0.375000 0.250000 0.500000"
    (tmp_path / "labels" / "a.txt").write_text(text)
    (read,) = read_yolo(tmp_path / "images", tmp_path / "labels", 3)
    np.testing.assert_allclose(read.boxes, boxes, atol=1e-4)
    assert read.classes.tolist() == [2, 0]
