"""One entry point for the annotation formats kyolo reads, and class-name files."""

from __future__ import annotations

import os
from collections.abc import Sequence

from kyolo.data.annotations import Annotation
from kyolo.data.coco import read_coco
from kyolo.data.voc import read_voc
from kyolo.data.yolo_txt import read_yolo

READERS = ("coco", "voc", "yolo")
"""Annotation formats :func:`read_annotations` reads."""


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names, one per non-blank line of a UTF-8 text file; duplicates are an error."""
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
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
