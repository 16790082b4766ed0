"""kyolo.data.read_annotations and read_class_names: one entry point over the readers."""

import json

import numpy as np
import pytest

from kyolo.data import read_annotations, read_class_names


def test_read_class_names(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\n\n dog \n", encoding="utf-8")
    assert read_class_names(path) == ["cat", "dog"]
    path.write_text("cat\ncat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate class names"):
        read_class_names(path)
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no class names"):
        read_class_names(path)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_class_names_with_a_byte_order_mark_are_read(tmp_path, encoding):
    # Windows editors save UTF-16 (with a BOM); it gave "'utf-8' codec can't decode byte 0xff".
    path = tmp_path / "classes.txt"
    text = "cat\r\nchien\u00e9\r\n"
    path.write_bytes(
        text.encode(encoding) if encoding != "utf-16-be" else b"\xfe\xff" + text.encode(encoding)
    )
    assert read_class_names(path) == ["cat", "chien\u00e9"]


@pytest.mark.parametrize(
    "data, message",
    [
        ("cat\ndog\n".encode("utf-16-le"), "NUL bytes: UTF-16 without a byte-order mark?"),
        (
            "cat\nchien\u00e9\n".encode("latin-1"),
            "not UTF-8 text, nor UTF-16/32 with a byte-order mark",
        ),
    ],
)
def test_class_names_in_an_unknown_encoding_name_the_file(tmp_path, data, message):
    path = tmp_path / "classes.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError) as err:
        read_class_names(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_read_annotations_dispatches_by_format(tmp_path, write_image):
    write_image(tmp_path / "images" / "a.png", 40, 30)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("1 0.5 0.5 0.5 0.2\n")
    anns, names = read_annotations("yolo", labels, tmp_path / "images", ["x", "y"])
    assert names == ["x", "y"] and len(anns) == 1
    np.testing.assert_allclose(anns[0].boxes, [[10, 12, 30, 18]])
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 12, 20, 6]}],
        "categories": [{"id": 7, "name": "y"}],
    }
    (tmp_path / "a.json").write_text(json.dumps(coco))
    anns, names = read_annotations("coco", tmp_path / "a.json", tmp_path / "images")
    assert names == ["y"]
    np.testing.assert_allclose(anns[0].boxes, [[10, 12, 30, 18]])


def test_read_annotations_rejects_unknown_formats_and_missing_names(tmp_path):
    with pytest.raises(ValueError, match="unknown data format 'kitti'"):
        read_annotations("kitti", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="'voc' needs class names"):
        read_annotations("voc", tmp_path, tmp_path)
