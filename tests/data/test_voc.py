import logging

import numpy as np
import pytest

from kyolo.data.annotations import AnnotationError
from kyolo.data.voc import read_voc

CLASSES = ["cat", "dog"]


def _xml(filename, objects, size=(40, 30)):
    parts = [f"<annotation><folder>VOC</folder><filename>{filename}</filename>"]
    if size is not None:
        parts.append(
            f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        )
    for name, box, *difficult in objects:
        coords = "".join(
            f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
        )
        parts.append(
            f"<object><name>{name}</name><difficult>{difficult[0] if difficult else 0}</difficult>"
            f"<bndbox>{coords}</bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


@pytest.fixture
def dataset(tmp_path, write_image):
    xml_dir, image_dir = tmp_path / "Annotations", tmp_path / "JPEGImages"
    xml_dir.mkdir()
    write_image(image_dir / "a.png", 40, 30)
    write_image(image_dir / "b.png", 20, 50)
    (xml_dir / "a.xml").write_text(
        _xml("a.png", [("dog", (1, 2, 11, 7)), ("cat", (0, 0, 40, 30), 1)])
    )
    (xml_dir / "b.xml").write_text(_xml("b.png", [], size=None))
    return xml_dir, image_dir


def _add(xml_dir, text, name="c.xml"):
    (xml_dir / name).write_text(text)
    return str(xml_dir / name)


def test_reads_boxes_classes_and_sizes(dataset):
    xml_dir, image_dir = dataset
    a, b = read_voc(xml_dir, image_dir, CLASSES)
    assert a.image_path == str(image_dir / "a.png") and (a.width, a.height) == (40, 30)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 11, 7], [0, 0, 40, 30]])
    np.testing.assert_array_equal(a.classes, [1, 0])
    # No <size>: read from the image header.
    assert (b.width, b.height) == (20, 50) and b.boxes.shape == (0, 4)
    a, _ = read_voc(xml_dir, image_dir, CLASSES, skip_difficult=True)
    np.testing.assert_array_equal(a.classes, [1])


@pytest.mark.parametrize(
    "name, box, expected",
    [
        ("cat", ("nan", 2, 10, 12), "non-finite"),
        ("cat", (10, 2, 4, 12), "zero or negative size"),
        ("cat", (30, 2, 41, 12), "outside the 40x30 image"),
        ("bird", (1, 2, 10, 12), "class 'bird' is not in class_names"),
    ],
)
def test_invalid_box_raises(dataset, write_image, name, box, expected):
    xml_dir, image_dir = dataset
    write_image(image_dir / "c.png", 40, 30)
    source = _add(xml_dir, _xml("c.png", [("dog", (1, 1, 5, 5)), (name, box)]))
    with pytest.raises(AnnotationError, match=expected) as err:
        read_voc(xml_dir, image_dir, CLASSES)
    message = str(err.value)
    assert source in message and "c.png" in message and "box 1" in message
    assert "object 1" in message


def test_drop_and_clip_log_each_box(dataset, write_image, caplog):
    xml_dir, image_dir = dataset
    write_image(image_dir / "c.png", 40, 30)
    objects = [("dog", (30, 2, 41, 12)), ("bird", (1, 2, 3, 4)), ("cat", (1, 1, 5, 5))]
    _add(xml_dir, _xml("c.png", objects))
    with caplog.at_level(logging.WARNING):
        annotations = read_voc(xml_dir, image_dir, CLASSES, on_invalid="drop")
    np.testing.assert_array_equal(annotations[2].boxes, [[1, 1, 5, 5]])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("c.xml" in w for w in warnings)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        annotations = read_voc(xml_dir, image_dir, CLASSES, on_invalid="clip")
    np.testing.assert_array_equal(annotations[2].boxes, [[30, 2, 40, 12], [1, 1, 5, 5]])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("object 0" in w and "clipped" in w for w in warnings)
    assert any("'bird'" in w and "dropped" in w for w in warnings)


def test_malformed_xml_names_file_and_line(dataset):
    xml_dir, image_dir = dataset
    source = _add(xml_dir, "<annotation>\n<filename>a.png</filename>\n<object>\n</annotation>")
    with pytest.raises(AnnotationError, match="malformed XML at line 4") as err:
        read_voc(xml_dir, image_dir, CLASSES)
    assert source in str(err.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        (_xml("a.png", [("cat", (1, "x", 3, 4))]), r"object 0: <ymin> is not a number: 'x'"),
        (
            "<annotation><filename>a.png</filename><object><name>cat</name></object></annotation>",
            "object 0: missing <bndbox>",
        ),
        ("<annotation><size/></annotation>", "missing <filename>"),
        ("<other/>", "root element must be <annotation>"),
    ],
)
def test_malformed_fields(dataset, text, expected):
    xml_dir, image_dir = dataset
    _add(xml_dir, text)
    with pytest.raises(AnnotationError, match=expected):
        read_voc(xml_dir, image_dir, CLASSES)


def test_entities_are_refused(dataset, tmp_path):
    xml_dir, image_dir = dataset
    secret = tmp_path / "secret.txt"
    secret.write_text("cat")
    _add(
        xml_dir,
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file://{secret}">]>'
        "<annotation><filename>a.png</filename><object><name>&e;</name></object></annotation>",
    )
    with pytest.raises(AnnotationError, match="document type declarations are not allowed"):
        read_voc(xml_dir, image_dir, CLASSES)


def test_missing_image_names_the_file(dataset):
    xml_dir, image_dir = dataset
    source = _add(xml_dir, _xml("gone.png", []))
    with pytest.raises(AnnotationError, match=r"gone\.png.*does not exist") as err:
        read_voc(xml_dir, image_dir, CLASSES)
    assert source in str(err.value)


@pytest.mark.parametrize("filename", ["../outside.png", "ABS"])
def test_path_traversal_is_refused(dataset, tmp_path, write_image, filename):
    xml_dir, image_dir = dataset
    outside = write_image(tmp_path / "outside.png", 40, 30)
    _add(xml_dir, _xml(outside if filename == "ABS" else filename, []))
    with pytest.raises(AnnotationError, match="escapes the dataset root"):
        read_voc(xml_dir, image_dir, CLASSES)
