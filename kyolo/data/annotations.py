"""The annotation record every reader returns, and the box checks every reader shares.

Readers (:mod:`kyolo.data.coco`, :mod:`kyolo.data.voc`, :mod:`kyolo.data.yolo_txt`) turn a dataset's
files into a list of :class:`Annotation`. Each box goes through :func:`validate`, so a bad box is
reported the same way whatever the format: an :class:`AnnotationError` naming the annotation file,
the image, the box and the offending value, or, when the caller opts in with ``on_invalid="drop"``
or ``"clip"``, one ``logging.warning`` per box that is dropped or repaired. Nothing is fixed
silently.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

OnInvalid = Literal["raise", "drop", "clip"]
ON_INVALID: tuple[str, ...] = ("raise", "drop", "clip")


class AnnotationError(ValueError):
    """A dataset file is malformed or holds a box that cannot be used."""


@dataclasses.dataclass(frozen=True, eq=False)
class Annotation:
    """One image and its ground-truth boxes.

    Attributes:
        image_path: path of the image file (normalised, absolute when the reader was given an
            absolute root).
        width, height: image size in pixels, as stored in the file (no EXIF rotation).
        boxes: ``(n, 4)`` float32 ``(x_min, y_min, x_max, y_max)`` in image pixels; continuous
            coordinates, so a box covering the whole image is ``(0, 0, width, height)``.
        classes: ``(n,)`` int32 class ids in ``[0, num_classes)``.

    The arrays are copied and made read-only, so an ``Annotation`` cannot change after it was
    validated. Equality is identity (``eq=False``): element-wise array equality has no single truth
    value.
    """

    image_path: str
    width: int
    height: int
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float32).reshape(-1, 4)
        classes = np.array(self.classes, dtype=np.int32).reshape(-1)
        if len(boxes) != len(classes):
            raise ValueError(f"{self.image_path}: {len(boxes)} boxes but {len(classes)} class ids")
        boxes.flags.writeable = False
        classes.flags.writeable = False
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    def __repr__(self) -> str:
        return (
            f"Annotation(image_path={self.image_path!r}, width={self.width}, "
            f"height={self.height}, boxes={len(self.boxes)})"
        )


def check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")


def report_invalid(message: str, on_invalid: OnInvalid, action: str = "dropped") -> None:
    """Raise ``message`` as an :class:`AnnotationError`, or log it as a warning for drop/clip.

    Args:
        message: what is wrong and where (file, image, box index, value).
        on_invalid: ``"raise"`` raises; ``"drop"`` and ``"clip"`` log one warning.
        action: what the caller does with the box instead of raising, appended to the warning.
    """
    check_on_invalid(on_invalid)
    if on_invalid == "raise":
        raise AnnotationError(message)
    logger.warning("%s; %s (on_invalid=%r)", message, action, on_invalid)


def resolve_in_root(root: str | os.PathLike, relative: str, *, source: str) -> str:
    """Join ``relative`` (a path read from an annotation file) to ``root``, refusing escapes.

    The check is lexical (``..`` and absolute paths are resolved against ``root`` without following
    symlinks), so a dataset may symlink its image folders elsewhere, but the annotation file itself
    cannot point outside the root.

    Raises:
        AnnotationError: naming ``source`` when the path is empty or leaves ``root``.
    """
    if not isinstance(relative, str) or not relative.strip() or "\0" in relative:
        raise AnnotationError(f"{source}: invalid image path {relative!r}")
    root_abs = os.path.normpath(os.path.abspath(os.fspath(root)))
    path = os.path.normpath(os.path.join(root_abs, relative))
    if os.path.commonpath([root_abs, path]) != root_abs:
        raise AnnotationError(
            f"{source}: image path {relative!r} escapes the dataset root {root_abs!r}"
        )
    return path


def require_file(path: str, *, source: str) -> None:
    """Raise an :class:`AnnotationError` naming ``source`` and ``path`` unless it is a file."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{source}: image file {path!r} does not exist")


def read_image_size(path: str, *, source: str) -> tuple[int, int]:
    """``(width, height)`` in pixels from the image file's header (nothing decoded).

    Raises:
        AnnotationError: naming ``source`` and ``path`` when the header cannot be read, or when
            it claims more than twice PIL's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb:
            PIL's own ``DecompressionBombError`` is no ``OSError`` and names no file).
    """
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, Image.DecompressionBombError) as e:
        raise AnnotationError(f"{source}: cannot read the size of image {path!r}: {e}") from e


MAX_SIZE = 2**31
"""Image sides (pixels) must be below this: larger ones are corrupt sizes (and overflow int32)."""


