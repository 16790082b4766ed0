"""COCO detection JSON (``instances_*.json``) → :class:`~kyolo.data.annotations.Annotation`."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from typing import Any

from kyolo.data.annotations import (
    Annotation,
    AnnotationError,
    OnInvalid,
    check_on_invalid,
    checked_annotation,
    report_invalid,
    require_file,
    resolve_in_root,
)


def read_coco(
    json_path: str | os.PathLike,
    image_root: str | os.PathLike,
    *,
    on_invalid: OnInvalid = "raise",
    include_crowd: bool = False,
) -> tuple[list[Annotation], list[str]]:
    """Read a COCO detection file.

    COCO ``bbox`` is ``[x, y, w, h]`` in pixels from the top-left corner; it becomes
    ``(x, y, x + w, y + h)``. Category ids (sparse in COCO: 1..90) map to contiguous class ids
    ``0..C-1`` in sorted category-id order. Every entry of ``images`` is returned, in file order,
    including images without boxes (background images).

    Args:
        json_path: the annotation file.
        image_root: folder that ``file_name`` of each image is relative to; a ``file_name`` that
            leaves it (``../``, absolute path elsewhere) is an error.
        on_invalid: policy for invalid boxes, see :func:`kyolo.data.annotations.validate`. An
            annotation naming an unknown category is an invalid box too.
        include_crowd: keep ``iscrowd=1`` annotations (skipped by default, as COCO evaluation
            ignores them and their boxes cover groups of objects). ``iscrowd`` may be 0 or 1,
            ``false`` or ``true``, ``"0"`` or ``"1"`` (converters write all of these); absent
            means 0; any other value is an error naming the annotation.

    Returns:
        ``(annotations, class_names)``: one :class:`Annotation` per image, and the category names
        indexed by class id.

    Raises:
        AnnotationError: a missing or unreadable annotation file, malformed JSON or structure
            (naming the file and the line or the entry), a missing image file, a path escaping
            ``image_root``, or an invalid box under ``on_invalid="raise"``.
    """
    check_on_invalid(on_invalid)
    source = os.fspath(json_path)
    try:
        with open(source, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{source}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{source}: not UTF-8 text: {e}") from e
    except (ValueError, RecursionError) as e:  # an integer over 4300 digits; deep nesting
        raise AnnotationError(f"{source}: cannot parse JSON: {e}") from e
    except OSError as e:
        raise AnnotationError(f"{source}: cannot read the annotation file: {e.strerror}") from e
    if not isinstance(data, dict):
        raise AnnotationError(f"{source}: top level must be an object, got {type(data).__name__}")

    categories = _entries(data, "categories", source)
    images = _entries(data, "images", source)
    entries = _entries(data, "annotations", source) if "annotations" in data else []

    names: dict[int, str] = {}
    for i, cat in enumerate(categories):
        where = f"{source}: categories[{i}]"
        cat_id = _int(cat, "id", where)
        if cat_id in names:
            raise AnnotationError(f"{where}: duplicate category id {cat_id}")
        names[cat_id] = str(_field(cat, "name", where))
    cat_ids = sorted(names)
    class_of = {cat_id: c for c, cat_id in enumerate(cat_ids)}
    class_names = [names[cat_id] for cat_id in cat_ids]

    by_image: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    image_ids = set()
    for i, img in enumerate(images):
        image_ids.add(_int(img, "id", f"{source}: images[{i}]"))
    for i, ann in enumerate(entries):
        where = f"{source}: annotations[{i}]"
        image_id = _int(ann, "image_id", where)
        if image_id not in image_ids:
            raise AnnotationError(f"{where}: image_id {image_id} is not in 'images'")
        by_image[image_id].append((i, ann))

    annotations = []
    seen: set[int] = set()
    for i, img in enumerate(images):
        where = f"{source}: images[{i}]"
        image_id = _int(img, "id", where)
        if image_id in seen:
            raise AnnotationError(f"{where}: duplicate image id {image_id}")
        seen.add(image_id)
        file_name = _field(img, "file_name", where)
        width, height = _int(img, "width", where), _int(img, "height", where)
        if width < 1 or height < 1:
            raise AnnotationError(f"{where}: image size must be positive, got {width}x{height}")
        path = resolve_in_root(image_root, file_name, source=where)
        require_file(path, source=where)

        boxes, classes, labels = [], [], []
        for index, ann in by_image[image_id]:
            ann_where = f"{source}: annotations[{index}]"
            if _iscrowd(ann, ann_where) and not include_crowd:
                continue
            bbox = _field(ann, "bbox", ann_where)
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise AnnotationError(f"{ann_where}: bbox must be [x, y, w, h], got {bbox!r}")
            try:
                x, y, w, h = (float(v) for v in bbox)
            except (TypeError, ValueError) as e:
                raise AnnotationError(f"{ann_where}: non-numeric bbox {bbox!r}") from e
            except OverflowError as e:  # an integer beyond float64
                raise AnnotationError(f"{ann_where}: bbox value beyond float range") from e
            cat_id = _int(ann, "category_id", ann_where)
            label = f"annotations[{index}], id {ann.get('id')}"
            if cat_id not in class_of:
                report_invalid(
                    f"{source}: image {path}: box {len(boxes)} ({label}): category_id {cat_id} "
                    "is not in 'categories'",
                    on_invalid,
                )
                continue
            boxes.append((x, y, x + w, y + h))
            classes.append(class_of[cat_id])
            labels.append(label)
        annotations.append(
            checked_annotation(
                path,
                width,
                height,
                boxes,
                classes,
                num_classes=len(class_names),
                source=source,
                box_labels=labels,
                on_invalid=on_invalid,
            )
        )
    return annotations, class_names


CROWD = {0: False, 1: True, "0": False, "1": True}
"""``iscrowd`` values read (JSON's ``false``/``true`` and ``0.0``/``1.0`` are equal keys)."""


def _iscrowd(ann: dict, where: str) -> bool:
    value = ann.get("iscrowd", 0)
    try:
        return CROWD[value]
    except (KeyError, TypeError):  # TypeError: a list or an object is not a key
        raise AnnotationError(
            f'{where}: \'iscrowd\' must be 0 or 1 (also false/true, "0"/"1"), got {value!r}'
        ) from None


def _entries(data: dict, key: str, source: str) -> list[dict]:
    value = data.get(key)
    if not isinstance(value, list):
        raise AnnotationError(f"{source}: '{key}' must be a list, got {type(value).__name__}")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise AnnotationError(f"{source}: {key}[{i}] must be an object, got {entry!r}")
    return value


def _field(entry: dict, key: str, where: str) -> Any:
    if key not in entry:
        raise AnnotationError(f"{where}: missing '{key}'")
    return entry[key]


def _int(entry: dict, key: str, where: str) -> int:
    value = _field(entry, key, where)
    # bool is an int subclass; a float id like 3.0 is accepted, 3.5 is not. An int of any size is
    # one (math.isfinite would overflow on it).
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer()))
    ):
        raise AnnotationError(f"{where}: '{key}' must be an integer, got {value!r}")
    return int(value)
