"""NeonPretrain: tree crowns from two other NEON sites, a pretraining set for NeonTrees.

An older deepforest wheel (pinned: :data:`PRETRAIN_VERSION`, checked by
:data:`PRETRAIN_WHEEL_SHA256`) ships two annotated 400×400 RGB orthophotos (10 cm per pixel) of
sites that NeonTrees does not contain (:data:`PRETRAIN_SCENES`):

* ``SOAP_061`` (Soaproot Saddle, California): Pascal VOC xml, 37 crowns labelled ``Dead`` or
  ``Alive`` (deepforest uses it to test classification; here both are a tree crown);
* ``2018_SJER_3_252000_4107000_image_477`` (San Joaquin Experimental Range, California):
  deepforest's annotation CSV (:func:`read_deepforest_csv`), 7 crowns labelled ``0``.

Both are cut into tiles exactly as NeonTrees is (:func:`kyolo.data.neon_trees.write_tiled_coco`),
so crowns have the same pixel scale, and every tile goes to train. :func:`shared_images` checks
that no tile is pixel-identical to a NeonTrees tile.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

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
from kyolo.data.neon_trees import PACKAGE, NeonTreesPaths, Scene, write_tiled_coco
from kyolo.data.voc import read_voc

PRETRAIN_VERSION = "1.5.2"
PRETRAIN_WHEEL = f"{PACKAGE}-{PRETRAIN_VERSION}-py3-none-any.whl"
PRETRAIN_WHEEL_SHA256 = "705f08a80f33514044010865f61eefe5037d5492055c47574d213db74bebdf25"

PRETRAIN_SCENES: tuple[Scene, ...] = (
    Scene("SOAP_061.xml", "SOAP_061.png"),
    Scene(
        "2018_SJER_3_252000_4107000_image_477_truth.csv", "2018_SJER_3_252000_4107000_image_477.tif"
    ),
)

TREE_LABELS: tuple[str, ...] = ("Tree", "Alive", "Dead", "0")
"""Labels that deepforest's sample annotations give a tree crown (``0``: a CSV's class id)."""

CSV_COLUMNS: tuple[str, ...] = ("image_path", "xmin", "ymin", "xmax", "ymax", "label")


def read_deepforest_csv(
    csv_path: str | os.PathLike,
    image_dir: str | os.PathLike,
    class_names: Sequence[str],
    *,
    on_invalid: OnInvalid = "raise",
) -> list[Annotation]:
    """Read deepforest's annotation CSV: one box per row, columns found by their header names.

    The header must name :data:`CSV_COLUMNS` in any order (deepforest's files differ: its
    ``*_truth.csv`` writes ``xmin, xmax, ymin, ymax``); other columns (``scores``) are ignored.
    Coordinates are image pixels ``(x_min, y_min, x_max, y_max)``, taken as written.

    Args:
        csv_path: the CSV file.
        image_dir: root for ``image_path``; paths leaving it are an error.
        class_names: class names indexed by class id; a ``label`` not listed is an invalid box.
        on_invalid: policy for invalid boxes, see :func:`kyolo.data.annotations.validate`.

    Returns:
        One :class:`Annotation` per image, in the order images first appear; sizes come from the
        image headers.

    Raises:
        AnnotationError: a missing column (naming it), a coordinate that is not a number (naming
            the line), a missing image, or an invalid box under ``on_invalid="raise"``.
    """
    check_on_invalid(on_invalid)
    source = os.fspath(csv_path)
    class_of = {name: c for c, name in enumerate(class_names)}
    rows: dict[str, list[tuple[tuple[float, ...], str, str]]] = {}
    with open(source, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise AnnotationError(f"{source}: missing column(s) {missing} in the header")
        for row in reader:
            where = f"line {reader.line_num}"
            try:
                box = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (TypeError, ValueError) as e:
                raise AnnotationError(f"{source}: {where}: coordinate is not a number") from e
            rows.setdefault(row["image_path"], []).append((box, row["label"], where))
    return [
        _annotation(source, image_dir, image, found, class_of, on_invalid)
        for image, found in rows.items()
    ]


def _annotation(
    source: str,
    image_dir: str | os.PathLike,
    image: str,
    rows: list[tuple[tuple[float, ...], str, str]],
    class_of: dict[str, int],
    on_invalid: OnInvalid,
) -> Annotation:
    path = resolve_in_root(image_dir, image, source=source)
    require_file(path, source=source)
    width, height = read_image_size(path, source=source)
    return named_annotation(
        path, width, height, rows, class_of, source=source, on_invalid=on_invalid
    )


def read_tree_scenes(
    source_dir: str | os.PathLike, scenes: Sequence[Scene] = PRETRAIN_SCENES
) -> list[Annotation]:
    """The scenes in ``source_dir`` (xml or deepforest CSV each), every box as class 0 (``Tree``).

    Args:
        source_dir: folder holding each scene's annotation and image, and no other xml (see
            :func:`kyolo.data.neon_trees.extract_scenes`).
        scenes: the scenes, in the order returned.

    Raises:
        AnnotationError: a label outside :data:`TREE_LABELS`, or any reader error.
    """
    source_dir = os.fspath(source_dir)
    found = {
        os.path.basename(a.image_path): a for a in read_voc(source_dir, source_dir, TREE_LABELS)
    }
    for scene in scenes:
        if scene.annotation.lower().endswith(".csv"):
            path = os.path.join(source_dir, scene.annotation)
            for a in read_deepforest_csv(path, source_dir, TREE_LABELS):
                found[os.path.basename(a.image_path)] = a
    return [_one_class(found[scene.image]) for scene in scenes]


def _one_class(annotation: Annotation) -> Annotation:
    return Annotation(
        annotation.image_path,
        annotation.width,
        annotation.height,
        annotation.boxes,
        np.zeros(len(annotation.classes), np.int32),
    )


def make_neon_pretrain(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scenes: Sequence[Scene] = PRETRAIN_SCENES,
    tile: int = 256,
    min_visible: float = 0.5,
) -> NeonTreesPaths:
    """Tile the scenes in ``source_dir`` into a COCO dataset whose every tile is in train.

    Same layout and tiling as NeonTrees (:func:`kyolo.data.neon_trees.write_tiled_coco`); the
    val split is written empty: a pretraining set needs no held-out part, NeonTrees' val is the
    measure.
    """
    return write_tiled_coco(
        read_tree_scenes(source_dir, scenes),
        out_dir,
        tile=tile,
        min_visible=min_visible,
        val_fraction=0.0,
    )


def pixel_digest(path: str | os.PathLike) -> str:
    """SHA-256 of an image's decoded RGB pixels and size (so a re-encoded copy has the same)."""
    with Image.open(path) as image:
        pixels = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    digest = hashlib.sha256(np.asarray(pixels.shape, np.int64).tobytes())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def shared_images(
    folders_a: Sequence[str | os.PathLike], folders_b: Sequence[str | os.PathLike]
) -> list[tuple[str, str]]:
    """Pairs ``(file in folders_a, file in folders_b)`` whose decoded pixels are identical.

    Returns:
        Sorted pairs of paths; empty when the two sets share no image.
    """
    by_digest: dict[str, list[str]] = {}
    for path in _images(folders_b):
        by_digest.setdefault(pixel_digest(path), []).append(path)
    return sorted(
        (path, other)
        for path in _images(folders_a)
        for other in by_digest.get(pixel_digest(path), [])
    )


def _images(folders: Sequence[str | os.PathLike]) -> list[str]:
    return [
        os.path.join(os.fspath(folder), name)
        for folder in folders
        for name in sorted(os.listdir(folder))
        if name.lower().endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff"))
    ]