def validate(
    boxes: np.ndarray,
    classes: np.ndarray,
    *,
    width: int,
    height: int,
    num_classes: int,
    source: str,
    image: str,
    box_labels: Sequence[str] | None = None,
    on_invalid: OnInvalid = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """Check boxes of one image and apply the ``on_invalid`` policy.

    A box is invalid when a coordinate is NaN or infinite, its size is zero or negative
    (``x_max <= x_min`` or ``y_max <= y_min``), any part lies outside ``[0, width] x [0, height]``
    (tolerance 0), or its class id is outside ``[0, num_classes)``.

    Policies:
        ``"raise"``: raise :class:`AnnotationError` at the first invalid box.
        ``"drop"``: drop every invalid box, one ``logging.warning`` each.
        ``"clip"``: clip partly-outside boxes to the image, one warning each; boxes that clipping
        cannot repair (non-finite, empty, wholly outside, bad class) are dropped, one warning each.

    Args:
        boxes: ``(n, 4)`` ``(x_min, y_min, x_max, y_max)`` in image pixels.
        classes: ``(n,)`` integer class ids.
        width, height: image size in pixels.
        num_classes: number of classes ``C``.
        source: the annotation file, for messages.
        image: the image file, for messages.
        box_labels: optional per-box location inside ``source`` (``"line 3"``,
            ``"annotation id 12"``) added to messages next to the box index.
        on_invalid: ``"raise"``, ``"drop"`` or ``"clip"``.

    Returns:
        ``(boxes (m, 4) float32, classes (m,) int32)`` with ``m <= n``.
    """
    check_on_invalid(on_invalid)
    if not (0 < width < MAX_SIZE and 0 < height < MAX_SIZE):
        raise AnnotationError(
            f"{source}: image {image}: image size {width}x{height} is not in [1, 2**31)"
        )
    # Checked in float64: a float32 cast first would turn 1e308 into inf ("non-finite").
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    if len(boxes) != len(classes):
        raise AnnotationError(
            f"{source}: image {image}: {len(boxes)} boxes but {len(classes)} class ids"
        )
    x_min, y_min, x_max, y_max = boxes.T
    with np.errstate(invalid="ignore"):
        good = (
            np.isfinite(boxes).all(axis=1)
            & (classes >= 0)
            & (classes < num_classes)
            & (x_max > x_min)
            & (y_max > y_min)
            & (x_min >= 0)
            & (y_min >= 0)
            & (x_max <= width)
            & (y_max <= height)
        )
    keep = np.ones(len(boxes), dtype=bool)
    out = boxes.copy()
    # Only the (rare) bad boxes pay for the per-box Python below.
    for i in np.flatnonzero(~good):
        box = boxes[i]
        where = f"{source}: image {image}: box {i}"
        if box_labels is not None:
            where += f" ({box_labels[i]})"
        shown = "[" + ", ".join(f"{float(v):g}" for v in box) + "]"
        problem, fixable = _box_problem(box, int(classes[i]), width, height, num_classes)
        message = f"{where}: {problem}, box {shown}"
        if on_invalid == "clip" and fixable:
            clipped = np.clip(box, 0.0, [width, height, width, height])
            if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
                report_invalid(message, on_invalid, action="clipped to the image")
                out[i] = clipped
                continue
            message += " (nothing left after clipping)"
        report_invalid(message, on_invalid)
        keep[i] = False
    return out[keep].astype(np.float32), classes[keep].astype(np.int32)


def checked_annotation(
    image: str,
    width: int,
    height: int,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[int] | np.ndarray,
    *,
    num_classes: int,
    source: str,
    box_labels: Sequence[str],
    on_invalid: OnInvalid = "raise",
) -> Annotation:
    """The :class:`Annotation` of one image read by a reader, its boxes through :func:`validate`.

    ``boxes`` are ``(x_min, y_min, x_max, y_max)`` image pixels, checked in float64 (a huge value
    is named as it is written, not as float32's inf); ``classes`` are checked as int64, before
    any narrowing to int32.
    """
    boxes_arr, classes_arr = validate(
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int64).reshape(-1),
        width=width,
        height=height,
        num_classes=num_classes,
        source=source,
        image=image,
        box_labels=box_labels,
        on_invalid=on_invalid,
    )
    return Annotation(image, width, height, boxes_arr, classes_arr)


def named_annotation(
    image: str,
    width: int,
    height: int,
    objects: Sequence[tuple[Sequence[float], str, str]],
    class_of: dict[str, int],
    *,
    source: str,
    on_invalid: OnInvalid = "raise",
) -> Annotation:
    """:func:`checked_annotation` of boxes given with class *names*, as VOC and CSV files do.

    ``objects`` are ``(box, class name, label)``: ``box`` as in :func:`checked_annotation`,
    ``label`` where the box is written (``"object 3"``, ``"line 12"``). A name missing from
    ``class_of`` (name → class id) is reported by :func:`report_invalid`, naming the box.
    """
    boxes, classes, labels = [], [], []
    for box, name, label in objects:
        if name not in class_of:
            report_invalid(
                f"{source}: image {image}: box {len(boxes)} ({label}): class {name!r} is not in "
                "class_names",
                on_invalid,
            )
            continue
        boxes.append(box)
        classes.append(class_of[name])
        labels.append(label)
    return checked_annotation(
        image,
        width,
        height,
        boxes,
        classes,
        num_classes=len(class_of),
        source=source,
        box_labels=labels,
        on_invalid=on_invalid,
    )


def _box_problem(
    box: np.ndarray, cls: int, width: int, height: int, num_classes: int
) -> tuple[str, bool]:
    """``(description, repairable_by_clipping)`` of the first problem of an invalid box."""
    if not np.all(np.isfinite(box)):
        return "non-finite coordinate", False
    if not 0 <= cls < num_classes:
        return f"class id {cls} outside [0, {num_classes})", False
    x_min, y_min, x_max, y_max = (float(v) for v in box)
    if x_max <= x_min or y_max <= y_min:
        return f"zero or negative size (w={x_max - x_min:g}, h={y_max - y_min:g})", False
    return f"outside the {width}x{height} image", True
