"""Pascal VOC XML (one ``.xml`` per image) → :class:`~kyolo.data.annotations.Annotation`."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from kyolo.data.annotations import (
    Annotation,
    AnnotationError,
    OnInvalid,
    check_on_invalid,
    named_annotation,
    read_image_size,
    require_file,
    resolve_in_root,
)


def read_voc(
    xml_dir: str | os.PathLike,
    image_dir: str | os.PathLike,
    class_names: Sequence[str],
    *,
    on_invalid: OnInvalid = "raise",
    skip_difficult: bool = False,
) -> list[Annotation]:
    """Read every ``*.xml`` in ``xml_dir`` (sorted by name, not recursive).

    The image is ``<filename>`` relative to ``image_dir`` (``<folder>`` and ``<path>`` are ignored:
    they name the labelling machine's layout). Coordinates are taken as written, the keras-yolo3
    convention: VOC's 1-based pixel indices are not shifted, so boxes may sit up to one pixel right
    of and below the ink. The image size comes from ``<size>``, or from the image header when
    ``<size>`` is missing or zero.

    Args:
        xml_dir: folder of annotation files.
        image_dir: dataset root for ``<filename>``; paths leaving it are an error.
        class_names: class names, indexed by class id; an object whose ``<name>`` is not listed is
            an invalid box (see ``on_invalid``).
        on_invalid: policy for invalid boxes, see :func:`kyolo.data.annotations.validate`.
        skip_difficult: drop objects marked ``<difficult>1</difficult>`` (as keras-yolo3 does).

    Raises:
        AnnotationError: a missing ``xml_dir``, malformed XML (naming file and line), a document
            type declaration (entities are never expanded), a missing field or image, a path
            escaping ``image_dir``, or an invalid box under ``on_invalid="raise"``.
    """
    check_on_invalid(on_invalid)
    class_of = {name: c for c, name in enumerate(class_names)}
    if len(class_of) != len(class_names):
        raise ValueError(f"class_names has duplicates: {list(class_names)}")
    xml_dir = os.fspath(xml_dir)
    if not os.path.isdir(xml_dir):
        raise AnnotationError(f"annotation folder {xml_dir!r} does not exist")
    files = sorted(f for f in os.listdir(xml_dir) if f.lower().endswith(".xml"))
    return [
        _read_one(os.path.join(xml_dir, f), image_dir, class_of, on_invalid, skip_difficult)
        for f in files
    ]


def _read_one(
    source: str,
    image_dir: str | os.PathLike,
    class_of: dict[str, int],
    on_invalid: OnInvalid,
    skip_difficult: bool,
) -> Annotation:
    root = _parse(source)
    if root.tag != "annotation":
        raise AnnotationError(f"{source}: root element must be <annotation>, got <{root.tag}>")
    path = resolve_in_root(image_dir, _text(root, "filename", source), source=source)
    require_file(path, source=source)

    size = root.find("size")
    width = _number(size, "width", source, int) if size is not None else 0
    height = _number(size, "height", source, int) if size is not None else 0
    if width <= 0 or height <= 0:
        width, height = read_image_size(path, source=source)

    objects = []
    for index, obj in enumerate(root.iter("object")):
        where = f"{source}: object {index}"
        if skip_difficult and obj.findtext("difficult", "0").strip() == "1":
            continue
        name = _text(obj, "name", where)
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise AnnotationError(f"{where}: missing <bndbox>")
        box = tuple(_number(bndbox, k, where, float) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((box, name, f"object {index}"))
    return named_annotation(
        path, width, height, objects, class_of, source=source, on_invalid=on_invalid
    )


def _parse(source: str) -> ET.Element:
    with open(source, "rb") as f:
        data = f.read()
    # Like defusedxml's forbid_dtd: no DTD means no entity (internal or external) to expand. A NUL
    # byte means UTF-16/32, where this byte search would not see the declaration.
    if b"\0" in data:
        raise AnnotationError(f"{source}: only ASCII / UTF-8 XML is supported")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise AnnotationError(f"{source}: XML document type declarations are not allowed")
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        line, column = e.position
        raise AnnotationError(f"{source}: malformed XML at line {line}, column {column}") from e


def _text(element: ET.Element, tag: str, where: str) -> str:
    text = element.findtext(tag)
    if text is None or not text.strip():
        raise AnnotationError(f"{where}: missing <{tag}>")
    return text.strip()


def _number(element: ET.Element, tag: str, where: str, kind: type) -> float:
    text = _text(element, tag, where)
    try:
        # float first so "500.0" is accepted as a size; float("nan") reaches validate().
        value = float(text)
        return int(value) if kind is int and value.is_integer() else kind(text)
    except ValueError as e:
        raise AnnotationError(f"{where}: <{tag}> is not a number: {text!r}") from e
