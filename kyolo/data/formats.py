"""One entry point for the annotation formats kyolo reads, and class-name files."""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence

from kyolo.data.annotations import Annotation
from kyolo.data.coco import read_coco
from kyolo.data.voc import read_voc
from kyolo.data.yolo_txt import read_yolo

READERS = ("coco", "voc", "yolo")
"""Annotation formats :func:`read_annotations` reads."""


BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
)
"""Encodings recognised by their byte-order mark; text without one is read as UTF-8."""


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names, one per non-blank line of a text file; duplicates are an error.

    The file is UTF-8, or UTF-8/16/32 with a byte-order mark (what Windows editors save as
    "Unicode"). Anything else is a ``ValueError`` naming the file: a guessed encoding would give
    wrong names silently.
    """
    with open(path, "rb") as f:
        data = f.read()
    encoding = next((enc for bom, enc in BYTE_ORDER_MARKS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not UTF-8 text, nor UTF-16/32 with a byte-order mark ({e.reason} at byte "
            f"{e.start}); save it as UTF-8"
        ) from None
    if "\0" in text:
        raise ValueError(f"{path}: NUL bytes: UTF-16 without a byte-order mark? Save it as UTF-8")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class names (expected one per line)")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate class names")
    return names


def read_annotations(
    data_format: str,
    annotations: str | os.PathLike,
    images: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    on_invalid: str = "raise",
) -> tuple[list[Annotation], list[str]]:
    """Read one split in ``data_format``; returns ``(annotations, class names)``.

    Args:
        data_format: one of :data:`READERS`.
        annotations: COCO json file, VOC xml folder or YOLO label folder.
        images: the image folder.
        class_names: needed by ``voc`` and ``yolo`` (COCO files name their categories).
        on_invalid: ``"raise"``, ``"drop"`` or ``"clip"`` bad boxes (see the readers).
    """
    if data_format == "coco":
        return read_coco(annotations, images, on_invalid=on_invalid)
    if data_format not in READERS:
        raise ValueError(f"unknown data format {data_format!r}; known: {', '.join(READERS)}")
    if not class_names:
        raise ValueError(f"data format {data_format!r} needs class names")
    names = list(class_names)
    if data_format == "voc":
        return read_voc(annotations, images, names, on_invalid=on_invalid), names
    return read_yolo(images, annotations, len(names), on_invalid=on_invalid), names
