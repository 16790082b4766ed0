"""Fuzzing the three annotation readers (hypothesis): random bytes, and random structures built
from the format's own fields with values of any JSON type or any text. A reader either returns
annotations or raises its :class:`AnnotationError` naming the file: no other exception."""

import json
import os
import shutil
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kyolo.data import AnnotationError, read_coco, read_voc, read_yolo

FUZZ = settings(
    # Fast by default; KYOLO_FUZZ_EXAMPLES=2000 for a longer hunt.
    max_examples=int(os.environ.get("KYOLO_FUZZ_EXAMPLES", 80)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ON_INVALID = st.sampled_from(["raise", "drop", "clip"])

EXTREMES = [10**400, -(10**400), 2**63, 2**32 + 1, 1e308, -1e308, 1.5, 2.0]
"""Numbers past float64, int64 or float32, and non-integers where integers belong."""

# Any JSON value: NaN, inf and integers beyond float64 included (Python's json reads them all).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(EXTREMES)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["a.png", "../a.png", "/etc/passwd", "", "0", "1", "nan", "1e400"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
NUMBERS = st.integers(-5, 50) | st.floats(-5, 50) | SCALARS


@pytest.fixture
def root(tmp_path):
    """``images/a.png`` (16x12) and a ``labels`` folder."""
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (16, 12)).save(tmp_path / "images" / "a.png")
    return tmp_path


def reads_or_names_the_file(read, path):
    """``read()`` returns, or raises an AnnotationError whose message names ``path``."""
    try:
        read()
    except AnnotationError as err:
        assert os.fspath(path) in str(err), str(err)


@FUZZ
@given(data=st.binary(max_size=300), on_invalid=ON_INVALID)
def test_coco_random_bytes(root, data, on_invalid):
    path = root / "instances.json"
    path.write_bytes(data)
    reads_or_names_the_file(lambda: read_coco(path, root / "images", on_invalid=on_invalid), path)


COCO = {
    "images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 12}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [2, 3, 5, 6]},
    ],
}
"""A valid file: each example replaces or deletes some of its values (random structures that
reach every check, which random documents almost never do)."""


def paths(value, prefix=()):
    """Every key / index path in a JSON document, the root excluded."""
    if not isinstance(value, dict | list):
        return []
    children = value.items() if isinstance(value, dict) else enumerate(value)
    return [p for key, child in children for p in [(*prefix, key), *paths(child, (*prefix, key))]]


def at(document, path):
    for key in path:
        document = document[key]
    return document


@st.composite
def mutated(draw, document):
    """``document`` with 1-3 values replaced by any JSON value, or deleted."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        every = paths(document)
        leaves = [p for p in every if not isinstance(at(document, p), dict | list)]
        # Mostly a leaf (a number or a name deep in the file), sometimes a whole list or object.
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 4)) else every))
        try:
            parent = at(document, path[:-1])
            if draw(st.booleans()) and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(st.sampled_from(EXTREMES) | SCALARS | JSON)
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
            pass
    return document


@FUZZ
@given(data=mutated(COCO) | JSON, on_invalid=ON_INVALID, include_crowd=st.booleans())
def test_coco_random_structures(root, data, on_invalid, include_crowd):
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    reads_or_names_the_file(
        lambda: read_coco(
            path, root / "images", on_invalid=on_invalid, include_crowd=include_crowd
        ),
        path,
    )


def voc_folder(root, data: bytes):
    folder = root / "voc"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "a.xml").write_bytes(data)
    return folder


@FUZZ
@given(data=st.binary(max_size=300), on_invalid=ON_INVALID)
def test_voc_random_bytes(root, data, on_invalid):
    folder = voc_folder(root, data)
    reads_or_names_the_file(
        lambda: read_voc(folder, root / "images", ["a", "b"], on_invalid=on_invalid),
        folder / "a.xml",
    )


TEXT = st.text(max_size=10) | st.sampled_from(["a.png", "a", "b", "1", "0", "5.5", "nan", "1e400"])


def leaf(tag, text=TEXT):
    """``<tag>text</tag>`` with the text escaped."""
    return text.map(lambda value: f"<{tag}>{escape(value)}</{tag}>")


def element(tag, *children):
    """``<tag>`` holding up to three of ``children`` (strategies of XML strings), any order."""
    return st.lists(st.one_of(*children), max_size=3).map(lambda c: f"<{tag}>{''.join(c)}</{tag}>")


NUMBER_TEXT = st.one_of(st.integers(-5, 40).map(str), st.floats().map(str), TEXT)
BNDBOX = element("bndbox", *(leaf(t, NUMBER_TEXT) for t in ("xmin", "ymin", "xmax", "ymax")))
OBJECT = element("object", leaf("name"), BNDBOX, leaf("difficult"))
SIZE = element("size", leaf("width", NUMBER_TEXT), leaf("height", NUMBER_TEXT))
ANNOTATION = element("annotation", leaf("filename"), SIZE, OBJECT, OBJECT)

VOC = {"filename": "a.png", "width": "16", "height": "12", "name": "a", "xmin": "1", "ymin": "1"}
VOC |= {"xmax": "5", "ymax": "6", "difficult": "0"}
"""A valid file's fields: each example keeps, replaces or leaves out each of them."""


