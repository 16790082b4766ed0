import json
import logging

import numpy as np
import pytest

from kyolo.data.annotations import AnnotationError
from kyolo.data.coco import read_coco


@pytest.fixture
def dataset(tmp_path, write_image):
    """Two images (40x30 and 20x50), sparse unsorted category ids 7 and 3."""
    root = tmp_path / "images"
    write_image(root / "a.png", 40, 30)
    write_image(root / "sub" / "b.png", 20, 50)
    data = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 11, "file_name": "sub/b.png", "width": 20, "height": 50},
        ],
        "categories": [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [0, 0, 40, 30], "iscrowd": 0},
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [5, 5, 5, 5], "iscrowd": 1},
        ],
    }
    return tmp_path, root, data


def _write(tmp_path, data, text=None):
    path = tmp_path / "instances.json"
    path.write_text(text if text is not None else json.dumps(data))
    return str(path)


def test_reads_boxes_classes_and_names(dataset):
    tmp_path, root, data = dataset
    annotations, names = read_coco(_write(tmp_path, data), root)
    assert names == ["three", "seven"]  # sorted category id order: 3 -> 0, 7 -> 1
    a, b = annotations
    assert a.image_path == str(root / "a.png") and (a.width, a.height) == (40, 30)
    # x, y, w, h -> x_min, y_min, x_max, y_max; the crowd box is skipped.
    np.testing.assert_array_equal(a.boxes, [[1, 2, 11, 7], [0, 0, 40, 30]])
    np.testing.assert_array_equal(a.classes, [1, 0])
    assert b.image_path == str(root / "sub" / "b.png") and b.boxes.shape == (0, 4)

    with_crowd, _ = read_coco(_write(tmp_path, data), root, include_crowd=True)
    assert len(with_crowd[0].boxes) == 3


@pytest.mark.parametrize(
    "bbox, category, expected",
    [
        ([1, float("nan"), 3, 3], 7, "non-finite"),
        ([5, 5, -2, 3], 7, "zero or negative size"),
        ([5, 5, 0, 3], 7, "zero or negative size"),
        ([35, 5, 6, 3], 7, "outside the 40x30 image"),
        ([-1, 5, 6, 3], 7, "outside"),
        ([1, 2, 3, 3], 99, "category_id 99 is not in 'categories'"),
    ],
)
def test_invalid_box_raises(dataset, bbox, category, expected):
    tmp_path, root, data = dataset
    data["annotations"].append({"id": 42, "image_id": 10, "category_id": category, "bbox": bbox})
    with pytest.raises(AnnotationError, match=expected) as err:
        read_coco(_write(tmp_path, data), root)
    message = str(err.value)
    assert "instances.json" in message and "a.png" in message
    assert "box 2" in message and "annotations[3]" in message


def test_drop_and_clip_log_each_box(dataset, caplog):
    tmp_path, root, data = dataset
    data["annotations"] += [
        {"id": 42, "image_id": 10, "category_id": 7, "bbox": [35, 5, 6, 3]},
        {"id": 43, "image_id": 10, "category_id": 99, "bbox": [1, 1, 2, 2]},
    ]
    path = _write(tmp_path, data)
    with caplog.at_level(logging.WARNING):
        dropped, _ = read_coco(path, root, on_invalid="drop")
    assert len(dropped[0].boxes) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("instances.json" in w for w in warnings)
    assert any("id 42" in w and "dropped" in w for w in warnings)
    assert any("category_id 99" in w for w in warnings)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        clipped, _ = read_coco(path, root, on_invalid="clip")
    np.testing.assert_array_equal(clipped[0].boxes[-1], [35, 5, 40, 8])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and any("clipped" in w and "41" in w for w in warnings)


def test_malformed_json_names_file_and_line(dataset):
    tmp_path, root, data = dataset
    text = json.dumps(data, indent=1)
    broken = text[: text.index('"annotations"')] + '"annotations": [ {"id": 1,, }'
    with pytest.raises(AnnotationError, match=r"instances\.json: malformed JSON at line \d+"):
        read_coco(_write(tmp_path, data, broken), root)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d.pop("images"), "'images' must be a list"),
        (lambda d: d["images"][0].pop("file_name"), r"images\[0\]: missing 'file_name'"),
        (lambda d: d["images"][1].update(width="wide"), r"images\[1\]: 'width' must be an int"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]: bbox must"),
        (lambda d: d["annotations"][0].update(bbox=[1, "a", 3, 4]), "non-numeric bbox"),
        (lambda d: d["annotations"][0].update(image_id=5), "image_id 5 is not in 'images'"),
    ],
)
def test_malformed_structure_names_entry(dataset, change, expected):
    tmp_path, root, data = dataset
    change(data)
    with pytest.raises(AnnotationError, match=expected):
        read_coco(_write(tmp_path, data), root)


def test_missing_image_names_the_file(dataset):
    tmp_path, root, data = dataset
    data["images"][1]["file_name"] = "sub/missing.png"
    with pytest.raises(AnnotationError, match=r"images\[1\].*missing\.png.*does not exist"):
        read_coco(_write(tmp_path, data), root)


@pytest.mark.parametrize("file_name", ["../outside.png", "sub/../../outside.png", "ABS"])
def test_path_traversal_is_refused(dataset, write_image, file_name):
    tmp_path, root, data = dataset
    outside = write_image(tmp_path / "outside.png", 4, 4)  # exists, so only the escape can fail
    data["images"][0]["file_name"] = outside if file_name == "ABS" else file_name
    with pytest.raises(AnnotationError, match="escapes the dataset root"):
        read_coco(_write(tmp_path, data), root)


@pytest.mark.parametrize(
    "iscrowd, kept",
    [(0, 3), (1, 2), (False, 3), (True, 2), ("0", 3), ("1", 2), (0.0, 3), (1.0, 2)],
)
def test_iscrowd_as_int_bool_or_digit_string_is_interpreted(dataset, iscrowd, kept):
    # "0" (a string) used to count as a crowd (a truthy value) and its box vanished silently.
    tmp_path, root, data = dataset
    data["annotations"][0]["iscrowd"] = iscrowd
    annotations, _ = read_coco(_write(tmp_path, data), root)
    assert len(annotations[0].boxes) == kept - 1  # annotation 2 is a crowd in every case
    np.testing.assert_array_equal(annotations[0].boxes[-1], [0, 0, 40, 30])


@pytest.mark.parametrize("iscrowd", [2, -1, "yes", "", None, 0.5, [0]])
def test_other_iscrowd_values_are_errors_naming_the_annotation(dataset, iscrowd):
    tmp_path, root, data = dataset
    data["annotations"][1]["iscrowd"] = iscrowd
    path = _write(tmp_path, data)
    with pytest.raises(AnnotationError) as err:
        read_coco(path, root)
    assert str(err.value) == (
        f'{path}: annotations[1]: \'iscrowd\' must be 0 or 1 (also false/true, "0"/"1"), '
        f"got {iscrowd!r}"
    )
