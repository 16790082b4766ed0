"""YOLO txt labels (one ``.txt`` per image, ``class cx cy w h`` normalised) → Annotation."""

from __future__ import annotations

import os

import numpy as np

from kyolo.data.annotations import (
    Annotation,
    AnnotationError,
    OnInvalid,
    check_on_invalid,
    checked_annotation,
    read_image_size,
)

IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""Extensions (lower case) that ``tf.io.decode_image`` reads."""

CLASSES_FILE = "classes.txt"
"""Class-name list some tools keep beside the labels; never read as a label file."""


def read_yolo(
    image_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    num_classes: int,
    *,
    on_invalid: OnInvalid = "raise",
) -> list[Annotation]:
    """Read a YOLO (Darknet / Ultralytics) txt dataset.

    Every image under ``image_dir`` (recursively, sorted by path) is returned; its labels are
    ``label_dir/<same relative path>.txt``. An image without a label file has no boxes (a
    background image). A label file without an image is an error: its image is missing.

    Each non-blank row is ``class cx cy w h``, the centre and size normalised by the image width and
    height; it becomes ``(x_min, y_min, x_max, y_max)`` in pixels, computed in float64. The image
    size is read from the image header with Pillow (no decoding).

    Args:
        image_dir: folder of images.
        label_dir: folder of ``.txt`` files mirroring ``image_dir``.
        num_classes: number of classes ``C``; ids must lie in ``[0, C)``.
        on_invalid: policy for invalid boxes, see :func:`kyolo.data.annotations.validate`.

    Raises:
        AnnotationError: a missing ``image_dir`` or ``label_dir``, a row without exactly 5 fields
            or with a non-numeric field (naming file and line), an unreadable image, a label file
            without image, or an invalid box under ``on_invalid="raise"``.
    """
    check_on_invalid(on_invalid)
    image_dir, label_dir = os.fspath(image_dir), os.fspath(label_dir)
    for kind, folder in (("image", image_dir), ("label", label_dir)):
        # A missing label folder is a wrong path, not a dataset of background images.
        if not os.path.isdir(folder):
            raise AnnotationError(f"{kind} folder {folder!r} does not exist")
    images = _walk(image_dir, IMAGE_EXTENSIONS)
    labels = _walk(label_dir, (".txt",))

    stems = {os.path.splitext(rel)[0] for rel in images}
    for rel in labels:
        if os.path.basename(rel) != CLASSES_FILE and os.path.splitext(rel)[0] not in stems:
            raise AnnotationError(
                f"{os.path.join(label_dir, rel)}: no image file for this label file in "
                f"{image_dir!r}"
            )

    annotations = []
    for rel in images:
        image = os.path.normpath(os.path.join(image_dir, rel))
        source = os.path.join(label_dir, os.path.splitext(rel)[0] + ".txt")
        width, height = read_image_size(image, source=source)
        rows, lines = _read_rows(source) if os.path.isfile(source) else (np.zeros((0, 5)), [])
        cx, cy, w, h = (rows[:, k] for k in range(1, 5))
        boxes = np.stack(
            [
                (cx - w / 2) * width,
                (cy - h / 2) * height,
                (cx + w / 2) * width,
                (cy + h / 2) * height,
            ],
            axis=1,
        )
        annotations.append(
            checked_annotation(
                image,
                width,
                height,
                boxes,
                rows[:, 0].astype(np.int64),
                num_classes=num_classes,
                source=source,
                box_labels=[f"line {n}" for n in lines],
                on_invalid=on_invalid,
            )
        )
    return annotations


def _walk(root: str, extensions: tuple[str, ...]) -> list[str]:
    """Sorted paths relative to ``root`` of files ending in one of ``extensions``."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            if name.lower().endswith(extensions):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def _read_rows(source: str) -> tuple[np.ndarray, list[int]]:
    """``((n, 5) float64 rows, their 1-based line numbers)`` of a label file."""
    rows, lines = [], []
    try:
        # utf-8-sig: tolerate the byte-order mark some Windows editors write.
        with open(source, encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{source}: not UTF-8 text: {e}") from e
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise AnnotationError(
                f"{source}: line {number}: expected 5 fields 'class cx cy w h', got "
                f"{len(fields)}: {line.strip()!r}"
            )
        try:
            row = [float(int(fields[0]))] + [float(v) for v in fields[1:]]
        except ValueError as e:
            raise AnnotationError(
                f"{source}: line {number}: non-numeric field (class must be an integer): "
                f"{line.strip()!r}"
            ) from e
        if not -(2**31) <= int(fields[0]) < 2**31:  # int64 ids would wrap: 10**30 → -2**63
            raise AnnotationError(
                f"{source}: line {number}: class id {int(fields[0])} is not a 32-bit integer: "
                f"{line.strip()!r}"
            )
        rows.append(row)
        lines.append(number)
    return np.asarray(rows, np.float64).reshape(-1, 5), lines


def format_yolo(boxes: np.ndarray, classes: np.ndarray, width: int, height: int) -> str:
    """The YOLO txt rows (``class cx cy w h``, normalised) of ``(n, 4)`` xyxy pixel boxes in a
    ``width x height`` image: what :func:`read_yolo` reads back (to 1e-6 of the image size)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = np.array([width, height], np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / size
    extent = (boxes[:, 2:] - boxes[:, :2]) / size
    return "".join(
        f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
        for c, (x, y), (w, h) in zip(classes, centre, extent, strict=True)
    )