def voc_xml(fields):
    """The annotation of ``fields`` (``None``: the element is left out)."""
    tag = {k: "" if v is None else f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()}
    box = "".join(tag[k] for k in ("xmin", "ymin", "xmax", "ymax"))
    return (
        f"<annotation>{tag['filename']}<size>{tag['width']}{tag['height']}</size><object>"
        f"{tag['name']}<bndbox>{box}</bndbox>{tag['difficult']}</object></annotation>"
    )


VOC_MUTATED = st.fixed_dictionaries(
    {k: st.sampled_from([v, v, None]) | NUMBER_TEXT for k, v in VOC.items()}
).map(voc_xml)


@FUZZ
@given(
    xml=VOC_MUTATED | ANNOTATION | st.sampled_from(["<a/>", "<annotation/>"]),
    on_invalid=ON_INVALID,
    skip_difficult=st.booleans(),
)
def test_voc_random_structures(root, xml, on_invalid, skip_difficult):
    folder = voc_folder(root, xml.encode())
    reads_or_names_the_file(
        lambda: read_voc(
            folder,
            root / "images",
            ["a", "b"],
            on_invalid=on_invalid,
            skip_difficult=skip_difficult,
        ),
        folder / "a.xml",
    )


@FUZZ
@given(data=st.binary(max_size=300), on_invalid=ON_INVALID)
def test_yolo_random_bytes(root, data, on_invalid):
    path = root / "labels" / "a.txt"
    path.write_bytes(data)
    reads_or_names_the_file(
        lambda: read_yolo(root / "images", root / "labels", 3, on_invalid=on_invalid), path
    )


FIELD = st.one_of(
    st.integers(-3, 5).map(str),
    st.integers().map(str),
    st.just(str(10**30)),
    st.floats().map(str),
    st.floats(0, 1).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x1", "1_0", "+1", "٣", ""]),
    st.text(max_size=4),
)
ROWS = st.lists(st.lists(FIELD, min_size=4, max_size=6).map(" ".join), max_size=4).map("\n".join)


@FUZZ
@given(text=ROWS, on_invalid=ON_INVALID)
def test_yolo_random_rows(root, text, on_invalid):
    path = root / "labels" / "a.txt"
    path.write_text(text, encoding="utf-8")
    reads_or_names_the_file(
        lambda: read_yolo(root / "images", root / "labels", 3, on_invalid=on_invalid), path
    )


BIG = 10**400


def coco_with(change):
    document = json.loads(json.dumps(COCO))
    change(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    "text, message",
    [
        # Found by test_coco_random_structures: OverflowError from float(int).
        (coco_with(lambda d: d["annotations"][0].update(bbox=[BIG, 1, 4, 4])), "bbox value"),
        (coco_with(lambda d: d["images"][0].update(id=BIG)), "is not in 'images'"),
        (coco_with(lambda d: d["images"][0].update(width=BIG)), "image size 1000"),
        # Beyond Python's int parsing limit and its recursion limit: ValueError, RecursionError.
        ('{"images": [], "categories": [], "x": ' + "1" * 5000 + "}", "cannot parse JSON"),
        ("[" * 100_000 + "]" * 100_000, "cannot parse JSON"),
    ],
)  # fmt: skip
def test_coco_numbers_and_nesting_beyond_python_limits_name_the_file(root, text, message):
    path = root / "instances.json"
    path.write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_coco(path, root / "images")
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_coco_box_beyond_float32_is_outside_the_image_not_non_finite(root):
    # validate cast to float32 first: 1e308 became inf, reported as a "non-finite coordinate".
    path = root / "instances.json"
    path.write_text(coco_with(lambda d: d["annotations"][0].update(bbox=[1, 1, 1e308, 4])))
    with pytest.raises(AnnotationError, match=r"outside the 16x12 image, box \[1, 1, 1e\+308, 5\]"):
        read_coco(path, root / "images")


def test_voc_size_beyond_float_range_names_the_file(root):
    size = f"<size><width>{BIG}</width><height>12</height></size>"
    folder = voc_folder(root, f"<annotation><filename>a.png</filename>{size}</annotation>".encode())
    with pytest.raises(AnnotationError, match=r"a\.xml: image .*a\.png: image size 1000"):
        read_voc(folder, root / "images", ["a"])


def test_yolo_class_id_beyond_int32_names_the_line(root):
    # It was cast to int64 (10**30 wrapped to -2**63) and reported as class -9223372036854775808.
    path = root / "labels" / "a.txt"
    path.write_text(f"0 0.5 0.5 0.2 0.2\n{10**30} 0.5 0.5 0.2 0.2\n")
    with pytest.raises(AnnotationError) as err:
        read_yolo(root / "images", root / "labels", 3, on_invalid="drop")
    assert str(err.value) == (
        f"{path}: line 2: class id {10**30} is not a 32-bit integer: '{10**30} 0.5 0.5 0.2 0.2'"
    )
